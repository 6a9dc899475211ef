/**
 * PKCS#10 certificate requests for certify (PROTOCOL.md §2.2): parse strictly, check proof of
 * possession, key type and size, and sanitise the subject and SANs. Nothing from the CSR is
 * copied into a certificate unless it passed a check here: the Common Name must be DNS-safe, DNS
 * names, IP addresses and email addresses are validated one by one (invalid ones are dropped and
 * counted), and URI SANs are always dropped (the only URI in a tas certificate is the SPIFFE ID
 * tas assigns). Every other CSR extension and attribute is ignored.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { TasError } from '../errors';
import { csrSignature, OID, verifyCsrSignature } from './alg';
import { children, DerError, expect, parse, readBitString, readBool, readInt, readOid, readString, seqOf, TAG, unpem, type DerNode } from './der';

/** Key families of TAS_CERT_ALLOWED_KEY_TYPES. */
export type CsrKeyType = 'RSA' | 'EC';

/** Bounds (the original's): RSA ≥ 3072 bits; P-256/P-384; SAN entry caps per type. */
export const MIN_RSA_BITS = 3072;
/** Above this an RSA key only costs verification time; no deployment needs more. */
export const MAX_RSA_BITS = 8192;
export const MAX_DNS_SANS = 16;
export const MAX_IP_SANS = 8;
export const MAX_EMAIL_SANS = 8;
const CURVES: Record<string, number> = { prime256v1: 256, secp384r1: 384 };

/** SanitizedCsr is what issuance may use from a CSR. */
export interface SanitizedCsr {
  /** The public key, re-encoded as SubjectPublicKeyInfo DER (what the certificate carries). */
  readonly spki: Buffer;
  readonly key: KeyObject;
  readonly keyType: CsrKeyType;
  /** RSA modulus bits or EC curve bits. */
  readonly keyBits: number;
  /** The bytes REPORT_DATA binds: PKCS#1 RSAPublicKey DER for RSA, SPKI DER otherwise. */
  readonly bindingKey: Buffer;
  readonly commonName: string | undefined;
  readonly dns: readonly string[];
  /** IP addresses as 4 or 16 bytes (canonical text in ipText). */
  readonly ips: readonly Buffer[];
  readonly ipText: readonly string[];
  readonly emails: readonly string[];
  /** Entries left out, by kind (URIs always; invalid DNS/IP/email; other GeneralName forms). */
  readonly dropped: Readonly<Record<'uri' | 'dns' | 'ip' | 'email' | 'other', number>>;
  readonly signatureAlgorithm: string;
}

/** csrError is a 400 `Invalid CSR` with an audit reason. */
function csrError(reason: string, detail: string): TasError {
  return new TasError('CERT_CSR_INVALID', `csr: ${detail}`, { reason });
}

const LABEL_RE = /^[a-zA-Z0-9.-]+$/;

/** isDnsSafe: RFC 1035 labels (letters, digits, hyphens), no wildcard, no IPv4 literal, ≤ 253. */
export function isDnsSafe(v: string): boolean {
  if (!v || v.length > 253 || !LABEL_RE.test(v)) return false;
  if (v.startsWith('.') || v.endsWith('.')) return false;
  const labels = v.split('.');
  for (const l of labels) if (!l || l.length > 63 || l.startsWith('-') || l.endsWith('-')) return false;
  if (labels.length === 4 && labels.every((l) => /^\d+$/.test(l))) return false;
  return true;
}

const EMAIL_LOCAL_RE = /^[a-zA-Z0-9._+-]+$/;

/** isEmailSafe: ASCII local@domain with a conservative local part and a DNS-safe domain. */
export function isEmailSafe(v: string): boolean {
  // eslint-disable-next-line no-control-regex
  if (!/^[\x00-\x7f]*$/.test(v) || v.length > 254 || v.split('@').length !== 2) return false;
  const [local, domain] = v.split('@') as [string, string];
  return local.length > 0 && local.length <= 64 && EMAIL_LOCAL_RE.test(local) && !local.startsWith('.') && !local.endsWith('.') && !local.includes('..') && isDnsSafe(domain);
}

/** ipText renders 4 or 16 address bytes canonically (RFC 5952 for IPv6, via URL parsing). */
export function ipText(b: Buffer): string | undefined {
  if (b.length === 4) return [...b].join('.');
  if (b.length !== 16) return undefined;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  const host = new URL(`http://[${groups.join(':')}]/`).hostname;
  return host.slice(1, -1);
}

