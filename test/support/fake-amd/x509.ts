/**
 * AMD-shaped X.509 certificates and CRLs, assembled with ./der.ts and signed with node:crypto
 * (RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48), exactly like AMD's KDS output (SNP.md §2.1).
 * Test-only code.
 */
import { createHash, sign, constants, type KeyObject } from 'node:crypto';
import { bitString, bool, explicit, ia5, integer, octets, oid, printable, seq, set, time, utf8, nul } from './der';

export const OID = {
  rsassaPss: '1.2.840.113549.1.1.10',
  sha384: '2.16.840.1.101.3.4.2.2',
  mgf1: '1.2.840.113549.1.1.8',
  ou: '2.5.4.11',
  c: '2.5.4.6',
  l: '2.5.4.7',
  st: '2.5.4.8',
  o: '2.5.4.10',
  cn: '2.5.4.3',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  ski: '2.5.29.14',
  aki: '2.5.29.35',
  crlDp: '2.5.29.31',
  crlNumber: '2.5.29.20',
  kds: '1.3.6.1.4.1.3704.1',
} as const;

/**
 * pssAlgorithm is the RSASSA-PSS AlgorithmIdentifier AMD uses. The CA certificates and older
 * VCEKs spell out trailerField 1; VCEKs issued since 2026 omit it (it is the DEFAULT). Both
 * shapes are genuine, so both can be produced.
 */
export function pssAlgorithm(withTrailer: boolean): Buffer {
  const sha384 = seq(oid(OID.sha384), nul());
  const params = [explicit(0, sha384), explicit(1, seq(oid(OID.mgf1), sha384)), explicit(2, integer(48))];
  if (withTrailer) params.push(explicit(3, integer(1)));
  return seq(oid(OID.rsassaPss), seq(...params));
}

/** amdName builds `OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices, CN=<cn>` with AMD's string types. */
export function amdName(cn: string): Buffer {
  const rdn = (o: string, v: Buffer): Buffer => set(seq(oid(o), v));
  return seq(
    rdn(OID.ou, utf8('Engineering')),
    rdn(OID.c, printable('US')),
    rdn(OID.l, utf8('Santa Clara')),
    rdn(OID.st, utf8('CA')),
    rdn(OID.o, utf8('Advanced Micro Devices')),
    rdn(OID.cn, utf8(cn)),
  );
}

/** Extension is one X.509 v3 extension; `value` is the content of extnValue's OCTET STRING. */
export interface Extension {
  readonly oid: string;
  readonly critical?: boolean;
  readonly value: Buffer;
}

export function encodeExtension(e: Extension): Buffer {
  return seq(oid(e.oid), ...(e.critical ? [bool(true)] : []), octets(e.value));
}

/** keyId is the RFC 5280 method-1 key identifier: SHA-1 of the subjectPublicKey bits. */
export function keyId(spkiDer: Buffer): Buffer {
  // SPKI = SEQ { AlgorithmIdentifier, BIT STRING }; the BIT STRING is the last element.
  const bits = lastTlvContent(spkiDer);
  return createHash('sha1').update(bits.subarray(1)).digest();
}

function lastTlvContent(der: Buffer): Buffer {
  // Walk the children of the outer SEQUENCE and return the last one's content.
  let off = headerLen(der, 0);
  let last: Buffer = Buffer.alloc(0);
  while (off < der.length) {
    const h = headerLen(der, off);
    const len = contentLen(der, off);
    last = der.subarray(off + h, off + h + len);
    off += h + len;
  }
  return last;
}
function headerLen(der: Buffer, off: number): number {
  const b = der[off + 1]!;
  return b < 0x80 ? 2 : 2 + (b & 0x7f);
}
function contentLen(der: Buffer, off: number): number {
  const b = der[off + 1]!;
  if (b < 0x80) return b;
  let n = 0;
  for (let i = 0; i < (b & 0x7f); i++) n = n * 256 + der[off + 2 + i]!;
  return n;
}

