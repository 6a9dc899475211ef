/**
 * SEV-SNP evidence verification: choose the pinned ARK/ASK/ASVK for the report's product (plus
 * extra test anchors), let the native addon verify chain, report signature and CRL, then bind the
 * certificate to the report here (SNP.md §2.3): REPORTED_TCB == certificate SPLs (reserved bytes
 * too, FMC on Turin), certificate TCB <= CURRENT_TCB, CHIP_ID == hwID (8 bytes on Turin with
 * CHIP_ID[8..63] zero; no binding when CHIP_ID is masked), signer kind == SIGNING_KEY.
 * No cryptography happens in TypeScript.
 */
import { TasError } from '../errors';
import type { SnpReason } from './reasons';
import { NativeError, nativeToTasError, parseReport, verify as nativeVerify, type Check, type ParsedReport, type VekInfo } from '../native';
import { buildClaims, isAllZero, toHex, type Claims } from './claims';
import { detectProduct, type Product, type ProductDecision } from './product';
import { decodeTcb, firstExceeding, formatTcb, type TcbClaims } from './tcb';
import { ParsedOnce } from './peek';
import { anchorsFor, extraIntermediates, pinnedIntermediate, PINNED_ONLY, type SnpTrust } from './trust';

export type { Check } from '../native';

/** SnpEvidence is one report with the certificates to verify it. */
export interface SnpEvidence {
  /** The raw 1184-byte ATTESTATION_REPORT. */
  readonly report: Buffer;
  /** VCEK or VLEK (DER or PEM), matching the report's SIGNING_KEY. */
  readonly vek: Buffer;
  /** ASK (VCEK) or ASVK (VLEK); default AMD's pinned one for the product. */
  readonly intermediate?: Buffer | undefined;
  /** More untrusted ASK/ASVK candidates tried after the pinned and extra ones (KDS cert_chain). */
  readonly candidates?: readonly Buffer[] | undefined;
  /** ARK-signed CRL (DER or PEM); checked for freshness and the intermediate/leaf serials. */
  readonly crl?: Buffer | undefined;
  /** Verification time (certificate validity, CRL freshness). */
  readonly at: Date;
  /** Product the caller expects; must agree with the report's CPUID (v3+), names it for v2. */
  readonly product?: Product | undefined;
  /**
   * The report as peekReport parsed it (ReportPeek.parsed): reused instead of parsing again. Used
   * only when its bytes equal `report`; the signature is then checked over its own copy.
   */
  readonly parsed?: ParsedOnce | undefined;
  /**
   * Leave out the passed checks (the daemon's request path reads only claims and product; the
   * list, its detail texts and the addon's copy of it cost ~1-2 % of a cycle, #16). A failure
   * still carries its one failing check.
   */
  readonly withoutPassedChecks?: boolean | undefined;
}

/** SnpVerifierOptions configure an SnpVerifier. */
export interface SnpVerifierOptions {
  /** Anchors in force (default: AMD's pinned roots only). */
  readonly trust?: SnpTrust;
  /** TAS_SNP_V2_PRODUCT: product of version-2 reports; unset refuses them. */
  readonly v2Product?: Product | undefined;
  /**
   * Replace the anchors entirely (the offline `tas verify --ark` check). Never used by the daemon:
   * it would trust whatever the caller supplies.
   */
  readonly anchorsOverride?: readonly Buffer[] | undefined;
}

/** SnpVerification is a successful verification. */
export interface SnpVerification {
  readonly claims: Claims;
  readonly checks: Check[];
  readonly product: Product;
  readonly productSource: ProductDecision['source'];
  readonly vek: VekInfo;
  readonly anchorSha256: string;
  /** True when the anchor is not AMD's pinned ARK (extra test root or --ark override). */
  readonly anchorIsTestRoot: boolean;
  readonly chainCached: boolean;
}

/** SnpCheckResult is the non-throwing form used by `tas verify`. */
export interface SnpCheckResult {
  readonly valid: boolean;
  readonly verification?: SnpVerification;
  readonly checks: Check[];
  readonly error?: TasError;
}

