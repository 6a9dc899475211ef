/**
 * Genuine Intel TDX vectors (test/fixtures/tdx-vectors, provenance in its PROVENANCE.md) and the
 * Intel roots (test/fixtures/intel-roots), loaded as native verification inputs. `rawJsonSpan`
 * takes the exact bytes of a PCS body member the way the product must (never re-serialised).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { PcsSignedJson, TdxVerifyInput } from '../../src/native/index.js';

export const TDX_FIXTURES = join(__dirname, '..', 'fixtures');
export const TDX_VECTORS_DIR = join(TDX_FIXTURES, 'tdx-vectors');
export const INTEL_ROOTS_DIR = join(TDX_FIXTURES, 'intel-roots');

/** INTEL_ROOT_DER is the genuine Intel SGX Root CA (DER). */
export const INTEL_ROOT_DER = readFileSync(join(INTEL_ROOTS_DIR, 'Intel_SGX_Root_CA.der'));

/**
 * rawJsonSpan returns the bytes of the JSON object value of top-level member `key` exactly as they
 * appear in `text` (from its `{` to the matching `}`), scanning strings and escapes so braces
 * inside strings do not count. Throws if the member is missing or not an object.
 */
export function rawJsonSpan(text: Buffer, key: string): Buffer {
  const s = text.toString('latin1');
  const at = s.indexOf(`"${key}"`);
  if (at < 0) throw new Error(`no member "${key}"`);
  let i = at + key.length + 2;
  while (i < s.length && /[\s:]/.test(s[i]!)) i++;
  if (s[i] !== '{') throw new Error(`member "${key}" is not an object`);
  let depth = 0;
  let inString = false;
  for (let j = i; j < s.length; j++) {
    const c = s[j];
    if (inString) {
      if (c === '\\') j++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return text.subarray(i, j + 1);
  }
  throw new Error(`member "${key}" is not terminated`);
}

/** signedJson builds the native input for one PCS response body + its issuer chain. */
export function signedJson(body: Buffer, key: 'tcbInfo' | 'enclaveIdentity', chain: Buffer): PcsSignedJson {
  const parsed = JSON.parse(body.toString('utf8')) as { signature: string };
  return { bodyBytes: rawJsonSpan(body, key), signature: Buffer.from(parsed.signature, 'hex'), chain };
}

export interface TdxVector {
  name: string;
  dir: string;
  quote: Buffer;
  tcbInfoJson: Buffer;
  qeIdentityJson: Buffer;
  tcbInfoChain: Buffer;
  qeIdentityChain: Buffer;
  pckCrl: Buffer;
  pckCrlChain: Buffer;
  rootCrl: Buffer;
  /** vector.json `verify_at` in whole seconds. */
  at: number;
  validWindow: [number, number];
  expected: Record<string, unknown> & {
    pck: { ext: Record<string, unknown> & { fmspc: string; pceid: string; pcesvn: number; sgx_tcb_comp_svn: number[]; cpusvn: string; sgx_type: number; ppid: string }; serial: string; issuer_cn: string };
    quote: { version: number; body_type: number | null; body_size: number; signed_len: number; sig_data_len: number; trailing_bytes: number; qe_auth_data_len: number; quote_size: number };
    qe: { isvsvn: number; mrsigner: string };
    td: Record<string, string>;
  };
}

const secs = (iso: string): number => Math.floor(Date.parse(iso) / 1000);

function load(name: string, expected: Record<string, TdxVector['expected']>): TdxVector {
  const dir = join(TDX_VECTORS_DIR, name);
  const f = (n: string): Buffer => readFileSync(join(dir, n));
  const meta = JSON.parse(f('vector.json').toString('utf8')) as { verify_at: string; valid_window: [string, string] };
  return {
    name,
    dir,
    quote: f('quote.bin'),
    tcbInfoJson: f('tcb_info.json'),
    qeIdentityJson: f('qe_identity.json'),
    tcbInfoChain: f('tcb_info_issuer_chain.pem'),
    qeIdentityChain: f('qe_identity_issuer_chain.pem'),
    pckCrl: f('pck_crl.der'),
    pckCrlChain: f('pck_crl_issuer_chain.pem'),
    rootCrl: f('root_ca_crl.der'),
    at: secs(meta.verify_at),
    validWindow: [secs(meta.valid_window[0]), secs(meta.valid_window[1])],
    expected: expected[name]!,
  };
}

/** TDX_VECTORS are every genuine vector directory. */
export const TDX_VECTORS: TdxVector[] = (() => {
  const expected = JSON.parse(readFileSync(join(TDX_VECTORS_DIR, 'expected.json'), 'utf8')) as Record<string, TdxVector['expected']>;
  return readdirSync(TDX_VECTORS_DIR)
    .filter((n) => statSync(join(TDX_VECTORS_DIR, n)).isDirectory())
    .sort()
    .map((n) => load(n, expected));
})();

/** tdxInput is the native verification input of a vector at its `verify_at`. */
export function tdxInput(v: TdxVector, over: Partial<TdxVerifyInput> = {}): TdxVerifyInput {
  return {
    quote: v.quote,
    trustRoots: [INTEL_ROOT_DER],
    rootCrl: v.rootCrl,
    pckCrl: v.pckCrl,
    tcbInfo: signedJson(v.tcbInfoJson, 'tcbInfo', v.tcbInfoChain),
    qeIdentity: signedJson(v.qeIdentityJson, 'enclaveIdentity', v.qeIdentityChain),
    at: v.at,
    ...over,
  };
}
