/**
 * Certificate profiles of certify, written as DER TBSCertificates (RFC 5280 §4.1) that a signer
 * plugin signs:
 *
 * - the workload (leaf) profile of PROTOCOL.md §2.2: one SPIFFE URI SAN, the CSR's checked DNS /
 *   IP / email SANs, DNS-safe CN, CA:false, KeyUsage digitalSignature (critical), EKU clientAuth +
 *   serverAuth, SKI/AKI, and the attestation extensions under TAS_OID_ROOT (.1 policy domain,
 *   .2 policy digest, .3 verified platforms, .4 attestation time, .5 evidence digests — the arcs
 *   and encodings of the original's head, so relying parties read both alike);
 * - the CA profile used by `tas cert ca init` and tas_cert_local: CA:true (critical, path length 0
 *   for the issuing CA), KeyUsage keyCertSign + cRLSign (critical), SKI/AKI.
 */
import { createHash, randomBytes } from 'node:crypto';
import { algorithmIdentifier, OID, type SignatureSuite } from './alg';
import { bits, bool, explicit, generalizedTime, implicit, int, namedBits, octets, oid, parse, readOid, seq, seqOf, set, time, tlv, utf8, TAG, type DerNode } from './der';

/** ext encodes one Extension (critical omitted when false, as DER's DEFAULT FALSE requires). */
export function ext(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

/** name encodes a Name of single-valued RDNs, e.g. [['2.5.4.10', 'tas'], ['2.5.4.3', 'tas CA']]. */
export function name(rdns: ReadonlyArray<readonly [string, string]>): Buffer {
  return seq(...rdns.map(([t, v]) => set(seq(oid(t), utf8(v)))));
}

/** keyIdentifier is RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's bits. */
export function keyIdentifier(spki: Buffer): Buffer {
  const [, key] = seqOf(parse(spki), 'SubjectPublicKeyInfo');
  if (!key || key.tag !== TAG.BIT_STRING) throw new Error('SubjectPublicKeyInfo without subjectPublicKey');
  return createHash('sha1').update(key.content.subarray(1)).digest();
}

/** newSerial is a positive 128-bit random serial (RFC 5280 §4.1.2.2: ≤ 20 octets, unpredictable). */
export function newSerial(): Buffer {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b;
}

/** TbsSpec is everything a TBSCertificate holds. */
export interface TbsSpec {
  readonly serial: Buffer;
  readonly suite: SignatureSuite;
  /** Issuer Name DER (the issuing CA's subject, byte for byte). */
  readonly issuer: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subject: Buffer;
  readonly spki: Buffer;
  /** Encoded Extension values (see ext). */
  readonly extensions: readonly Buffer[];
}

/** buildTbs encodes a v3 TBSCertificate. */
export function buildTbs(s: TbsSpec): Buffer {
  return seq(
    explicit(0, int(2)),
    int(s.serial),
    algorithmIdentifier(s.suite),
    s.issuer,
    seq(time(s.notBefore), time(s.notAfter)),
    s.subject,
    s.spki,
    explicit(3, seq(...s.extensions)),
  );
}

/** assembleCertificate joins a TBS and the signer's signature into a Certificate (DER). */
export function assembleCertificate(tbs: Buffer, suite: SignatureSuite, signature: Buffer): Buffer {
  return seq(tbs, algorithmIdentifier(suite), bits(signature));
}

/** CaProfile are the variable parts of a CA certificate. */
export interface CaProfile {
  readonly spki: Buffer;
  /** Key identifier of the issuer (absent for a self-signed root: AKI = own SKI). */
  readonly issuerKeyId?: Buffer;
  /** basicConstraints pathLenConstraint (0 for the issuing CA; absent for the root). */
  readonly pathLen?: number;
}

/** caExtensions are the extensions of a CA certificate. */
export function caExtensions(p: CaProfile): Buffer[] {
  const ski = keyIdentifier(p.spki);
  return [
    ext(OID.basicConstraints, true, seq(bool(true), ...(p.pathLen === undefined ? [] : [int(p.pathLen)]))),
    ext(OID.keyUsage, true, namedBits([5, 6])),
    ext(OID.subjectKeyIdentifier, false, octets(ski)),
    ext(OID.authorityKeyIdentifier, false, seq(implicit(0, p.issuerKeyId ?? ski))),
  ];
}

/** EvidenceEntry is one piece of verified evidence recorded in the evidence-digests extension. */
export interface EvidenceEntry {
  readonly platformId: string;
  readonly evidenceType: string;
  /** `role` for the CPU evidence, `slot` (device index) for components. */
  readonly role?: string;
  readonly slot?: number;
  readonly raw: Buffer;
}

/** sortedJson writes JSON with sorted keys and no spaces (Python's sort_keys + compact separators). */
function sortedJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(sortedJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${sortedJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * evidenceDigests is the canonical JSON of the .5 extension: `{"entries":[{digest, digest_alg,
 * evidence_type, platform_id, role|slot}], "version":1}`, SHA-512 digests, CPU first then slots in
 * order. Throws RangeError beyond the caps (TAS_CERT_EVIDENCE_DIGEST_MAX_ENTRIES / _BYTES).
 */
export function evidenceDigests(entries: readonly EvidenceEntry[], caps: { maxEntries: number; maxBytes: number }): string {
  if (entries.length === 0) throw new RangeError('no evidence entry');
  if (entries.length > caps.maxEntries) throw new RangeError(`${entries.length} evidence entries, more than TAS_CERT_EVIDENCE_DIGEST_MAX_ENTRIES (${caps.maxEntries})`);
  const canon = entries.map((e) => ({
    digest: createHash('sha512').update(e.raw).digest('hex'),
    digest_alg: 'sha-512',
    evidence_type: e.evidenceType.toLowerCase(),
    platform_id: e.platformId.toLowerCase(),
    ...(e.role !== undefined ? { role: e.role.toLowerCase() } : { slot: e.slot }),
  }));
  canon.sort((a, b) => {
    const ka = 'role' in a ? [0, a.role] : [1, (a as { slot: number }).slot];
    const kb = 'role' in b ? [0, b.role] : [1, (b as { slot: number }).slot];
    if (ka[0] !== kb[0]) return (ka[0] as number) - (kb[0] as number);
    if (ka[1] !== kb[1]) return String(ka[1]).localeCompare(String(kb[1]), 'en', { numeric: true });
    return a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0;
  });
  const text = sortedJson({ version: 1, entries: canon });
  if (Buffer.byteLength(text) > caps.maxBytes) throw new RangeError(`evidence digests take ${Buffer.byteLength(text)} bytes, more than TAS_CERT_EVIDENCE_DIGEST_MAX_BYTES (${caps.maxBytes})`);
  return text;
}

/** LeafProfile are the variable parts of a workload certificate. */
export interface LeafProfile {
  readonly spki: Buffer;
  readonly issuerKeyId: Buffer;
  readonly spiffeId: string;
  readonly dns: readonly string[];
  readonly ips: readonly Buffer[];
  readonly emails: readonly string[];
  readonly oidRoot: string;
  readonly policyDomain: string;
  /** SHA-512 of the policy that admitted the request (64 bytes). */
  readonly policyDigest: Buffer;
  readonly platforms: readonly string[];
  readonly attestedAt: Date;
  /** Output of evidenceDigests. */
  readonly evidenceDigests: string;
}

/** leafExtensions are the extensions of a workload certificate, in the original's order. */
export function leafExtensions(p: LeafProfile): Buffer[] {
  const san = seq(
    tlv(0x86, Buffer.from(p.spiffeId, 'latin1')),
    ...p.dns.map((d) => tlv(0x82, Buffer.from(d, 'latin1'))),
    ...p.ips.map((b) => implicit(7, b)),
    ...p.emails.map((e) => tlv(0x81, Buffer.from(e, 'latin1'))),
  );
  const platforms = JSON.stringify([...new Set(p.platforms.map((x) => x.toLowerCase()))].sort());
  const at = new Date(Math.floor(p.attestedAt.getTime() / 1000) * 1000);
  return [
    ext(OID.subjectKeyIdentifier, false, octets(keyIdentifier(p.spki))),
    ext(OID.authorityKeyIdentifier, false, seq(implicit(0, p.issuerKeyId))),
    ext(OID.basicConstraints, true, seq()),
    ext(OID.keyUsage, true, namedBits([0])),
    ext(OID.subjectAltName, false, san),
    ext(OID.extKeyUsage, false, seq(oid(OID.clientAuth), oid(OID.serverAuth))),
    ext(`${p.oidRoot}.1`, false, utf8(p.policyDomain)),
    ext(`${p.oidRoot}.2`, false, octets(p.policyDigest)),
    ext(`${p.oidRoot}.3`, false, utf8(platforms)),
    ext(`${p.oidRoot}.4`, false, generalizedTime(at)),
    ext(`${p.oidRoot}.5`, false, utf8(p.evidenceDigests)),
  ];
}

/** CertView is what certify reads back from a certificate it (or its CA) made. */
export interface CertView {
  readonly tbs: DerNode;
  readonly subject: Buffer;
  readonly issuer: Buffer;
  readonly spki: Buffer;
  /** extnID -> { critical, value (extnValue contents) }. Duplicate extensions throw. */
  readonly extensions: ReadonlyMap<string, { critical: boolean; value: Buffer }>;
}

/** viewCertificate splits a certificate's TBS into the parts certify reads. */
export function viewCertificate(der: Buffer): CertView {
  const [tbs] = seqOf(parse(der), 'Certificate');
  const f = seqOf(tbs, 'TBSCertificate');
  const off = f[0]?.tag === 0xa0 ? 1 : 0;
  const issuer = f[off + 2]!;
  const subject = f[off + 4]!;
  const spki = f[off + 5]!;
  const extensions = new Map<string, { critical: boolean; value: Buffer }>();
  const extField = f.slice(off + 6).find((n) => n.tag === 0xa3);
  if (extField) {
    for (const e of seqOf(seqOf(extField, 'extensions', 0xa3)[0], 'Extensions')) {
      const parts = seqOf(e, 'Extension');
      const id = readOid(parts[0]);
      if (extensions.has(id)) throw new Error(`extension ${id} appears twice`);
      const critical = parts.length === 3 && parts[1]!.content[0] === 0xff;
      extensions.set(id, { critical, value: Buffer.from(parts[parts.length - 1]!.content) });
    }
  }
  return { tbs: tbs!, subject: Buffer.from(subject.raw), issuer: Buffer.from(issuer.raw), spki: Buffer.from(spki.raw), extensions };
}
