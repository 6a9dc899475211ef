/**
 * AMD KDS URL building (pure; AMD 57230 and SNP.md §3). Every URL tas ever asks AMD for is made
 * here, so the rules live in one place:
 *  - the product path is the product line (`Milan`, `Genoa` — also for Siena/Bergamo — `Turin`);
 *  - the VCEK path carries the hwid: hex of the 64-byte CHIP_ID on Milan/Genoa, hex of CHIP_ID[0..7]
 *    on Turin (the long form is a 404 there);
 *  - the SPLs are the REPORTED_TCB components (not CURRENT_TCB), decimal, and Turin adds fmcSPL;
 *  - never a URL from a masked (all-zero) CHIP_ID: there is no such chip.
 */
import { TasError } from '../errors';

export type Product = 'Milan' | 'Genoa' | 'Turin';
export type VekKind = 'VCEK' | 'VLEK';

/** ReportedTcb is the REPORTED_TCB decoded by the product's layout (fmc only on Turin). */
export interface ReportedTcb {
  readonly bootloader: number;
  readonly tee: number;
  readonly snp: number;
  readonly microcode: number;
  readonly fmc?: number | undefined;
}

/**
 * hwidFor returns the KDS hwid of a CHIP_ID for a product (lowercase hex). A CHIP_ID that names no
 * chip can never be fetched, so it is a definitive 400 (never 503 + Retry-After, which would send
 * the agent into retries that cannot succeed): all zero (MASK_CHIP_ID: the VCEK must come with the
 * evidence), or a Turin CHIP_ID whose bytes 8..63 are not zero (Turin chip ids are 8 bytes).
 */
export function hwidFor(product: Product, chipId: Uint8Array): string {
  if (chipId.length !== 64) throw new Error(`CHIP_ID must be 64 bytes, got ${chipId.length}`);
  if (chipId.every((b) => b === 0)) {
    throw new TasError('TEE_VERIFICATION_FAILED', 'CHIP_ID is masked (all zero): no VCEK can be looked up for it; the VCEK must be sent in tee-certificates', {
      reason: 'CHIP_ID_MASKED_NO_VCEK',
    });
  }
  if (product === 'Turin' && chipId.subarray(8).some((b) => b !== 0)) {
    throw new TasError('TEE_VERIFICATION_FAILED', 'Turin CHIP_ID bytes 8..63 are not zero: it names no chip', { reason: 'CHIP_ID_MALFORMED' });
  }
  const hex = Buffer.from(chipId).toString('hex');
  return product === 'Turin' ? hex.slice(0, 16) : hex;
}

function spl(name: string, v: number | undefined): string {
  if (v === undefined || !Number.isInteger(v) || v < 0 || v > 255) throw new Error(`${name} must be 0..255, got ${String(v)}`);
  return String(v);
}

/** vcekPath is the path (and query) of a VCEK on KDS. */
export function vcekPath(product: Product, chipId: Uint8Array, tcb: ReportedTcb): string {
  const q = new URLSearchParams();
  if (product === 'Turin') q.set('fmcSPL', spl('fmcSPL', tcb.fmc));
  q.set('blSPL', spl('blSPL', tcb.bootloader));
  q.set('teeSPL', spl('teeSPL', tcb.tee));
  q.set('snpSPL', spl('snpSPL', tcb.snp));
  q.set('ucodeSPL', spl('ucodeSPL', tcb.microcode));
  return `/vcek/v1/${product}/${hwidFor(product, chipId)}?${q.toString()}`;
}

/** certChainPath is the ASK+ARK (VCEK) or ASVK+ARK (VLEK) chain path. */
export function certChainPath(product: Product, kind: VekKind): string {
  return `/${kind === 'VCEK' ? 'vcek' : 'vlek'}/v1/${product}/cert_chain`;
}

/** crlPath is the ARK-signed CRL path for VCEK or VLEK chains. */
export function crlPath(product: Product, kind: VekKind): string {
  return `/${kind === 'VCEK' ? 'vcek' : 'vlek'}/v1/${product}/crl`;
}

/** joinUrl joins TAS_KDS_BASE_URL and a path without doubling or dropping slashes. */
export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + path;
}

/** vcekCacheKey: product + hwid + every SPL including FMC (attestation-rs #89: FMC was missing). */
/**
 * vlekIndexKey names the provisioned VLEKs of a product and REPORTED_TCB. A VLEK is per CSP and
 * TCB, not per chip, and a report names no CSP: every VLEK under this key is a candidate and the
 * report's signature picks (PROTOCOL.md §2).
 */
export function vlekIndexKey(product: Product, tcb: ReportedTcb): string {
  const f = product === 'Turin' ? `fmc${tcb.fmc ?? 'x'}_` : '';
  return `vlek/${product}/${f}bl${tcb.bootloader}_tee${tcb.tee}_snp${tcb.snp}_ucode${tcb.microcode}`;
}

export function vcekCacheKey(product: Product, chipId: Uint8Array, tcb: ReportedTcb): string {
  const f = product === 'Turin' ? `fmc${tcb.fmc ?? 'x'}_` : '';
  return `vcek/${product}/${hwidFor(product, chipId)}/${f}bl${tcb.bootloader}_tee${tcb.tee}_snp${tcb.snp}_ucode${tcb.microcode}`;
}
