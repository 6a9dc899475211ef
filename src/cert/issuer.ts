/**
 * Issuance and renewal of workload certificates (PROTOCOL.md §2.2). The attestation pipeline
 * decides whether a request may have a certificate; this module decides what the certificate says
 * and has the signer plugin sign it.
 *
 * Renewal keeps the SPIFFE ID of a current certificate only when that certificate is a tas leaf of
 * this trust domain and the requested policy domain, within its validity (± the skew), signed by
 * the active issuing CA, and for the very key of the new CSR. Renewal never skips attestation: it
 * runs inside the same attested request.
 */
import { randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import type { Config } from '../config';
import { TasError } from '../errors';
import { OID } from './alg';
import type { SanitizedCsr } from './csr';
import { children, DerError, parse, pem, unpem } from './der';
import { assembleCertificate, buildTbs, evidenceDigests, leafExtensions, name, newSerial, viewCertificate, type EvidenceEntry } from './profile';
import { spkiOf, type SignerService } from './signer';

/** CertSettings are the TAS_CERT_* values issuance reads (per request, so SIGHUP applies). */
export interface CertSettings {
  readonly trustDomain: string;
  readonly validitySeconds: number;
  readonly skewSeconds: number;
  readonly maxCsrBytes: number;
  readonly allowedKeyTypes: readonly string[];
  readonly digestMaxEntries: number;
  readonly digestMaxBytes: number;
  readonly oidRoot: string;
}

export function certSettings(cfg: Config): CertSettings {
  return {
    trustDomain: cfg.get<string>('cert.trust_domain'),
    validitySeconds: cfg.get<number>('cert.validity_seconds'),
    skewSeconds: cfg.get<number>('cert.clock_skew_seconds'),
    maxCsrBytes: cfg.get<number>('cert.max_csr_bytes'),
    allowedKeyTypes: cfg.get<string[]>('cert.allowed_key_types'),
    digestMaxEntries: cfg.get<number>('cert.evidence_digest_max_entries'),
    digestMaxBytes: cfg.get<number>('cert.evidence_digest_max_bytes'),
    oidRoot: cfg.get<string>('cert.oid_root'),
  };
}

/** CertifyReply is the 200 body of POST /alphav1/certify. */
export interface CertifyReply {
  readonly certificate: string;
  readonly ca_chain: string[];
  readonly ca_bundle: string;
}

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const SPIFFE = /^spiffe:\/\/([^/?#]+)\/([^/?#]+)\/([^/?#]+)$/;

function refuse(reason: string, detail: string): TasError {
  return new TasError('CERT_RENEWAL_REFUSED', `renew_cert: ${detail}`, { reason });
}

/** IssueInput is one admitted request. */
export interface IssueInput {
  readonly csr: SanitizedCsr;
  readonly policyDomain: string;
  /** The SPIFFE ID's UUID: fresh, or kept from a renewal that passed checkRenewal. */
  readonly spiffeUuid: string;
  /** SHA-512 of the policy that admitted the request. */
  readonly policyDigest: Buffer;
  readonly platforms: readonly string[];
  readonly evidence: readonly EvidenceEntry[];
  readonly now: Date;
}

/** Issued is a signed certificate plus what the audit record names. */
export interface Issued {
  readonly reply: CertifyReply;
  readonly serial: string;
  readonly spiffeId: string;
  readonly notAfter: string;
}

export class CertIssuer {
  constructor(
    private readonly signer: SignerService,
    private readonly settings: () => CertSettings,
  ) {}

  /** caBundle is the PEM bundle of the active chain (issuing CA first, root last). */
  caBundle(): string {
    return this.signer.ca().bundle;
  }

  /** newUuid is a fresh SPIFFE UUID (v4). */
  newUuid(): string {
    return randomUUID();
  }

  /** checkEvidenceDigests computes the .5 extension early, so oversize input is a 400 before state changes. */
  checkEvidenceDigests(entries: readonly EvidenceEntry[]): string {
    const s = this.settings();
    try {
      return evidenceDigests(entries, { maxEntries: s.digestMaxEntries, maxBytes: s.digestMaxBytes });
    } catch (e) {
      throw new TasError('CERT_REQUEST_INVALID', (e as Error).message, { reason: 'CERT_EVIDENCE_DIGEST_LIMIT' });
    }
  }

  /**
   * checkRenewal validates renew_cert for csr and policyDomain and returns the UUID to keep.
   * Throws CERT_RENEWAL_REFUSED (400) with the reason (RENEWAL_*).
   */
  checkRenewal(renewPem: string, csr: SanitizedCsr, policyDomain: string, now: Date): string {
    const s = this.settings();
    const blocks = unpem(renewPem, 'CERTIFICATE');
    if (blocks.length !== 1) throw refuse('RENEWAL_MALFORMED', `holds ${blocks.length} PEM certificates, expected one`);
    let x: X509Certificate;
    let view;
    try {
      x = new X509Certificate(blocks[0]!);
      view = viewCertificate(blocks[0]!);
    } catch (e) {
      throw refuse('RENEWAL_MALFORMED', `not an X.509 certificate: ${(e as Error).message}`);
    }
    if (!view.extensions.has(OID.basicConstraints) || x.ca) throw refuse('RENEWAL_NOT_LEAF', 'not a leaf certificate (basicConstraints CA:false)');
    const san = view.extensions.get(OID.subjectAltName);
    let uris: string[] = [];
    try {
      if (san) uris = children(parse(san.value)).filter((g) => g.tag === 0x86).map((g) => g.content.toString('latin1'));
    } catch (e) {
      throw refuse('RENEWAL_MALFORMED', `subjectAltName: ${e instanceof DerError ? e.message : String(e)}`);
    }
    if (uris.length !== 1) throw refuse('RENEWAL_SPIFFE_INVALID', `has ${uris.length} URI SANs, expected exactly one SPIFFE ID`);
    const m = uris[0]!.match(SPIFFE);
    if (!m) throw refuse('RENEWAL_SPIFFE_INVALID', 'URI SAN is not spiffe://<trust domain>/<policy-domain>/<uuid>');
    const [, td, domain, uuid] = m as unknown as [string, string, string, string];
    if (td !== s.trustDomain) throw refuse('RENEWAL_TRUST_DOMAIN', `trust domain '${td}' is not TAS_CERT_TRUST_DOMAIN`);
    if (domain !== policyDomain) throw refuse('RENEWAL_DOMAIN_MISMATCH', `policy domain '${domain}' differs from the requested policy-domain`);
    if (!UUID_V4.test(uuid)) throw refuse('RENEWAL_SPIFFE_INVALID', 'SPIFFE UUID is not a canonical v4 UUID');
    const skew = s.skewSeconds * 1000;
    if (now.getTime() < new Date(x.validFrom).getTime() - skew) throw refuse('RENEWAL_NOT_YET_VALID', `not valid before ${x.validFrom}`);
    if (now.getTime() > new Date(x.validTo).getTime() + skew) throw refuse('RENEWAL_EXPIRED', `expired at ${x.validTo}`);
    const ca = this.signer.ca();
    if (!x.checkIssued(ca.caCert) || !x.verify(ca.caKey)) throw refuse('RENEWAL_FOREIGN_CA', 'not signed by the active issuing CA');
    if (!spkiOf(x.publicKey).equals(csr.spki)) throw refuse('RENEWAL_KEY_MISMATCH', "its public key differs from the CSR's");
    return uuid;
  }

  /** issue builds, signs and returns the certificate. Signer trouble is CERT_SIGNER_UNAVAILABLE (503). */
  async issue(input: IssueInput): Promise<Issued> {
    const s = this.settings();
    const ca = this.signer.ca();
    const spiffeId = `spiffe://${s.trustDomain}/${input.policyDomain}/${input.spiffeUuid}`;
    const cn = input.csr.commonName ?? `tas.${randomBytes(4).toString('hex')}`;
    const serial = newSerial();
    const notAfter = new Date(input.now.getTime() + s.validitySeconds * 1000);
    const tbs = buildTbs({
      serial,
      suite: ca.suite,
      issuer: ca.issuerName,
      notBefore: new Date(input.now.getTime() - s.skewSeconds * 1000),
      notAfter,
      subject: name([[OID.commonName, cn]]),
      spki: input.csr.spki,
      extensions: leafExtensions({
        spki: input.csr.spki, issuerKeyId: ca.issuerKeyId, spiffeId,
        dns: input.csr.dns, ips: input.csr.ips, emails: input.csr.emails,
        oidRoot: s.oidRoot, policyDomain: input.policyDomain, policyDigest: input.policyDigest,
        platforms: input.platforms, attestedAt: input.now, evidenceDigests: this.checkEvidenceDigests(input.evidence),
      }),
    });
    const sig = await this.signer.sign(tbs);
    const der = assembleCertificate(tbs, ca.suite, sig);
    return {
      reply: { certificate: pem('CERTIFICATE', der), ca_chain: [...ca.chainPem], ca_bundle: ca.bundle },
      serial: serial.toString('hex'),
      spiffeId,
      notAfter: notAfter.toISOString(),
    };
  }
}
