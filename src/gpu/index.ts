/** NVIDIA GPU evidence (PROTOCOL.md §2.1): component-evidence binding, device checks, RIMs, OCSP. */
export { GPU_LIMITS, GPU_TYPE, bindingSuffix, parseComponentEvidence, parseSdkEntry, strictBase64, type ComponentEvidence, type GpuArch, type GpuEntry } from './evidence';
export { NOT_EVALUATED_NOTE, gpuComponentHook, gpuSectionOf, type GpuAppraiser, type HookAppraisal, type HookPolicyView } from './hook';
export { gpuAppraiser, overallClaims, type AppraiserDeps } from './appraise';
export { DEVICE_REASONS, driverRimId, vbiosRimId, verifyGpuDevice, type GoldenMeasurement, type GpuCheck, type GpuVerdict, type Revocation, type RevocationSource, type RimSource, type VerifiedRim } from './device';
export { NVIDIA_DEVICE_IDENTITY_ROOT, NVIDIA_RIM_ROOT } from './roots';
export { GpuCache, type GpuCacheOptions } from './cache';
export { loadGpuTrust, gpuTestRootsWarning, type GpuTrust } from './trust';
export { parseRim, rimIdFromName, verifiedRim, verifyRimSignature, type ParsedRim } from './rim';
