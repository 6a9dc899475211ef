/**
 * Making the CA hierarchy of certify (`tas cert ca init`, and tas_cert_local's lab mode): a
 * self-signed root, kept offline, and an issuing CA (path length 0) whose key lives with the signer
 * plugin (in the HSM for tas_cert_pkcs11). Certificates are built with ./profile and signed here
 * with the root key only; the issuing CA's private key is never seen by this module.
 */
import { closeSync, constants as fsc, openSync, writeSync } from 'node:fs';
import { constants, createPublicKey, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { OID, type SignatureSuite } from './alg';
import { assembleCertificate, buildTbs, caExtensions, keyIdentifier, name, newSerial } from './profile';

/** suiteForKey picks the signature suite a CA key signs with: ECDSA with its curve's hash, RSA-PSS-SHA256. */
export function suiteForKey(pub: KeyObject): SignatureSuite {
  if (pub.asymmetricKeyType === 'ec') {
    const c = pub.asymmetricKeyDetails?.namedCurve;
    if (c === 'secp384r1') return 'ecdsa-sha384';
    if (c === 'prime256v1') return 'ecdsa-sha256';
    throw new Error(`CA keys on curve ${c} are not supported (P-384, P-256)`);
  }
  if (pub.asymmetricKeyType === 'rsa' && (pub.asymmetricKeyDetails?.modulusLength ?? 0) >= 3072) return 'rsa-pss-sha256';
  throw new Error(`CA key type ${pub.asymmetricKeyType} is not supported (EC P-384/P-256, RSA ≥ 3072)`);
}

/** signLocal signs data with a private key in a suite's form (DER ECDSA, RSA-PSS with salt = hash length). */
export function signLocal(suite: SignatureSuite, key: KeyObject, data: Buffer): Buffer {
  const hash = suite.endsWith('384') ? 'sha384' : 'sha256';
  if (suite.startsWith('ecdsa')) return cryptoSign(hash, data, { key, dsaEncoding: 'der' });
  return cryptoSign(hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hash === 'sha384' ? 48 : 32 });
}

/** signLocalAsync is signLocal on the libuv thread pool (keeps the event loop free under load). */
export function signLocalAsync(suite: SignatureSuite, key: KeyObject, data: Buffer): Promise<Buffer> {
  const hash = suite.endsWith('384') ? 'sha384' : 'sha256';
  const opts = suite.startsWith('ecdsa') ? { key, dsaEncoding: 'der' as const } : { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hash === 'sha384' ? 48 : 32 };
  return new Promise((resolve, reject) => cryptoSign(hash, data, opts, (err, sig) => (err ? reject(err) : resolve(sig))));
}

/** newCaKey generates a CA key pair (EC P-384 by default, or RSA of keySize ≥ 3072). */
export function newCaKey(keyType: 'EC' | 'RSA', keySize = 3072): { privateKey: KeyObject; publicKey: KeyObject } {
  if (keyType === 'RSA') {
    if (keySize < 3072) throw new Error(`RSA CA keys must have at least 3072 bits (got ${keySize})`);
    return generateKeyPairSync('rsa', { modulusLength: keySize, publicExponent: 65537 });
  }
  return generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
}

const DAY = 86_400_000;

/** makeRoot makes a self-signed root certificate (DER) for a private key. */
export function makeRoot(key: KeyObject, cn: string, days: number, now = new Date()): Buffer {
  const pub = createPublicKey(key);
  const suite = suiteForKey(pub);
  const spki = pub.export({ type: 'spki', format: 'der' });
  const subject = name([[OID.commonName, cn]]);
  const tbs = buildTbs({
    serial: newSerial(), suite, issuer: subject, notBefore: new Date(now.getTime() - 300_000), notAfter: new Date(now.getTime() + days * DAY),
    subject, spki, extensions: caExtensions({ spki }),
  });
  return assembleCertificate(tbs, suite, signLocal(suite, key, tbs));
}

/** makeIssuing makes the issuing CA certificate (DER, pathLen 0) for spki, signed by the root. */
export function makeIssuing(root: { key: KeyObject; cert: Buffer; subject: Buffer; spki: Buffer }, spki: Buffer, cn: string, days: number, now = new Date()): Buffer {
  const suite = suiteForKey(createPublicKey(root.key));
  const tbs = buildTbs({
    serial: newSerial(), suite, issuer: root.subject, notBefore: new Date(now.getTime() - 300_000), notAfter: new Date(now.getTime() + days * DAY),
    subject: name([[OID.commonName, cn]]), spki, extensions: caExtensions({ spki, issuerKeyId: keyIdentifier(root.spki), pathLen: 0 }),
  });
  return assembleCertificate(tbs, suite, signLocal(suite, root.key, tbs));
}


/** writeExclusive creates a new file with mode 0600 (O_EXCL, no symlink follow): an existing file is never overwritten. */
export function writeExclusive(file: string, text: string): void {
  const fd = openSync(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | (fsc.O_NOFOLLOW ?? 0), 0o600);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}
