/**
 * peekReport: what the KDS module needs to fetch a VCEK before verification — product, signer,
 * REPORTED_TCB decoded by product layout, and the hwID for the KDS URL. Nothing here is trusted
 * yet (the signature is checked later), but it is bounded and never builds a hwID from a masked
 * CHIP_ID (SNP.md §3).
 */
import { TasError } from '../errors';
import { NativeError, nativeToTasError, parseReport, type ParsedReport } from '../native';
import { isAllZero, toHex } from './claims';
import { detectProduct, type Product } from './product';
import { decodeTcb, type TcbParts } from './tcb';

/**
 * ParsedOnce is a report parsed by peekReport, handed to SnpVerifier so the report is parsed once
 * per request. It holds its own copy of the bytes it parsed: the verifier checks the signature over
 * exactly those bytes, so the parsed fields can never describe other bytes than the signed ones
 * (even if the caller's buffer were changed in between).
 */
export class ParsedOnce {
  constructor(
    /** peekReport's own copy of the report bytes (nobody else holds it). */
    readonly bytes: Buffer,
    readonly report: ParsedReport,
  ) {}
}

/** ReportPeek is the unverified summary of a report. */
export interface ReportPeek {
  /** The parse itself, for SnpVerifier (SnpEvidence.parsed): one parse per request. */
  readonly parsed: ParsedOnce;
  readonly version: number;
  /** undefined when the product cannot be decided (reason in productError). */
  readonly product: Product | undefined;
  readonly productError: TasError | undefined;
  /** CHIP_ID as 128 lowercase hex characters. */
  readonly chipId: string;
  readonly chipIdMasked: boolean;
  /** REPORTED_TCB decoded by the product's layout; undefined when the product is unknown. */
  readonly reportedTcb: TcbParts | undefined;
  /** Raw REPORTED_TCB (8 bytes, hex). */
  readonly reportedTcbRaw: string;
  readonly signingKey: 'VCEK' | 'VLEK' | undefined;
  /** hwID for the KDS URL: 128 hex (Milan/Genoa) or 16 hex (Turin); undefined when masked, VLEK, or product unknown. */
  readonly hwIdForKds: string | undefined;
}

/**
 * peekReport parses a report (shape checks included) and summarises it. Throws TasError
 * TEE_EVIDENCE_MALFORMED / TEE_VERIFICATION_FAILED for a report that can never verify.
 */
export function peekReport(report: Buffer, opts: { v2Product?: Product | undefined; expected?: Product | undefined } = {}): ReportPeek {
  let r;
  // A private copy: the parse and the later signature check see the same bytes (ParsedOnce).
  const bytes = Buffer.from(report);
  try {
    r = parseReport(bytes);
  } catch (e) {
    if (e instanceof NativeError) throw nativeToTasError(e);
    throw e;
  }
  let product: Product | undefined;
  let productError: TasError | undefined;
  try {
    product = detectProduct(r.version, r.cpuid, { v2Product: opts.v2Product, expected: opts.expected }).product;
  } catch (e) {
    if (!(e instanceof TasError)) throw e;
    productError = e;
  }
  const masked = isAllZero(r.chipId);
  const signingKey = r.signingKey === 0 ? 'VCEK' : r.signingKey === 1 ? 'VLEK' : undefined;
  let hwIdForKds: string | undefined;
  if (product && !masked && signingKey === 'VCEK') {
    // Turin KDS wants CHIP_ID[0..7] only (the 64-byte form 404s); Milan/Genoa the full 64 bytes.
    hwIdForKds = toHex(product === 'Turin' ? r.chipId.subarray(0, 8) : r.chipId);
  }
  return {
    parsed: new ParsedOnce(bytes, r),
    version: r.version,
    product,
    productError,
    chipId: toHex(r.chipId),
    chipIdMasked: masked,
    reportedTcb: product ? decodeTcb(product, r.reportedTcb) : undefined,
    reportedTcbRaw: toHex(r.reportedTcb),
    signingKey,
    hwIdForKds,
  };
}
