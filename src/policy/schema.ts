/**
 * The policy document (PROTOCOL.md §3.1): strict shape, bounded sizes, precise messages. Parsing
 * never changes the document: the signature covers it exactly as sent (JCS of everything except
 * `signature`), so tas stores and returns the document byte-for-byte in meaning.
 */
import { TasError } from '../errors';

/** POLICY_ID_RE is the one id syntax (PROTOCOL.md §1); key ids use it too. */
export const POLICY_ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;

export type PolicyType = 'SEV' | 'TDX';
/** Which route family a document came through; only `first` admits rules-only (legacy) signatures. */
export type Dialect = 'management' | 'first';

export interface PolicyMetadata {
  readonly name?: string;
  readonly version?: string;
  readonly description?: string;
  /** As written (`SNP` stays `SNP` so that the signature still verifies); see policyTypeOf. */
  readonly policy_type: 'SEV' | 'SNP' | 'TDX';
  readonly policy_id: string;
  readonly key_id?: string;
  readonly require_report_data_binding?: boolean;
}

export interface PolicySignature {
  readonly algorithm: 'SHA384';
  readonly padding: 'PSS' | 'PKCS1v15';
  /** Standard base64 of the RSA signature. */
  readonly value: string;
  /** First-dialect signers: the signature covers only `validation_rules` (sorted-key compact JSON). */
  readonly signed_data?: 'validation_rules';
}

export interface PolicyDocument {
  readonly metadata: PolicyMetadata;
  readonly validation_rules: Readonly<Record<string, unknown>>;
  readonly signature?: PolicySignature;
}

/** Size bounds (the management body limit is 1 MiB; these keep single fields sane). */
export const DOC_LIMITS = { maxText: 1024, maxSignatureB64: 2048, maxDocumentBytes: 1024 * 1024 } as const;

const META_KEYS = new Set(['name', 'version', 'description', 'policy_type', 'policy_id', 'key_id', 'require_report_data_binding']);
const TOP_KEYS = new Set(['metadata', 'validation_rules', 'signature']);
const SIG_KEYS = new Set(['algorithm', 'padding', 'value', 'signed_data']);
const B64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function invalid(detail: string, reason = 'POLICY_SCHEMA'): TasError {
  return new TasError('POLICY_INVALID', detail, { reason });
}

/** policyTypeOf reads `SNP` as `SEV`. */
export function policyTypeOf(doc: PolicyDocument): PolicyType {
  return doc.metadata.policy_type === 'TDX' ? 'TDX' : 'SEV';
}

/** normalisePolicyType maps a wire policy type (SEV, SNP, TDX; any case) to SEV|TDX, else undefined. */
export function normalisePolicyType(t: unknown): PolicyType | undefined {
  if (typeof t !== 'string') return undefined;
  const u = t.toUpperCase();
  if (u === 'SEV' || u === 'SNP') return 'SEV';
  if (u === 'TDX') return 'TDX';
  return undefined;
}

/** isLegacySigned tells whether the signature covers validation_rules only (first dialect). */
export function isLegacySigned(doc: PolicyDocument): boolean {
  return doc.signature?.signed_data === 'validation_rules';
}

function text(meta: Record<string, unknown>, key: string, required: boolean): void {
  const v = meta[key];
  if (v === undefined) {
    if (required) throw invalid(`metadata.${key} is required`, 'POLICY_METADATA_FIELD');
    return;
  }
  if (typeof v !== 'string') throw invalid(`metadata.${key} must be a string`, 'POLICY_METADATA_FIELD');
  if (v.length > DOC_LIMITS.maxText) throw invalid(`metadata.${key} is longer than ${DOC_LIMITS.maxText} characters`, 'POLICY_METADATA_FIELD');
}

/**
 * parseDocument checks a policy document's shape. `management` documents need every metadata
 * field and may not carry `signed_data`; `first`-dialect documents (filled in by the first-dialect
 * store route) may omit name/version/description/key_id and may carry a rules-only signature.
 * Rules are checked separately (rules.ts compileRules) so that all claim problems are named at once.
 */
