/**
 * Policy signatures exactly as PROTOCOL.md §3.2: RSA with SHA-384, either RSASSA-PSS (MGF1-SHA-384,
 * ANY salt length: signers use 48 or the maximum, so verification recovers the salt length) or
 * PKCS#1 v1.5, over the RFC 8785 (JCS) canonical JSON of the whole document minus `signature`.
 *
 * First-dialect (legacy) signatures cover only `validation_rules`, serialised as Python's
 * `json.dumps(rules, sort_keys=True, separators=(",", ":"))` (ASCII-escaped). Such a signature
 * leaves metadata — and so the key binding — unsigned; see keyBindingSigned in ./index.ts.
 */
import { constants, createHash, createPrivateKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import canonicalize from 'canonicalize';
import { TasError } from '../errors';
import type { PolicyDocument, PolicySignature } from './schema';
import type { TrustedKey } from './trust';

/**
 * jcs returns the RFC 8785 canonical form of a JSON value. A value without one (a non-finite
 * number, a value with no JSON form) is a malformed policy, whoever calls: POLICY_INVALID (400),
 * never an internal error. parseDocument refuses non-finite numbers first; this is the backstop.
 */
export function jcs(value: unknown): string {
  let s: string | undefined;
  try {
    s = canonicalize(value);
  } catch (e) {
    throw new TasError('POLICY_INVALID', `the document has no RFC 8785 canonical form: ${(e as Error).message}`, { reason: 'POLICY_NOT_CANONICAL' });
  }
  if (s === undefined) throw new TasError('POLICY_INVALID', 'the document has no JSON form', { reason: 'POLICY_NOT_CANONICAL' });
  return s;
}

/** withoutSignature returns a shallow copy of the document without its `signature` member. */
export function withoutSignature(doc: object): Record<string, unknown> {
  const { signature: _sig, ...rest } = doc as Record<string, unknown>;
  return rest;
}

/** documentSigningBytes is what a whole-document signature covers. */
export function documentSigningBytes(doc: object): Buffer {
  return Buffer.from(jcs(withoutSignature(doc)), 'utf8');
}

/**
 * pythonSortedCompactJson reproduces `json.dumps(v, sort_keys=True, separators=(",", ":"))` of
 * Python 3 for JSON-parsed values: keys sorted, no spaces, every character outside printable ASCII
 * escaped as \uXXXX (ensure_ascii). Integers print the same; floats are not used by rules.
 */
export function pythonSortedCompactJson(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new TasError('POLICY_INVALID', 'validation_rules hold a non-finite number (no sorted-key JSON form)', { reason: 'POLICY_NOT_CANONICAL' });
    return String(v);
  }
  if (typeof v === 'string') {
    return JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
  if (Array.isArray(v)) return `[${v.map(pythonSortedCompactJson).join(',')}]`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).sort();
    return `{${keys.map((k) => `${pythonSortedCompactJson(k)}:${pythonSortedCompactJson(o[k])}`).join(',')}}`;
  }
  throw new TasError('POLICY_INVALID', `validation_rules hold a value of type ${typeof v} (no JSON form)`, { reason: 'POLICY_NOT_CANONICAL' });
}

/** legacySigningBytes is what a first-dialect (rules-only) signature covers. */
export function legacySigningBytes(doc: PolicyDocument): Buffer {
  return Buffer.from(pythonSortedCompactJson(doc.validation_rules), 'utf8');
}

/** signingBytes picks the covered bytes from the signature's form. */
export function signingBytes(doc: PolicyDocument): Buffer {
  return doc.signature?.signed_data === 'validation_rules' ? legacySigningBytes(doc) : documentSigningBytes(doc);
}

function padOpts(padding: PolicySignature['padding'], key: KeyObject, forSign: boolean) {
  return padding === 'PSS'
    ? {
        key,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        // Verification recovers the salt length (AUTO accepts 48 and maximum alike); signing uses 48
        // unless the caller asks for the maximum.
        saltLength: forSign ? 48 : constants.RSA_PSS_SALTLEN_AUTO,
      }
    : { key, padding: constants.RSA_PKCS1_PADDING };
}

/** SignatureVerdict says which trusted key verified, or why none did. */
export type SignatureVerdict =
  | { readonly ok: true; readonly key: TrustedKey; readonly covers: 'document' | 'rules' }
  | { readonly ok: false; readonly reason: string };

/** verifyDocumentSignature tries every trusted key (constant work per key; no early data leak). */
export function verifyDocumentSignature(doc: PolicyDocument, keys: readonly TrustedKey[]): SignatureVerdict {
  const sig = doc.signature;
  if (sig === undefined) return { ok: false, reason: 'policy is not signed' };
  if (sig.algorithm !== 'SHA384') return { ok: false, reason: `unsupported algorithm ${String(sig.algorithm)}` };
  if (keys.length === 0) return { ok: false, reason: 'no policy-signing key is trusted (TAS_POLICY_TRUST is unset or empty)' };
  const value = Buffer.from(sig.value, 'base64');
  const data = signingBytes(doc);
  const covers = sig.signed_data === 'validation_rules' ? 'rules' : 'document';
  for (const k of keys) {
    const bytes = (k.bits + 7) >> 3;
    if (value.length !== bytes) continue;
    try {
      if (cryptoVerify('sha384', data, padOpts(sig.padding, k.key, false), value)) return { ok: true, key: k, covers };
    } catch {
      // A malformed signature for this key size is simply "does not verify with this key".
    }
  }
  return { ok: false, reason: `signature (${sig.padding}, covers ${covers}) does not verify with any of ${keys.length} trusted key(s)` };
}

/** SignOptions for signPolicy (CLI `tas policy sign`, tests). */
export interface SignOptions {
  readonly padding?: 'PSS' | 'PKCS1v15';
  /** PSS salt: 48 (default, like the original signer) or 'max'. */
  readonly saltLength?: 48 | 'max';
  /** Sign only validation_rules like first-dialect signers (tests and migration tooling only). */
  readonly legacyRulesOnly?: boolean;
}

/** signPolicy returns a copy of the document with a fresh `signature`. */
export function signPolicy(doc: object, privateKey: KeyObject | string, opts: SignOptions = {}): Record<string, unknown> {
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  const padding = opts.padding ?? 'PSS';
  const base = withoutSignature(doc);
  const data = opts.legacyRulesOnly
    ? Buffer.from(pythonSortedCompactJson(base.validation_rules), 'utf8')
    : Buffer.from(jcs(base), 'utf8');
  const o = padOpts(padding, key, true);
  if (padding === 'PSS' && opts.saltLength === 'max') (o as { saltLength: number }).saltLength = constants.RSA_PSS_SALTLEN_MAX_SIGN;
  const value = cryptoSign('sha384', data, o).toString('base64');
  const signature: Record<string, string> = { algorithm: 'SHA384', padding, value };
  if (opts.legacyRulesOnly) signature.signed_data = 'validation_rules';
  return { ...base, signature };
}

/** documentDigest names a document (with its signature) in the verification cache and audit. */
export function documentDigest(doc: object): string {
  return createHash('sha384').update(jcs(doc)).digest('hex');
}
