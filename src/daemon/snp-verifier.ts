/**
 * The SEV-SNP EvidenceVerifier (src/attest/verifier.ts): src/snp (report layout, native verify,
 * trust) joined with src/kds (VCEK cache, CRLs). It lives in the composition root because it is
 * exactly that join; src/snp and src/kds stay unaware of each other and of the pipeline.
 */
import type { Logger } from 'pino';
import type { EvidenceVerifier, VerifiedEvidence } from '../attest';
import { TasError } from '../errors';
import { parseTeeCertificates, type CertCache, type EvidenceCerts } from '../kds';
import { certInfo, NativeError } from '../native';
import { peekReport, type Product, type SnpTrust, type SnpVerifier } from '../snp';
import { needsChainIntermediates } from '../snp/trust';
import { normSerial, serialHex } from './certs';

/** SnpPeek is what peek read of the report: enough to find its certificates. */
export interface SnpPeek {
  readonly version: number;
  readonly product: Product;
  readonly signingKey: 'VCEK' | 'VLEK';
  readonly chipIdMasked: boolean;
  readonly raw: ReturnType<typeof peekReport>;
}

/** SnpEndorsements is the VCEK/VLEK (DER) and, when known, its ASK/ASVK (DER). */
export interface SnpEndorsements {
  readonly leaf: Buffer;
  readonly intermediate?: Buffer;
  /** Other provisioned VLEKs of the same product and TCB (several CSPs): the signature picks. */
  readonly alternatives?: ReadonlyArray<{ leaf: Buffer; intermediate?: Buffer }>;
  /** More untrusted intermediate candidates (KDS cert_chain, for extra roots given as ARKs only). */
  readonly candidates?: readonly Buffer[];
  /** Where the leaf came from: `evidence` (tee-certificates), `memory`, `persistent`, `kds`. */
  readonly source: string;
}

export interface SnpVerifierDeps {
  /** The current verifier (rebuilt on reload with new trust). */
  verifier(): SnpVerifier;
  cache: CertCache;
  v2Product(): Product | undefined;
  log: Logger;
  /** The SNP trust in force (extra roots without their ASK/ASVK take it from KDS cert_chain). */
  trust?(): SnpTrust;
}

/** classify sorts evidence certificates (a PEM bundle does not say which is which). */
function classify(ec: EvidenceCerts): { vcek?: Buffer; vlek?: Buffer; intermediate?: Buffer } {
  const out: { vcek?: Buffer; vlek?: Buffer; intermediate?: Buffer } = {};
  if (ec.vcek) out.vcek = ec.vcek;
  if (ec.vlek) out.vlek = ec.vlek;
  if (ec.ask) out.intermediate = ec.ask;
  for (const der of ec.unclassified) {
    let cn: string;
    try {
      cn = certInfo(der).subjectCN;
    } catch (e) {
      throw e instanceof NativeError ? new TasError('HTTP_BAD_REQUEST', `tee-certificates: ${e.message}`, { reason: e.code }) : e;
    }
    if (cn === 'SEV-VCEK') out.vcek ??= der;
    else if (cn === 'SEV-VLEK') out.vlek ??= der;
    else if (/^SEV-(VLEK-)?(Milan|Genoa|Turin)$/.test(cn)) out.intermediate ??= der;
    // ARKs in evidence are ignored: trust comes only from the pinned (and explicit extra) anchors.
  }
  return out;
}