/** decodeCsrBytes accepts PEM (exactly one CERTIFICATE REQUEST block) or DER. */
function decodeCsrBytes(bytes: Buffer): Buffer {
  const head = bytes.subarray(0, 64).toString('latin1');
  if (!head.includes('-----BEGIN')) return bytes;
  const text = bytes.toString('latin1');
  const blocks = [...unpem(text, 'CERTIFICATE REQUEST'), ...unpem(text, 'NEW CERTIFICATE REQUEST')];
  if (blocks.length !== 1) throw csrError('CSR_MALFORMED', `PEM holds ${blocks.length} certificate requests, expected one`);
  return blocks[0]!;
}

interface Names {
  dns: string[];
  ips: Buffer[];
  emails: string[];
  dropped: Record<'uri' | 'dns' | 'ip' | 'email' | 'other', number>;
}

/** readSans walks a GeneralNames value; entries are validated here. */
function readSans(extnValue: Buffer, out: Names): void {
  const seen = new Set<string>();
  for (const gn of children(parse(extnValue))) {
    const kind = gn.tag & 0x1f;
    const cls = gn.tag & 0xc0;
    if (cls !== 0x80) throw new DerError('GeneralName is not context-tagged');
    const text = (): string | undefined => {
      const s = gn.content.toString('latin1');
      return /^[\x20-\x7e]*$/.test(s) ? s : undefined;
    };
    if (kind === 2 && !gn.constructed) {
      const v = text();
      if (v !== undefined && isDnsSafe(v)) {
        if (!seen.has(`d:${v}`)) out.dns.push(v);
        seen.add(`d:${v}`);
      } else out.dropped.dns++;
    } else if (kind === 7 && !gn.constructed) {
      const t = ipText(gn.content);
      if (t !== undefined && isIP(t)) {
        if (!seen.has(`i:${t}`)) out.ips.push(Buffer.from(gn.content));
        seen.add(`i:${t}`);
      } else out.dropped.ip++;
    } else if (kind === 1 && !gn.constructed) {
      const v = text();
      if (v !== undefined && isEmailSafe(v)) {
        if (!seen.has(`e:${v}`)) out.emails.push(v);
        seen.add(`e:${v}`);
      } else out.dropped.email++;
    } else if (kind === 6 && !gn.constructed) out.dropped.uri++;
    else out.dropped.other++;
  }
  if (out.dns.length > MAX_DNS_SANS) throw csrError('CSR_SAN_TOO_MANY', `more than ${MAX_DNS_SANS} DNS names`);
  if (out.ips.length > MAX_IP_SANS) throw csrError('CSR_SAN_TOO_MANY', `more than ${MAX_IP_SANS} IP addresses`);
  if (out.emails.length > MAX_EMAIL_SANS) throw csrError('CSR_SAN_TOO_MANY', `more than ${MAX_EMAIL_SANS} email addresses`);
}

/** readCommonName finds the subject's CN (at most one) and checks it; other RDNs are ignored. */
function readCommonName(subject: DerNode): string | undefined {
  const cns: string[] = [];
  for (const rdn of seqOf(subject, 'subject')) {
    for (const atv of seqOf(rdn, 'RelativeDistinguishedName', TAG.SET)) {
      const [type, value] = seqOf(atv, 'AttributeTypeAndValue');
      if (readOid(type, 'attribute type') === OID.commonName) {
        try {
          cns.push(readString(value, 'commonName'));
        } catch (e) {
          throw csrError('CSR_SUBJECT_INVALID', (e as Error).message);
        }
      }
    }
  }
  if (cns.length > 1) throw csrError('CSR_SUBJECT_INVALID', 'subject has more than one Common Name');
  const cn = cns[0];
  if (cn === undefined) return undefined;
  if (cn.length === 0 || cn.length > 63) throw csrError('CSR_SUBJECT_INVALID', `Common Name has ${cn.length} characters (1..63)`);
  if (!LABEL_RE.test(cn)) throw csrError('CSR_SUBJECT_INVALID', 'Common Name may hold only letters, digits, dots and hyphens');
  return cn;
}

/**
 * sanitizeCsr checks a request (PEM or DER bytes, already base64-decoded) and returns what
 * issuance may use. Throws TasError CERT_CSR_INVALID (400) with reasons CSR_TOO_LARGE,
 * CSR_MALFORMED, CSR_SIGNATURE_INVALID, CSR_KEY_TYPE_NOT_ALLOWED, CSR_KEY_WEAK,
 * CSR_SUBJECT_INVALID, CSR_SAN_TOO_MANY.
 */
export function sanitizeCsr(bytes: Buffer, opts: { allowedKeyTypes: readonly string[]; maxBytes: number }): SanitizedCsr {
  if (bytes.length > opts.maxBytes) throw csrError('CSR_TOO_LARGE', `${bytes.length} bytes, more than TAS_CERT_MAX_CSR_BYTES (${opts.maxBytes})`);
  if (bytes.length === 0) throw csrError('CSR_MALFORMED', 'empty');
  try {
    return sanitizeDer(decodeCsrBytes(bytes), opts);
  } catch (e) {
    if (e instanceof DerError) throw csrError('CSR_MALFORMED', e.message);
    throw e;
  }
}