const fail = (reason: SnpReason | 'SNP_ERR_EXT' | 'SNP_ERR_SIGNER_KIND', detail: string): TasError => new TasError('TEE_VERIFICATION_FAILED', detail, { reason });

/** constantTimeEqual compares two byte strings without an early exit. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]! ^ b[i]!;
  return acc === 0;
}

/** certTcb returns the TCB the certificate attests, in claim form. */
function certTcb(v: VekInfo): TcbClaims {
  const t: TcbClaims = { bootloader: v.spl.bl, tee: v.spl.tee, snp: v.spl.snp, microcode: v.spl.ucode };
  if (v.spl.fmc !== undefined) t.fmc = v.spl.fmc;
  return t;
}

/** tcbBinding compares REPORTED_TCB with the certificate's SPLs, reserved bytes included. */
function tcbBinding(product: Product, r: ParsedReport, v: VekInfo): string | undefined {
  const rep = decodeTcb(product, r.reportedTcb);
  const fmcCert = v.spl.fmc;
  if (product === 'Turin' && fmcCert === undefined) return 'Turin VCEK/VLEK lacks fmcSPL';
  if (product !== 'Turin' && fmcCert !== undefined) return `${product} report but the certificate carries fmcSPL (Turin layout)`;
  const pairs: Array<[string, number | undefined, number | undefined]> = [
    ['bootloader', rep.bootloader, v.spl.bl],
    ['tee', rep.tee, v.spl.tee],
    ['snp', rep.snp, v.spl.snp],
    ['microcode', rep.microcode, v.spl.ucode],
    ['fmc', rep.fmc, fmcCert],
    // Reserved bytes must match too (an absent SPL extension counts as 0).
    ['spl_4', rep.reserved.spl4, product === 'Turin' ? undefined : (v.spl.spl4 ?? 0)],
    ['spl_5', rep.reserved.spl5, v.spl.spl5 ?? 0],
    ['spl_6', rep.reserved.spl6, v.spl.spl6 ?? 0],
    ['spl_7', rep.reserved.spl7, v.spl.spl7 ?? 0],
  ];
  const diff = pairs.filter(([, a, b]) => a !== b).map(([n, a, b]) => `${n} report ${a} != cert ${b}`);
  return diff.length ? diff.join(', ') : undefined;
}

/** SnpVerifier verifies SEV-SNP evidence against the trust in force. Stateless and reusable. */
export class SnpVerifier {
  private readonly trust: SnpTrust;
  private readonly v2Product: Product | undefined;
  private readonly anchorsOverride: readonly Buffer[] | undefined;

  constructor(opts: SnpVerifierOptions = {}) {
    this.trust = opts.trust ?? PINNED_ONLY;
    this.v2Product = opts.v2Product;
    this.anchorsOverride = opts.anchorsOverride;
  }

  /** verify returns claims and checks, or throws TasError (reason SNP_ERR_*). */
  async verify(ev: SnpEvidence): Promise<SnpVerification> {
    const res = await this.check(ev);
    if (!res.valid) throw res.error!;
    return res.verification!;
  }

