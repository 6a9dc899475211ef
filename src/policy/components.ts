/**
 * The signed top-level `components` section of a policy (PROTOCOL.md §2.1, §3.1): today one
 * class, `components.gpu.gpu-nvidia`, in the original TAS's shape (NVIDIA's relying-party policy):
 *
 *   {"version": "4.0", "count": 2,                      // count: tas's own, optional
 *    "authorization-rules": {"type": "JWT",
 *      "overall-claims":  {"x-nvidia-overall-att-result": true, "x-nvidia-ver": "3.0"},
 *      "detached-claims": {"measres": "success", "dbgstat": "disabled", …,
 *                          "x-nvidia-gpu-attestation-report-cert-chain": {"x-nvidia-cert-status": "valid", …}}}}
 *
 * Rules are NVIDIA's: every named claim must be present and equal (nested objects field by field);
 * detached claims apply to every GPU. A rule naming a claim tas never produces, or a value of the
 * wrong type, could never match: refused at store time with a message naming it.
 */
import { TasError } from '../errors';

type Kind = 'boolean' | 'string' | 'number' | 'array' | { readonly [k: string]: Kind };

const CERT_CHAIN: Kind = {
  'x-nvidia-cert-status': 'string',
  'x-nvidia-cert-ocsp-status': 'string',
  'x-nvidia-cert-revocation-reason': 'string',
  'x-nvidia-cert-expiration-date': 'string',
};

/** GPU_OVERALL_CLAIMS are the overall (per-request) claims tas produces for NVIDIA GPUs. */
export const GPU_OVERALL_CLAIMS: { readonly [k: string]: Kind } = {
  iss: 'string',
  'x-nvidia-ver': 'string',
  'x-nvidia-overall-att-result': 'boolean',
  'x-nvidia-gpu-count': 'number',
};

/** GPU_DETACHED_CLAIMS are the per-GPU claims tas produces, under NRAS's names. */
export const GPU_DETACHED_CLAIMS: { readonly [k: string]: Kind } = {
  'x-nvidia-device-type': 'string',
  'x-nvidia-gpu-device-index': 'number',
  eat_nonce: 'string',
  hwmodel: 'string',
  ueid: 'string',
  oemid: 'string',
  measres: 'string',
  secboot: 'boolean',
  dbgstat: 'string',
  'x-nvidia-mismatch-measurement-records': 'array',
  'x-nvidia-gpu-arch-check': 'boolean',
  'x-nvidia-gpu-driver-version': 'string',
  'x-nvidia-gpu-vbios-version': 'string',
  'x-nvidia-gpu-attestation-report-parsed': 'boolean',
  'x-nvidia-gpu-attestation-report-nonce-match': 'boolean',
  'x-nvidia-gpu-attestation-report-signature-verified': 'boolean',
  'x-nvidia-gpu-attestation-report-cert-chain': CERT_CHAIN,
  'x-nvidia-gpu-attestation-report-cert-chain-validated': 'boolean',
  'x-nvidia-gpu-attestation-report-cert-chain-fwid-match': 'boolean',
  'x-nvidia-gpu-driver-rim-fetched': 'boolean',
  'x-nvidia-gpu-driver-rim-schema-validated': 'boolean',
  'x-nvidia-gpu-driver-rim-cert-chain': CERT_CHAIN,
  'x-nvidia-gpu-driver-rim-cert-validated': 'boolean',
  'x-nvidia-gpu-driver-rim-signature-verified': 'boolean',
  'x-nvidia-gpu-driver-rim-version-match': 'boolean',
  'x-nvidia-gpu-driver-rim-measurements-available': 'boolean',
  'x-nvidia-gpu-vbios-rim-fetched': 'boolean',
  'x-nvidia-gpu-vbios-rim-schema-validated': 'boolean',
  'x-nvidia-gpu-vbios-rim-cert-chain': CERT_CHAIN,
  'x-nvidia-gpu-vbios-rim-cert-validated': 'boolean',
  'x-nvidia-gpu-vbios-rim-signature-verified': 'boolean',
  'x-nvidia-gpu-vbios-rim-version-match': 'boolean',
  'x-nvidia-gpu-vbios-rim-measurements-available': 'boolean',
  'x-nvidia-gpu-vbios-index-no-conflict': 'boolean',
};

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function invalid(detail: string): TasError {
  return new TasError('POLICY_INVALID', detail, { reason: 'POLICY_COMPONENTS' });
}

