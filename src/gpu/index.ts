/** NVIDIA GPU evidence (PROTOCOL.md §2.1): component-evidence binding, device checks, RIMs, OCSP. */
export { GPU_LIMITS, GPU_TYPE, bindingSuffix, parseComponentEvidence, parseSdkEntry, strictBase64, type ComponentEvidence, type GpuArch, type GpuEntry } from './evidence';
export { NOT_EVALUATED_NOTE, gpuComponentHook, gpuSectionOf, type GpuAppraiser, type HookAppraisal, type HookPolicyView } from './hook';