  /** check never throws for bad evidence: it reports every check done and the failure. */
  async check(ev: SnpEvidence): Promise<SnpCheckResult> {
    const checks: Check[] = [];
    // Passed checks are noted through `passed?.push(...)`: without the list, the detail texts are
    // not even built (optional chaining skips evaluating the arguments).
    const passed: Check[] | undefined = ev.withoutPassedChecks === true ? undefined : checks;
    const refuse = (name: string, err: TasError): SnpCheckResult => {
      checks.push({ name, ok: false, detail: `${err.reason}: ${err.detail}` });
      return { valid: false, checks, error: err };
    };
    if (!Buffer.isBuffer(ev.report) || !Buffer.isBuffer(ev.vek)) {
      return refuse('input', new TasError('TEE_EVIDENCE_MALFORMED', 'report and certificate must be byte buffers', { reason: 'SNP_ERR_ARGUMENT' }));
    }
    if (!(ev.at instanceof Date) || Number.isNaN(ev.at.getTime())) {
      return refuse('input', new TasError('INTERNAL', 'verification time is not a valid Date', { reason: 'SNP_ERR_ARGUMENT' }));
    }

    // 1. Parse (shape, version, MBZ, policy bit 17, SIGNING_KEY reserved values) — cheap, no crypto.
    let parsed: ParsedReport;
    // The bytes whose parse we use are the bytes whose signature is checked (see ParsedOnce).
    let report = ev.report;
    if (ev.parsed instanceof ParsedOnce && ev.parsed.bytes.equals(ev.report)) {
      parsed = ev.parsed.report;
      report = ev.parsed.bytes;
    } else {
      try {
        parsed = parseReport(ev.report);
      } catch (e) {
        return refuse('report_parsed', toTas(e));
      }
    }
    passed?.push({ name: 'report_parsed', ok: true, detail: `version ${parsed.version}, ${report.length} bytes` });

    // 2. Product: signed CPUID (v3+), TAS_SNP_V2_PRODUCT for v2; Turin only from v3+.
    let decision: ProductDecision;
    try {
      decision = detectProduct(parsed.version, parsed.cpuid, { v2Product: this.v2Product, expected: ev.product });
    } catch (e) {
      return refuse('product', toTas(e));
    }
    const product = decision.product;
    passed?.push({
      name: 'product', ok: true,
      detail: decision.source === 'cpuid'
        ? `${product} from CPUID family 0x${parsed.cpuid!.family.toString(16)} model 0x${parsed.cpuid!.model.toString(16)}`
        : `${product} from configuration (report version ${parsed.version})`,
    });

    // 3. Signer kind from SIGNING_KEY: 0 VCEK, 1 VLEK; 7 (unsigned) and anything else refused.
    if (parsed.signingKey !== 0 && parsed.signingKey !== 1) {
      return refuse('signer_kind', fail('SNP_ERR_SIGNER_KIND', `SIGNING_KEY ${parsed.signingKey} is neither VCEK (0) nor VLEK (1)`));
    }
    const kind = parsed.signingKey === 0 ? 'VCEK' : 'VLEK';

    // 4. Native: chain to the anchors, report signature, CRL.
    const anchors = this.anchorsOverride ?? anchorsFor(this.trust, product);
    const candidates = ev.intermediate
      ? [ev.intermediate]
      : [pinnedIntermediate(product, kind), ...(this.anchorsOverride ? [] : extraIntermediates(this.trust, product, kind)), ...(ev.candidates ?? [])];
    let result;
    let lastErr: unknown;
    for (const intermediate of candidates) {
      try {
        result = await nativeVerify({
          report, leaf: ev.vek, intermediate, anchors, product, kind,
          atSeconds: Math.floor(ev.at.getTime() / 1000),
          omitReport: true, // parsed above already
          ...(passed === undefined ? { omitChecks: true } : {}),
          ...(ev.crl ? { crl: ev.crl } : {}),
        });
        break;
      } catch (e) {
        lastErr = e;
        // Only a chain mismatch is worth trying the next candidate intermediate for.
        if (!(e instanceof NativeError) || e.code !== 'SNP_ERR_CHAIN') break;
      }
    }
    if (!result) return refuse('chain_and_signature', toTas(lastErr));
    if (passed !== undefined) passed.push(...result.checks);
    const vek = result.vek;
    const anchorSha256 = result.anchorSha256.toString('hex');

    // 5. Binding of certificate to report.
    if (vek.kind !== kind) {
      return refuse('signer_kind', fail('SNP_ERR_SIGNER_KIND', `report SIGNING_KEY says ${kind}, certificate is a ${vek.kind}`));
    }
    passed?.push({ name: 'signer_kind', ok: true, detail: `${kind} (SIGNING_KEY ${parsed.signingKey})` });

    const tcbDiff = tcbBinding(product, parsed, vek);
    if (tcbDiff) return refuse('tcb_matches_cert', fail('SNP_ERR_TCB_MISMATCH', `REPORTED_TCB does not match the ${kind}: ${tcbDiff}`));
    const attested = certTcb(vek);
    passed?.push({ name: 'tcb_matches_cert', ok: true, detail: `REPORTED_TCB == ${kind} SPLs (${formatTcb(attested)})` });

    const current = decodeTcb(product, parsed.currentTcb);
    const above = firstExceeding(product, attested, current);
    if (above) {
      return refuse('cert_tcb_le_current', fail('SNP_ERR_TCB_ABOVE_CURRENT',
        `${kind} certifies ${above} ${attested[above]} but CURRENT_TCB ${above} is ${current[above]}`));
    }
    passed?.push({ name: 'cert_tcb_le_current', ok: true, detail: `${kind} TCB <= CURRENT_TCB (${formatTcb(current)})` });

    const masked = isAllZero(parsed.chipId);
    if (kind === 'VCEK') {
      const hw = vek.hwId;
      if (!hw) return refuse('chip_id_matches_hwid', fail('SNP_ERR_EXT', 'VCEK without hwID'));
      const want = product === 'Turin' ? 8 : 64;
      if (hw.length !== want) {
        return refuse('chip_id_matches_hwid', fail('SNP_ERR_CHIP_ID_MISMATCH', `${product} hwID must be ${want} bytes, certificate has ${hw.length}`));
      }
      if (masked) {
        // No CHIP_ID to compare, but the chip is known: the VCEK that signed names it. Policies
        // judge a masked report by chip_id_masked and signer.hw_id (claim chip_id = the hwID).
        passed?.push({ name: 'chip_id_matches_hwid', ok: true, detail: 'CHIP_ID is masked (all zero): the chip is the VCEK hwID (claims signer.hw_id, chip_id_masked)' });
      } else {
        const head = parsed.chipId.subarray(0, want);
        const tailZero = isAllZero(parsed.chipId.subarray(want));
        if (!constantTimeEqual(head, hw) || !tailZero) {
          return refuse('chip_id_matches_hwid', fail('SNP_ERR_CHIP_ID_MISMATCH',
            tailZero ? `CHIP_ID ${toHex(head).slice(0, 16)}… != VCEK hwID ${toHex(hw).slice(0, 16)}…` : 'Turin CHIP_ID bytes 8..63 are not zero'));
        }
        passed?.push({ name: 'chip_id_matches_hwid', ok: true, detail: `CHIP_ID == hwID (${want} bytes)` });
      }
    } else {
      passed?.push({ name: 'chip_id_matches_hwid', ok: true, detail: `not applicable: VLEK (cspID ${vek.cspId ?? '?'})${masked ? ', CHIP_ID masked' : ''}` });
    }

    const claims = buildClaims(parsed, product, { kind, cspId: vek.cspId, hwId: kind === 'VCEK' ? vek.hwId : undefined });
    const anchorIsTestRoot = this.anchorsOverride !== undefined || isTestAnchor(product, anchorSha256, this.trust);
    return {
      valid: true,
      checks,
      verification: {
        claims, checks, product, productSource: decision.source, vek, anchorSha256, anchorIsTestRoot, chainCached: result.chainCached,
      },
    };
  }
}

function isTestAnchor(product: Product, anchorSha256: string, trust: SnpTrust): boolean {
  return trust.extra.some((c) => c.role === 'ARK' && c.product === product && c.sha256 === anchorSha256);
}

function toTas(e: unknown): TasError {
  if (e instanceof TasError) return e;
  if (e instanceof NativeError) return nativeToTasError(e);
  return new TasError('INTERNAL', e instanceof Error ? e.message : String(e), { reason: 'SNP_ERR_INTERNAL', cause: e });
}

/** verifySnpEvidence is the one-shot form of SnpVerifier.verify. */
export function verifySnpEvidence(ev: SnpEvidence, opts: SnpVerifierOptions = {}): Promise<SnpVerification> {
  return new SnpVerifier(opts).verify(ev);
}