function checkRules(rules: unknown, schema: { readonly [k: string]: Kind }, path: string): void {
  if (!isObj(rules)) throw invalid(`${path} must be a JSON object`);
  for (const [k, v] of Object.entries(rules)) {
    const kind = schema[k];
    const where = `${path}.${k}`;
    if (kind === undefined) throw invalid(`${where}: tas produces no such claim`);
    if (typeof kind === 'object') {
      checkRules(v, kind, where);
    } else if (kind === 'array') {
      if (!Array.isArray(v)) throw invalid(`${where} must be an array`);
    } else if (typeof v !== kind || (kind === 'number' && !Number.isFinite(v))) {
      throw invalid(`${where} must be a ${kind}`);
    }
  }
}

/** parseComponents checks the `components` section at store time (throws POLICY_INVALID). */
export function parseComponents(raw: unknown): void {
  if (!isObj(raw)) throw invalid('components must be a JSON object');
  for (const k of Object.keys(raw)) if (k !== 'gpu') throw invalid(`components.${k.slice(0, 40)}: unknown component class (tas knows: gpu)`);
  if (raw.gpu === undefined) return;
  if (!isObj(raw.gpu)) throw invalid('components.gpu must be a JSON object');
  for (const k of Object.keys(raw.gpu)) if (k !== 'gpu-nvidia') throw invalid(`components.gpu.${k.slice(0, 40)}: unknown GPU type (tas knows: gpu-nvidia)`);
  const s = raw.gpu['gpu-nvidia'];
  if (s === undefined) return;
  const p = 'components.gpu.gpu-nvidia';
  if (!isObj(s)) throw invalid(`${p} must be a JSON object`);
  for (const k of Object.keys(s)) if (!['version', 'count', 'authorization-rules'].includes(k)) throw invalid(`${p}.${k.slice(0, 40)}: unknown field (allowed: version, count, authorization-rules)`);
  if (s.version !== undefined && typeof s.version !== 'string') throw invalid(`${p}.version must be a string`);
  if (s.count !== undefined && (typeof s.count !== 'number' || !Number.isInteger(s.count) || s.count < 1 || s.count > 16)) throw invalid(`${p}.count must be an integer 1..16`);
  const ar = s['authorization-rules'];
  if (!isObj(ar)) throw invalid(`${p}.authorization-rules is required and must be a JSON object`);
  for (const k of Object.keys(ar)) if (!['type', 'overall-claims', 'detached-claims'].includes(k)) throw invalid(`${p}.authorization-rules.${k.slice(0, 40)}: unknown field`);
  if (ar.type !== undefined && ar.type !== 'JWT') throw invalid(`${p}.authorization-rules.type must be "JWT"`);
  if (ar['overall-claims'] !== undefined) checkRules(ar['overall-claims'], GPU_OVERALL_CLAIMS, `${p}.authorization-rules.overall-claims`);
  if (ar['detached-claims'] !== undefined) checkRules(ar['detached-claims'], GPU_DETACHED_CLAIMS, `${p}.authorization-rules.detached-claims`);
}

/**
 * matchClaims applies NVIDIA's rule (claim_utils.validate_claims): every rule's claim must be
 * present and equal; nested objects field by field. Returns every failure, path first.
 */
export function matchClaims(claims: Readonly<Record<string, unknown>>, rules: Readonly<Record<string, unknown>>, path = ''): string[] {
  const out: string[] = [];
  for (const [k, want] of Object.entries(rules)) {
    const got = claims[k];
    const where = path ? `${path}.${k}` : k;
    if (got === undefined) {
      out.push(`${where}: absent, policy requires ${JSON.stringify(want)}`);
    } else if (isObj(want)) {
      if (!isObj(got)) out.push(`${where}: not an object`);
      else out.push(...matchClaims(got, want, where));
    } else if (JSON.stringify(got) !== JSON.stringify(want)) {
      out.push(`${where}: ${JSON.stringify(got)}, policy requires ${JSON.stringify(want)}`);
    }
  }
  return out;
}