export function parseDocument(raw: unknown, dialect: Dialect): PolicyDocument {
  if (raw === undefined || raw === null) {
    throw new TasError('POLICY_BODY_MISSING', 'request body is empty', { reason: 'POLICY_BODY_MISSING' });
  }
  if (!isObj(raw)) throw new TasError('POLICY_NOT_OBJECT', `policy is ${Array.isArray(raw) ? 'an array' : typeof raw}`, { reason: 'POLICY_NOT_OBJECT' });
  if (!('metadata' in raw)) throw new TasError('POLICY_METADATA_MISSING', 'policy has no metadata', { reason: 'POLICY_METADATA_MISSING' });
  if (!('validation_rules' in raw)) {
    throw new TasError('POLICY_RULES_MISSING', 'policy has no validation_rules', { reason: 'POLICY_RULES_MISSING' });
  }
  for (const k of Object.keys(raw)) {
    if (!TOP_KEYS.has(k)) throw invalid(`unknown top-level field '${k}' (allowed: metadata, validation_rules, signature)`);
  }
  // A rules-only signature on a management route is refused before anything else: the fix is to
  // re-sign, whatever else is wrong.
  if (dialect === 'management' && isObj(raw.signature) && 'signed_data' in raw.signature) parseSignature(raw.signature, dialect);
  const meta = raw.metadata;
  if (!isObj(meta)) throw invalid('metadata must be a JSON object');
  for (const k of Object.keys(meta)) {
    if (!META_KEYS.has(k)) throw invalid(`unknown field 'metadata.${k}' (allowed: ${[...META_KEYS].join(', ')})`, 'POLICY_METADATA_FIELD');
  }
  const full = dialect === 'management';
  text(meta, 'name', full);
  text(meta, 'version', full);
  text(meta, 'description', full);
  if (meta.policy_type === undefined) throw invalid('metadata.policy_type is required (SEV or TDX; SNP is read as SEV)', 'POLICY_METADATA_FIELD');
  if (meta.policy_type !== 'SEV' && meta.policy_type !== 'SNP' && meta.policy_type !== 'TDX') {
    throw invalid(`metadata.policy_type must be SEV, SNP or TDX, got ${JSON.stringify(meta.policy_type).slice(0, 40)}`, 'POLICY_METADATA_FIELD');
  }
  if (typeof meta.policy_id !== 'string') throw invalid('metadata.policy_id is required and must be a string', 'POLICY_METADATA_FIELD');
  if (!POLICY_ID_RE.test(meta.policy_id)) {
    throw new TasError('POLICY_ID_INVALID', `metadata.policy_id ${JSON.stringify(meta.policy_id.slice(0, 140))} does not match ^[A-Za-z0-9_.-]{1,128}$`, {
      reason: 'POLICY_ID_INVALID',
    });
  }
  if (meta.key_id === undefined) {
    if (full) throw invalid('metadata.key_id is required', 'POLICY_METADATA_FIELD');
  } else if (typeof meta.key_id !== 'string' || !POLICY_ID_RE.test(meta.key_id)) {
    throw invalid('metadata.key_id must match ^[A-Za-z0-9_.-]{1,128}$', 'POLICY_METADATA_FIELD');
  }
  if (meta.require_report_data_binding !== undefined && typeof meta.require_report_data_binding !== 'boolean') {
    throw invalid('metadata.require_report_data_binding must be true or false', 'POLICY_METADATA_FIELD');
  }
  if (!isObj(raw.validation_rules)) throw invalid('validation_rules must be a JSON object', 'POLICY_RULES_NOT_OBJECT');
  const nonFinite = nonFiniteAt(raw.validation_rules, 'validation_rules');
  if (nonFinite !== undefined) {
    throw invalid(`${nonFinite} is not a finite number (a JSON number beyond the double range, e.g. 1e400, parses as Infinity and has no canonical form)`, 'POLICY_NUMBER_NOT_FINITE');
  }
  if (raw.signature !== undefined) parseSignature(raw.signature, dialect);
  return raw as unknown as PolicyDocument;
}

/**
 * nonFiniteAt returns the path of the first non-finite number in a JSON value (JSON.parse turns
 * 1e400 into Infinity): RFC 8785 and Python's json.dumps cannot serialise it, so neither signature
 * form nor the stored digest exists for such a document. Metadata is checked field by field above.
 */
export function nonFiniteAt(v: unknown, path: string, depth = 0): string | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? undefined : path;
  if (v === null || typeof v !== 'object' || depth > 64) return undefined;
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) {
      const p = nonFiniteAt(x, `${path}[${i}]`, depth + 1);
      if (p !== undefined) return p;
    }
    return undefined;
  }
  for (const [k, x] of Object.entries(v)) {
    const p = nonFiniteAt(x, `${path}.${k}`, depth + 1);
    if (p !== undefined) return p;
  }
  return undefined;
}

function parseSignature(sig: unknown, dialect: Dialect): void {
  if (!isObj(sig)) throw invalid('signature must be a JSON object', 'POLICY_SIGNATURE_FIELD');
  if ('signed_data' in sig && dialect === 'management') {
    throw new TasError('POLICY_SIGNED_DATA_UNSUPPORTED', `signature.signed_data=${JSON.stringify(sig.signed_data)?.slice(0, 40)} on a management route`, {
      reason: 'POLICY_SIGNED_DATA',
    });
  }
  for (const k of Object.keys(sig)) {
    if (!SIG_KEYS.has(k)) throw invalid(`unknown field 'signature.${k}' (allowed: algorithm, padding, value)`, 'POLICY_SIGNATURE_FIELD');
  }
  if (sig.algorithm !== 'SHA384') throw invalid(`signature.algorithm must be "SHA384", got ${JSON.stringify(sig.algorithm)?.slice(0, 40)}`, 'POLICY_SIGNATURE_FIELD');
  if (sig.padding !== 'PSS' && sig.padding !== 'PKCS1v15') {
    throw invalid(`signature.padding must be "PSS" or "PKCS1v15", got ${JSON.stringify(sig.padding)?.slice(0, 40)}`, 'POLICY_SIGNATURE_FIELD');
  }
  if (typeof sig.value !== 'string' || sig.value.length > DOC_LIMITS.maxSignatureB64 || !B64_RE.test(sig.value) || sig.value.length % 4 !== 0) {
    throw invalid('signature.value must be standard base64 of an RSA signature', 'POLICY_SIGNATURE_FIELD');
  }
  if (sig.signed_data !== undefined && sig.signed_data !== 'validation_rules') {
    throw invalid(`signature.signed_data may only be "validation_rules", got ${JSON.stringify(sig.signed_data)?.slice(0, 40)}`, 'POLICY_SIGNATURE_FIELD');
  }
}