function sanitizeDer(der: Buffer, opts: { allowedKeyTypes: readonly string[] }): SanitizedCsr {
  const [info, sigAlg, sigBits, ...extra] = seqOf(parse(der), 'CertificationRequest');
  if (extra.length) throw new DerError('CertificationRequest has extra elements');
  const [version, subject, spkiNode, attrs, ...more] = seqOf(info, 'CertificationRequestInfo');
  if (more.length) throw new DerError('CertificationRequestInfo has extra elements');
  if (readInt(version, 'version') !== 0n) throw new DerError('CSR version is not v1 (0)');
  expect(subject, TAG.SEQUENCE, 'subject');
  expect(attrs, 0xa0, 'attributes');

  // Key: the algorithm family first (cheap), then node:crypto parses it fully.
  const [algId] = seqOf(spkiNode, 'subjectPKInfo');
  const keyAlg = readOid(seqOf(algId, 'subjectPKInfo.algorithm')[0], 'key algorithm');
  const family: CsrKeyType | undefined = keyAlg === OID.rsaEncryption ? 'RSA' : keyAlg === OID.ecPublicKey ? 'EC' : undefined;
  if (!family) throw csrError('CSR_KEY_TYPE_NOT_ALLOWED', `key algorithm ${keyAlg} is not RSA or EC`);
  if (!opts.allowedKeyTypes.includes(family)) throw csrError('CSR_KEY_TYPE_NOT_ALLOWED', `${family} keys are not in TAS_CERT_ALLOWED_KEY_TYPES`);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spkiNode!.raw, format: 'der', type: 'spki' });
  } catch (e) {
    throw csrError('CSR_MALFORMED', `public key does not parse: ${(e as Error).message}`);
  }
  const d = key.asymmetricKeyDetails ?? {};
  let keyBits: number;
  if (family === 'RSA') {
    keyBits = d.modulusLength ?? 0;
    if (keyBits < MIN_RSA_BITS) throw csrError('CSR_KEY_WEAK', `RSA key of ${keyBits} bits (at least ${MIN_RSA_BITS})`);
    if (keyBits > MAX_RSA_BITS) throw csrError('CSR_KEY_WEAK', `RSA key of ${keyBits} bits (at most ${MAX_RSA_BITS})`);
    const e = d.publicExponent ?? 0n;
    if (e < 3n || e % 2n === 0n) throw csrError('CSR_KEY_WEAK', 'RSA public exponent is not an odd number ≥ 3');
  } else {
    keyBits = CURVES[d.namedCurve ?? ''] ?? 0;
    if (!keyBits) throw csrError('CSR_KEY_WEAK', `EC curve ${d.namedCurve ?? 'unknown'} (P-256 or P-384 only)`);
  }

  // Proof of possession: the request is signed by the key it names.
  const sig = csrSignature(sigAlg!);
  const signature = readBitString(sigBits, 'signature');
  if ((family === 'EC') !== sig.ecdsa) throw csrError('CSR_SIGNATURE_INVALID', `signature algorithm ${sig.name} does not fit a ${family} key`);
  if (!verifyCsrSignature(sig, key, info!.raw, signature)) throw csrError('CSR_SIGNATURE_INVALID', 'signature (proof of possession) does not verify');

  const commonName = readCommonName(subject!);
  const names: Names = { dns: [], ips: [], emails: [], dropped: { uri: 0, dns: 0, ip: 0, email: 0, other: 0 } };
  let sawSan = false;
  for (const attr of children(attrs!)) {
    const [type, values] = seqOf(attr, 'Attribute');
    if (readOid(type, 'attribute type') !== OID.extensionRequest) continue;
    for (const exts of seqOf(values, 'extensionRequest values', TAG.SET)) {
      for (const ext of seqOf(exts, 'Extensions')) {
        const parts = seqOf(ext, 'Extension');
        const id = readOid(parts[0], 'extnID');
        if (parts.length === 3) readBool(parts[1], 'critical');
        const value = expect(parts[parts.length - 1], TAG.OCTET_STRING, 'extnValue');
        if (id !== OID.subjectAltName) continue;
        if (sawSan) throw new DerError('subjectAltName requested twice');
        sawSan = true;
        readSans(value.content, names);
      }
    }
  }

  const spki = key.export({ type: 'spki', format: 'der' });
  const bindingKey = family === 'RSA' ? key.export({ type: 'pkcs1', format: 'der' }) : spki;
  return {
    spki, key, keyType: family, keyBits, bindingKey, commonName,
    dns: names.dns, ips: names.ips, ipText: names.ips.map((b) => ipText(b)!), emails: names.emails,
    dropped: names.dropped, signatureAlgorithm: sig.name,
  };
}
