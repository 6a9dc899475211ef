/**
 * TCB_VERSION decoding by product (SNP.md §1.4; AMD 56860 "TCB_VERSION"). The layout is chosen by
 * product, never by report version: Milan/Genoa put BOOT_LOADER, TEE at bytes 0–1, SNP at 6,
 * MICROCODE at 7; Turin puts FMC at 0, BOOT_LOADER, TEE, SNP at 1–3, MICROCODE at 7. The
 * remaining bytes are reserved and are compared too (go-sev-guest compares the composed value).
 */
import type { Product } from './product';

/** TcbClaims is a decoded TCB; `fmc` only on Turin. */
export interface TcbClaims {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  fmc?: number;
}

/** TcbParts is a decoded TCB with the reserved bytes (spl_4..spl_7 in KDS terms). */
export interface TcbParts extends TcbClaims {
  /** Reserved bytes by KDS name; Turin has no spl_4. */
  readonly reserved: { spl4?: number; spl5: number; spl6: number; spl7: number };
}

/** decodeTcb reads an 8-byte TCB_VERSION in the product's layout. */
export function decodeTcb(product: Product, b: Uint8Array): TcbParts {
  if (b.length !== 8) throw new RangeError('TCB_VERSION is 8 bytes');
  if (product === 'Turin') {
    return { fmc: b[0]!, bootloader: b[1]!, tee: b[2]!, snp: b[3]!, microcode: b[7]!, reserved: { spl5: b[4]!, spl6: b[5]!, spl7: b[6]! } };
  }
  return { bootloader: b[0]!, tee: b[1]!, snp: b[6]!, microcode: b[7]!, reserved: { spl4: b[2]!, spl5: b[3]!, spl6: b[4]!, spl7: b[5]! } };
}

/** tcbClaims drops the reserved bytes (what policies see). */
export function tcbClaims(t: TcbParts): TcbClaims {
  const c: TcbClaims = { bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode };
  if (t.fmc !== undefined) c.fmc = t.fmc;
  return c;
}

/** COMPONENTS names the components compared per product. */
export function components(product: Product): ReadonlyArray<keyof TcbClaims> {
  return product === 'Turin' ? ['fmc', 'bootloader', 'tee', 'snp', 'microcode'] : ['bootloader', 'tee', 'snp', 'microcode'];
}

/**
 * tcbLeq tells whether a <= b component-wise (each byte is an independent SVN; never compare the
 * u64). Returns the first component where a > b, or undefined.
 */
export function firstExceeding(product: Product, a: TcbClaims, b: TcbClaims): keyof TcbClaims | undefined {
  for (const k of components(product)) if ((a[k] ?? 0) > (b[k] ?? 0)) return k;
  return undefined;
}

/** formatTcb renders a TCB for logs, e.g. `bl=10 tee=0 snp=23 ucode=84`. */
export function formatTcb(t: TcbClaims): string {
  return `${t.fmc !== undefined ? `fmc=${t.fmc} ` : ''}bl=${t.bootloader} tee=${t.tee} snp=${t.snp} ucode=${t.microcode}`;
}