/** snpEvidenceVerifier builds the `amd-sev-snp` verifier of the registry. */
export function snpEvidenceVerifier(d: SnpVerifierDeps): EvidenceVerifier<SnpPeek, SnpEndorsements> {
  const { cache, log } = d;
  return {
    tee: 'amd-sev-snp',
    policyType: 'SEV',
    peek(report) {
      const p = peekReport(report, { v2Product: d.v2Product() });
      if (p.productError) throw p.productError;
      if (!p.signingKey) throw new TasError('TEE_VERIFICATION_FAILED', 'SIGNING_KEY names no endorsement key', { reason: 'SNP_ERR_SIGNER_KIND' });
      return { version: p.version, product: p.product!, signingKey: p.signingKey, chipIdMasked: p.chipIdMasked, raw: p };
    },
    describe: (peek) => ({ report_version: peek.version, signer: peek.signingKey }),
    async endorsements(_report, peek, tee) {
      if (tee) {
        const c = classify(parseTeeCertificates(tee));
        const leaf = peek.signingKey === 'VCEK' ? c.vcek : c.vlek;
        if (!leaf) throw new TasError('TEE_VERIFICATION_FAILED', `tee-certificates hold no ${peek.signingKey}`, { reason: 'SNP_ERR_SIGNER_KIND' });
        // No intermediate sent, and an extra root configured without its own: the KDS cert_chain's.
        const candidates = !c.intermediate && d.trust && needsChainIntermediates(d.trust(), peek.product, peek.signingKey)
          ? await cache.chainIntermediates(peek.product, peek.signingKey)
          : undefined;
        return { leaf, ...(c.intermediate ? { intermediate: c.intermediate } : {}), ...(candidates ? { candidates } : {}), source: 'evidence' };
      }
      if (peek.signingKey === 'VLEK') {
        // KDS does not serve VLEKs publicly: they are provisioned per CSP and TCB (`tas kds import`).
        // A report names no CSP, so every VLEK of its product and REPORTED_TCB is a candidate.
        const t = peek.raw.reportedTcb!;
        const hits = await cache.vleks(peek.product, { bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode, fmc: t.fmc });
        if (hits.length === 0) {
          throw new TasError('TEE_VERIFICATION_FAILED', `a VLEK report without tee-certificates, and no VLEK provisioned for ${peek.product} at its REPORTED_TCB (tas kds import)`, { reason: 'VLEK_NOT_SUPPLIED' });
        }
        const [first, ...rest] = hits;
        return { leaf: first!.leaf, ...(first!.intermediate ? { intermediate: first!.intermediate } : {}), ...(rest.length ? { alternatives: rest } : {}), source: first!.source };
      }
      const t = peek.raw.reportedTcb!;
      const r = await cache.vcek(peek.product, Buffer.from(peek.raw.chipId, 'hex'), { bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode, fmc: t.fmc });
      return { leaf: r.leaf, ...(r.intermediate ? { intermediate: r.intermediate } : {}), source: r.source };
    },
    describeEndorsements: (certs) => ({ cert_source: certs.source }),
    async verify(report, peek, certs): Promise<VerifiedEvidence> {
      const product = peek.product;
      const crl = await cache.crl(product, peek.signingKey);
      // The cache verified the CRL (ARK signature, freshness) when it loaded it and noted which
      // known intermediates and leaves it revokes; with an intermediate the cache vouched for, a
      // request only looks serials up. Intermediates from the evidence get the full native check.
      // An intermediate learned from KDS cert_chain (extra roots given as ARKs only) may be newer
      // than the CRL's serial list: it always gets the full native CRL check.
      // Several provisioned VLEKs (CSPs) for one TCB: the report's signature picks the one that signed.
      const tries: Array<{ leaf: Buffer; intermediate?: Buffer | undefined }> = [{ leaf: certs.leaf, intermediate: certs.intermediate }, ...(certs.alternatives ?? [])];
      let used = tries[0]!;
      const learned = (i: Buffer | undefined): boolean => i !== undefined && cache.knownChainIntermediates(product, peek.signingKey).some((c) => c.equals(i));
      const fastFor = (i: Buffer | undefined): boolean => crl.der !== undefined && crl.revoked !== undefined && i !== undefined && certs.source !== 'evidence' && !learned(i);
      let v: Awaited<ReturnType<SnpVerifier['verify']>> | undefined;
      for (const [n, t] of tries.entries()) {
        try {
          v = await d.verifier().verify({
            report, vek: t.leaf, intermediate: t.intermediate, crl: fastFor(t.intermediate) ? undefined : crl.der, at: new Date(), product,
            ...(certs.candidates ? { candidates: certs.candidates } : {}),
            parsed: peek.raw.parsed, // parsed once, in peek
            withoutPassedChecks: true, // nothing below reads them
          });
          used = t;
          break;
        } catch (e) {
          if (n < tries.length - 1 && e instanceof TasError && e.reason === 'SNP_ERR_REPORT_SIGNATURE') continue;
          throw e;
        }
      }
      if (!v) throw new TasError('INTERNAL', 'no endorsement key tried');
      const fast = fastFor(used.intermediate);
      if (fast) {
        const hit = [serialHex(used.intermediate!), normSerial(v.vek.serialHex)].find((s) => crl.revoked!.has(s));
        if (hit) throw new TasError('TEE_VERIFICATION_FAILED', `certificate serial ${hit} is revoked by the ${product} CRL`, { reason: 'SNP_ERR_REVOKED' });
      }
      if (crl.note) log.warn({ product }, crl.note);
      const claims = v.claims as unknown as Record<string, unknown>;
      return {
        tee: 'amd-sev-snp',
        claims,
        reportData: Buffer.from(String(claims.report_data), 'hex'),
        audit: { product: v.product, measurement: claims.measurement },
        ...(crl.note ? { notes: [crl.note] } : {}),
      };
    },
  };
}
