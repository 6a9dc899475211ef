/**
 * Object identifiers and signature algorithms of certify: the AlgorithmIdentifiers tas writes for
 * its CA signatures (ECDSA P-384/P-256, RSA-PSS) and the ones it accepts on CSRs (proof of
 * possession). SHA-1 is never accepted.
 */
import { constants, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { children, DerError, explicit, int, nul, oid, readInt, readOid, seq, type DerNode } from './der';

export const OID = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  sha384WithRSA: '1.2.840.113549.1.1.12',
  sha512WithRSA: '1.2.840.113549.1.1.13',
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  secp384r1: '1.3.132.0.34',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  ecdsaSha512: '1.2.840.10045.4.3.4',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  commonName: '2.5.4.3',
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** SignatureSuite names the CA signature schemes tas issues with. */
export type SignatureSuite = 'ecdsa-sha384' | 'ecdsa-sha256' | 'rsa-pss-sha256' | 'rsa-pss-sha384';

export const SIGNATURE_SUITES: readonly SignatureSuite[] = ['ecdsa-sha384', 'ecdsa-sha256', 'rsa-pss-sha256', 'rsa-pss-sha384'];

type Hash = 'sha256' | 'sha384' | 'sha512';
const HASH_OID: Record<Hash, string> = { sha256: OID.sha256, sha384: OID.sha384, sha512: OID.sha512 };
const HASH_LEN: Record<Hash, number> = { sha256: 32, sha384: 48, sha512: 64 };

function hashAlg(h: Hash): Buffer {
  return seq(oid(HASH_OID[h]), nul());
}

/** pssParams encodes RSASSA-PSS-params with MGF1 over the same hash and salt = hash length (RFC 4055). */
function pssAlgorithm(h: Hash): Buffer {
  return seq(oid(OID.rsassaPss), seq(explicit(0, hashAlg(h)), explicit(1, seq(oid(OID.mgf1), hashAlg(h))), explicit(2, int(HASH_LEN[h]))));
}

/** algorithmIdentifier is the DER AlgorithmIdentifier of a suite (for TBS and Certificate). */
export function algorithmIdentifier(s: SignatureSuite): Buffer {
  switch (s) {
    case 'ecdsa-sha384':
      return seq(oid(OID.ecdsaSha384));
    case 'ecdsa-sha256':
      return seq(oid(OID.ecdsaSha256));
    case 'rsa-pss-sha256':
      return pssAlgorithm('sha256');
    case 'rsa-pss-sha384':
      return pssAlgorithm('sha384');
  }
}

/** suiteHash is the digest a suite signs with. */
export function suiteHash(s: SignatureSuite): 'sha256' | 'sha384' {
  return s.endsWith('384') ? 'sha384' : 'sha256';
}

/** suiteFitsKey tells whether a CA public key can produce a suite's signatures. */
export function suiteFitsKey(s: SignatureSuite, key: KeyObject): boolean {
  const d = key.asymmetricKeyDetails ?? {};
  if (s === 'ecdsa-sha384') return key.asymmetricKeyType === 'ec' && d.namedCurve === 'secp384r1';
  if (s === 'ecdsa-sha256') return key.asymmetricKeyType === 'ec' && d.namedCurve === 'prime256v1';
  return key.asymmetricKeyType === 'rsa' && (d.modulusLength ?? 0) >= 3072;
}

/** verifyWithSuite checks a CA signature in the same form a plugin returns it (DER ECDSA, raw PSS). */
export function verifyWithSuite(s: SignatureSuite, key: KeyObject, data: Buffer, sig: Buffer): boolean {
  const h = suiteHash(s);
  if (s.startsWith('ecdsa')) return cryptoVerify(h, data, { key, dsaEncoding: 'der' }, sig);
  return cryptoVerify(h, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_LEN[h] }, sig);
}

/** CsrSignature is how a CSR's proof of possession is checked with node:crypto. */
export interface CsrSignature {
  readonly name: string;
  readonly hash: Hash;
  readonly pss?: { saltLength: number };
  readonly ecdsa: boolean;
}

