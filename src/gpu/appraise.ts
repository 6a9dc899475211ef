/**
 * The GPU appraiser behind the component hook: every GPU's device checks (src/gpu/device.ts), then
 * the policy's `components.gpu.gpu-nvidia` section — tas's optional `count` and NVIDIA's
 * `authorization-rules` (overall claims once, detached claims for every GPU; NVIDIA's matching:
 * present and equal, nested objects field by field).
 *
 * Refusals are 400 `TEE verification failed`; the audit reason names the check and the detail
 * names the GPU's device-index. Transient trouble (no fresh OCSP answer while fail-closed, a RIM
 * that cannot be fetched now) is a 503 from the sources, which keeps the nonce.
 */
import { TasError } from '../errors';
import { matchClaims } from '../policy/components';
import { verifyGpuDevice, type GpuVerdict, type RevocationSource, type RimSource } from './device';
import type { ComponentEvidence } from './evidence';
import type { GpuAppraiser, HookAppraisal } from './hook';

export interface AppraiserDeps {
  /** Pinned NVIDIA Device Identity root(s), plus TAS_NVIDIA_EXTRA_TRUST_DIR roots when set. */
  readonly anchors: () => readonly Buffer[];
  readonly revocation?: () => RevocationSource | undefined;
  readonly rims?: () => RimSource | undefined;
  /** Seconds since the epoch (tests and `tas verify --at` pin it). */
  readonly now?: () => number;
}

/** overallClaims are the per-request claims (NRAS's overall token), over every GPU's verdict. */
export function overallClaims(verdicts: readonly GpuVerdict[]): Record<string, unknown> {
  return { iss: 'tas', 'x-nvidia-ver': '3.0', 'x-nvidia-overall-att-result': verdicts.length > 0 && verdicts.every((v) => v.ok), 'x-nvidia-gpu-count': verdicts.length };
}

export function gpuAppraiser(deps: AppraiserDeps): GpuAppraiser {
  return async (ce: ComponentEvidence, section, nonce, policyId): Promise<HookAppraisal> => {
    const n = ce.gpus.length;
    const count = section.count;
    if (typeof count === 'number' && count !== n) {
      throw new TasError('TEE_VERIFICATION_FAILED', `policy ${policyId} requires exactly ${count} GPUs; the request carries ${n}`, { reason: 'GPU_COUNT_MISMATCH' });
    }
    const at = Math.floor(deps.now ? deps.now() : Date.now() / 1000);
    const opts = { nonce, atSeconds: at, anchors: deps.anchors(), revocation: deps.revocation?.(), rims: deps.rims?.() };
    const verdicts = await Promise.all(ce.gpus.map((g) => verifyGpuDevice(g, opts)));

    const hard = verdicts.filter((v) => v.hardFailure);
    if (hard.length) {
      throw new TasError('TEE_VERIFICATION_FAILED', hard.map((v) => v.hardFailure!.detail).join('; '), { reason: hard[0]!.hardFailure!.reason });
    }
    const rules = (section['authorization-rules'] ?? {}) as Record<string, unknown>;
    const overall = overallClaims(verdicts);
    const failures: string[] = matchClaims(overall, (rules['overall-claims'] ?? {}) as Record<string, unknown>).map((f) => `overall ${f}`);
    let measurement = false;
    for (const v of verdicts) {
      const f = matchClaims(v.claims, (rules['detached-claims'] ?? {}) as Record<string, unknown>);
      if (f.length === 0) continue;
      const why = v.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
      if (v.claims.measres !== 'success' && f.some((x) => /^(measres|secboot|dbgstat)\b/.test(x))) measurement = true;
      failures.push(`gpu[${v.deviceIndex}]: ${f.join(', ')}${why.length ? ` (${why.join('; ')})` : ''}`);
    }
    const audit = {
      components_evaluated: true,
      gpus: n,
      gpu_measres: verdicts.map((v) => v.claims.measres),
      gpu_ocsp: verdicts.map((v) => (v.claims['x-nvidia-gpu-attestation-report-cert-chain'] as Record<string, unknown>)['x-nvidia-cert-ocsp-status']),
    };
    if (failures.length) {
      throw new TasError('TEE_VERIFICATION_FAILED', `policy ${policyId} components.gpu.gpu-nvidia: ${failures.join('; ')}`, { reason: measurement ? 'GPU_MEASUREMENT_MISMATCH' : 'GPU_POLICY_FAILED' });
    }
    const notes = verdicts
      .filter((v) => (v.claims['x-nvidia-gpu-attestation-report-cert-chain'] as Record<string, unknown>)['x-nvidia-cert-ocsp-status'] === 'unknown' && opts.revocation)
      .map((v) => `gpu[${v.deviceIndex}]: revocation status unknown (TAS_CRL_FAIL_MODE=open); the policy admitted it`);
    return { audit, ...(notes.length ? { notes } : {}) };
  };
}
