/**
 * The component hook for `component-evidence` (PROTOCOL.md §2.1). It implements src/attest's
 * ComponentHook structurally (no run-time import of src/attest: imports flow attest → gpu).
 *
 *  - parse: bounds and shape, before any state changes (400 GPU_EVIDENCE_MALFORMED keeps the nonce);
 *  - bindingSuffix: component_hashes, appended to the REPORT_DATA preimage by the pipeline;
 *  - appraise: after policy selection, with the nonce claimed. A policy without a `components`
 *    section binds the GPUs (they are part of REPORT_DATA) but does not evaluate them, and the
 *    audit record says so; a policy with `components.gpu.gpu-nvidia` requires every GPU to verify
 *    and satisfy it (src/gpu/appraise.ts), and refuses a request without GPUs.
 */
import { TasError } from '../errors';
import { bindingSuffix, parseComponentEvidence, type ComponentEvidence } from './evidence';

/** The shapes of src/attest/verifier.ts this hook needs (kept structural on purpose). */
export interface HookPolicyView {
  readonly id: string;
  readonly components: Readonly<Record<string, unknown>> | undefined;
}
export interface HookAppraisal {
  readonly notes?: readonly string[];
  readonly audit?: Readonly<Record<string, unknown>>;
}

/** GpuAppraiser judges the GPUs under the policy's `components.gpu.gpu-nvidia` section. */
export type GpuAppraiser = (gpus: ComponentEvidence, section: Readonly<Record<string, unknown>>, nonce: string, policyId: string) => Promise<HookAppraisal>;

export const NOT_EVALUATED_NOTE = 'component evidence bound into REPORT_DATA but not evaluated: the policy has no components section';

/** gpuSectionOf returns the signed `components.gpu.gpu-nvidia` section, when the policy has one. */
export function gpuSectionOf(components: Readonly<Record<string, unknown>> | undefined): Readonly<Record<string, unknown>> | undefined {
  const gpu = components?.gpu;
  if (typeof gpu !== 'object' || gpu === null || Array.isArray(gpu)) return undefined;
  const s = (gpu as Record<string, unknown>)['gpu-nvidia'];
  return typeof s === 'object' && s !== null && !Array.isArray(s) ? (s as Record<string, unknown>) : undefined;
}

/**
 * gpuComponentHook builds the hook. `appraiser` does the device checks; without one (a build
 * that cannot verify GPUs), a policy that requires GPUs is refused: fail closed.
 */
export function gpuComponentHook(appraiser: GpuAppraiser | undefined) {
  return {
    parse(raw: unknown): ComponentEvidence | undefined {
      return parseComponentEvidence(raw);
    },
    bindingSuffix(parsed: ComponentEvidence): Buffer {
      return bindingSuffix(parsed);
    },
    async appraise(parsed: ComponentEvidence | undefined, policy: HookPolicyView, nonce: string): Promise<HookAppraisal> {
      const gpus = parsed?.gpus.length ?? 0;
      const section = gpuSectionOf(policy.components);
      if (!section) {
        if (policy.components !== undefined && gpus > 0) {
          // A components section for other classes only: the GPUs are still not evaluated.
          return { notes: [NOT_EVALUATED_NOTE.replace('has no components section', 'has no components.gpu.gpu-nvidia section')], audit: { components_evaluated: false, gpus } };
        }
        return gpus > 0 ? { notes: [NOT_EVALUATED_NOTE], audit: { components_evaluated: false, gpus } } : { audit: { components_evaluated: false, gpus } };
      }
      if (!parsed || gpus === 0) {
        throw new TasError('TEE_VERIFICATION_FAILED', `policy ${policy.id} requires NVIDIA GPUs (components.gpu.gpu-nvidia); the request carries no component evidence`, { reason: 'GPU_REQUIRED' });
      }
      if (!appraiser) {
        throw new TasError('TEE_VERIFICATION_FAILED', `policy ${policy.id} requires NVIDIA GPUs, and this tas cannot verify GPU evidence`, { reason: 'GPU_UNSUPPORTED' });
      }
      return appraiser(parsed, section, nonce, policy.id);
    },
  };
}