function hashOfAlgId(node: DerNode | undefined, what: string): Hash {
  const parts = children(node ?? ({} as DerNode));
  const o = readOid(parts[0], what);
  const h = (Object.keys(HASH_OID) as Hash[]).find((k) => HASH_OID[k] === o);
  if (!h) throw new DerError(`${what}: hash ${o} is not accepted (SHA-256, SHA-384, SHA-512 only)`);
  if (parts.length > 2 || (parts[1] && parts[1].tag !== 0x05)) throw new DerError(`${what}: unexpected hash parameters`);
  return h;
}

/** csrSignature reads a CSR's signatureAlgorithm; anything but SHA-2 RSA/PSS/ECDSA is refused. */
export function csrSignature(alg: DerNode): CsrSignature {
  const parts = children(alg);
  const o = readOid(parts[0], 'signatureAlgorithm');
  const rsa: Record<string, Hash> = { [OID.sha256WithRSA]: 'sha256', [OID.sha384WithRSA]: 'sha384', [OID.sha512WithRSA]: 'sha512' };
  const ec: Record<string, Hash> = { [OID.ecdsaSha256]: 'sha256', [OID.ecdsaSha384]: 'sha384', [OID.ecdsaSha512]: 'sha512' };
  if (rsa[o]) {
    // PKCS#1 v1.5 AlgorithmIdentifiers carry NULL parameters (RFC 4055 §5); absent is tolerated.
    if (parts.length > 2 || (parts[1] && parts[1].tag !== 0x05)) throw new DerError('signatureAlgorithm: unexpected RSA parameters');
    return { name: `${rsa[o]}WithRSAEncryption`, hash: rsa[o]!, ecdsa: false };
  }
  if (ec[o]) {
    if (parts.length !== 1) throw new DerError('signatureAlgorithm: ECDSA takes no parameters');
    return { name: `ecdsa-with-${ec[o]!.toUpperCase()}`, hash: ec[o]!, ecdsa: true };
  }
  if (o === OID.rsassaPss) {
    if (parts.length !== 2) throw new DerError('signatureAlgorithm: RSASSA-PSS needs explicit parameters (the SHA-1 defaults are refused)');
    let hash: Hash | undefined;
    let mgfHash: Hash | undefined;
    let salt: number | undefined;
    for (const f of children(parts[1]!)) {
      const inner = children(f)[0];
      if (f.tag === 0xa0) hash = hashOfAlgId(inner, 'PSS hashAlgorithm');
      else if (f.tag === 0xa1) {
        const m = children(inner!);
        if (readOid(m[0], 'PSS maskGenAlgorithm') !== OID.mgf1) throw new DerError('PSS maskGenAlgorithm: only MGF1');
        mgfHash = hashOfAlgId(m[1], 'PSS MGF1 hash');
      } else if (f.tag === 0xa2) {
        const v = readInt(inner, 'PSS saltLength');
        if (v < 0n || v > 512n) throw new DerError('PSS saltLength out of range');
        salt = Number(v);
      } else if (f.tag === 0xa3) {
        if (readInt(inner, 'PSS trailerField') !== 1n) throw new DerError('PSS trailerField must be 1');
      } else throw new DerError('RSASSA-PSS-params: unknown field');
    }
    if (!hash || !mgfHash) throw new DerError('RSASSA-PSS: hash and MGF1 hash must be given (SHA-1 defaults are refused)');
    if (hash !== mgfHash) throw new DerError('RSASSA-PSS: MGF1 hash differs from the message hash');
    return { name: `rsassa-pss-${hash}`, hash, pss: { saltLength: salt ?? 20 }, ecdsa: false };
  }
  throw new DerError(`signatureAlgorithm ${o} is not accepted`);
}

/** verifyCsrSignature checks proof of possession (no exceptions: false for any mismatch). */
export function verifyCsrSignature(s: CsrSignature, key: KeyObject, data: Buffer, sig: Buffer): boolean {
  try {
    if (s.ecdsa) return key.asymmetricKeyType === 'ec' && cryptoVerify(s.hash, data, { key, dsaEncoding: 'der' }, sig);
    if (key.asymmetricKeyType !== 'rsa') return false;
    if (s.pss) return cryptoVerify(s.hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: s.pss.saltLength }, sig);
    return cryptoVerify(s.hash, data, { key, padding: constants.RSA_PKCS1_PADDING }, sig);
  } catch {
    return false;
  }
}