export const ext = {
  keyUsage: (bits: 'certSign+cRLSign' | 'certSign'): Extension => ({
    oid: OID.keyUsage,
    critical: true,
    // BIT STRING with 1 unused bit: keyCertSign is bit 5, cRLSign bit 6 (byte-identical to AMD's).
    value: bits === 'certSign+cRLSign' ? Buffer.from('03020106', 'hex') : Buffer.from('03020104', 'hex'),
  }),
  basicConstraints: (pathLen0: boolean): Extension => ({
    oid: OID.basicConstraints,
    critical: true,
    value: pathLen0 ? seq(bool(true), integer(0)) : seq(bool(true)),
  }),
  ski: (spki: Buffer): Extension => ({ oid: OID.ski, value: octets(keyId(spki)) }),
  aki: (issuerSpki: Buffer): Extension => ({ oid: OID.aki, value: seq(Buffer.concat([Buffer.from([0x80, 20]), keyId(issuerSpki)])) }),
  crlDp: (url: string): Extension => ({
    oid: OID.crlDp,
    // CRLDistributionPoints ::= SEQ { DistributionPoint { [0] fullName { [0] GeneralNames { [6] URI } } } }
    value: seq(seq(explicit(0, explicit(0, Buffer.concat([Buffer.from([0x86, url.length]), Buffer.from(url, 'ascii')]))))),
  }),
  kdsInteger: (suffix: string, v: number): Extension => ({ oid: `${OID.kds}.${suffix}`, value: integer(v) }),
  kdsIa5: (suffix: string, s: string): Extension => ({ oid: `${OID.kds}.${suffix}`, value: ia5(s) }),
  kdsRaw: (suffix: string, b: Buffer): Extension => ({ oid: `${OID.kds}.${suffix}`, value: b }),
};

/** CertSpec describes one certificate to mint. */
export interface CertSpec {
  readonly serial: number | bigint;
  readonly issuerCN: string;
  readonly subjectCN: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spki: Buffer;
  readonly extensions: readonly Extension[];
  /** Private RSA key of the issuer. */
  readonly signer: KeyObject;
  readonly pssTrailer: boolean;
}

/** rsaPssSign signs bytes the way AMD's CAs do. */
export function rsaPssSign(key: KeyObject, data: Buffer): Buffer {
  return sign('sha384', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 });
}

/** buildCert assembles and signs an X.509 v3 certificate. */
export function buildCert(s: CertSpec): Buffer {
  const alg = pssAlgorithm(s.pssTrailer);
  const tbs = seq(
    explicit(0, integer(2)),
    integer(s.serial),
    alg,
    amdName(s.issuerCN),
    seq(time(s.notBefore), time(s.notAfter)),
    amdName(s.subjectCN),
    s.spki,
    explicit(3, seq(...s.extensions.map(encodeExtension))),
  );
  return seq(tbs, alg, bitString(rsaPssSign(s.signer, tbs)));
}

/** RevokedEntry names a revoked serial and when it was revoked. */
export interface RevokedEntry {
  readonly serial: number | bigint;
  readonly date?: Date;
}

/** buildCrl assembles an ARK-signed v2 CRL (AKI + CRL number extensions, like KDS CRLs). */
export function buildCrl(o: {
  issuerCN: string;
  issuerSpki: Buffer;
  signer: KeyObject;
  thisUpdate: Date;
  nextUpdate: Date;
  revoked: readonly RevokedEntry[];
  crlNumber: number;
}): Buffer {
  const alg = pssAlgorithm(true);
  const revoked = o.revoked.length
    ? [seq(...o.revoked.map((r) => seq(integer(r.serial), time(r.date ?? o.thisUpdate))))]
    : [];
  const tbs = seq(
    integer(1),
    alg,
    amdName(o.issuerCN),
    time(o.thisUpdate),
    time(o.nextUpdate),
    ...revoked,
    explicit(0, seq(encodeExtension(ext.aki(o.issuerSpki)), encodeExtension({ oid: OID.crlNumber, value: integer(o.crlNumber) }))),
  );
  return seq(tbs, alg, bitString(rsaPssSign(o.signer, tbs)));
}

/** toPem wraps DER in PEM armour. */
export function toPem(der: Buffer, label = 'CERTIFICATE'): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
