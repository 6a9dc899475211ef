/**
 * Product detection (SNP.md §1.2, §1.7): the signed CPUID fields of v3+ reports name the product;
 * v2 reports do not, so their product comes from TAS_SNP_V2_PRODUCT or they are refused.
 */
import { TasError } from '../errors';
import type { SnpReason } from './reasons';

/** Product is an AMD KDS product line (Siena/Bergamo use Genoa). */
export type Product = 'Milan' | 'Genoa' | 'Turin';

/** PRODUCTS lists the products tas has pinned roots for. */
export const PRODUCTS: readonly Product[] = ['Milan', 'Genoa', 'Turin'];

/** isProduct narrows a string. */
export function isProduct(s: unknown): s is Product {
  return typeof s === 'string' && (PRODUCTS as readonly string[]).includes(s);
}

/** CpuId is the CPUID_FAM_ID / CPUID_MOD_ID / CPUID_STEP triple of a v3+ report. */
export interface CpuId {
  readonly family: number;
  readonly model: number;
  readonly stepping: number;
}

/**
 * productFromCpuid maps family/model to a product. Ranges follow SNP.md §1.7 (wider than
 * go-sev-guest's exact models, which reject Bergamo/Siena and dense Turin parts):
 *   family 0x19: models 0x00–0x0F Milan; 0x10–0x1F and 0xA0–0xAF Genoa (Genoa, Bergamo, Siena)
 *   family 0x1A: models 0x00–0x11 Turin
 * Venice (family 0x1A models 0x50–0x57, 0x90–0xAF, 0xC0–0xC7 per virtee) is recognised but
 * refused: tas has no pinned Venice roots, so it can never verify such a report.
 */
export function productFromCpuid(c: CpuId): Product | 'Venice' | undefined {
  const { family: f, model: m } = c;
  if (f === 0x19) {
    if (m <= 0x0f) return 'Milan';
    if ((m >= 0x10 && m <= 0x1f) || (m >= 0xa0 && m <= 0xaf)) return 'Genoa';
    return undefined;
  }
  if (f === 0x1a) {
    if (m <= 0x11) return 'Turin';
    if ((m >= 0x50 && m <= 0x57) || (m >= 0x90 && m <= 0xaf) || (m >= 0xc0 && m <= 0xc7)) return 'Venice';
  }
  return undefined;
}

/** ProductDecision says which product a report is and where that came from. */
export interface ProductDecision {
  readonly product: Product;
  readonly source: 'cpuid' | 'config';
}

const hex2 = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;

/**
 * detectProduct decides the product of a report. v3+ (including v4) uses CPUID; an explicit
 * `expected` product (CLI --product, or a pinned product) must agree. v2 uses `v2Product`
 * (TAS_SNP_V2_PRODUCT) or `expected`, else it is refused; Turin is never accepted from v2 (its TCB
 * layout would be ambiguous, SNP.md §5.2).
 */
export function detectProduct(version: number, cpuid: CpuId | undefined, opts: { v2Product?: Product | undefined; expected?: Product | undefined } = {}): ProductDecision {
  // A v3+ report whose CPUID bytes are all zero names no product either: treat it like v2
  // (configured product, never Turin) rather than guessing.
  const noCpuid = cpuid === undefined || (cpuid.family === 0 && cpuid.model === 0 && cpuid.stepping === 0);
  if (version >= 3 && !noCpuid) {
    const p = productFromCpuid(cpuid!);
    const fm = `CPUID family ${hex2(cpuid!.family)} model ${hex2(cpuid!.model)}`;
    if (p === 'Venice') throw verr('SNP_ERR_PRODUCT_UNSUPPORTED', `${fm} is Venice: no pinned roots`);
    if (p === undefined) throw verr('SNP_ERR_PRODUCT_UNKNOWN', `${fm} is not a known SEV-SNP product`);
    if (opts.expected !== undefined && opts.expected !== p) {
      throw verr('SNP_ERR_PRODUCT_MISMATCH', `report CPUID says ${p}, expected ${opts.expected}`);
    }
    return { product: p, source: 'cpuid' };
  }
  const p = opts.expected ?? opts.v2Product;
  if (p === undefined) {
    throw verr('SNP_ERR_V2_PRODUCT_UNSET',
      `report version ${version} does not name its product (no CPUID): TAS_SNP_V2_PRODUCT is unset (tas verify: --product)`);
  }
  if (p === 'Turin') throw verr('SNP_ERR_V2_TURIN', 'Turin reports must be version 3 or later with CPUID (the TCB layout is otherwise ambiguous)');
  return { product: p, source: 'config' };
}

function verr(reason: SnpReason, detail: string): TasError {
  return new TasError('TEE_VERIFICATION_FAILED', detail, { reason });
}
