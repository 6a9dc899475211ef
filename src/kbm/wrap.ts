/**
 * The client's wrapping key and the two reply forms of PROTOCOL.md §2.
 *
 * - parseWrappingKey: the `wrapping-key` bytes as sent (the agent sends PKCS#1 RSAPublicKey DER;
 *   SPKI DER and PEM are accepted too) -> WrappingKey. Only canonical encodings of RSA public keys
 *   of 2048..16384 bits pass: private keys, trailing bytes, RSA-PSS-restricted keys, even moduli
 *   and unusable exponents (even, below 3, not below n, over 64 bits above 3072 modulus bits) are
 *   refused with KBM_WRAPPING_KEY_INVALID (400). The PKCS#1 form is checked and used by the addon
 *   (native/core/wrap.cc), which applies the same bounds again.
 * - wrapAesGcm: fresh AES-256 key, AES-256-GCM (12-byte IV, 16-byte tag apart, no AAD), the AES
 *   key under RSA-OAEP SHA-256 / MGF1-SHA-256 / empty label.
 * - wrapKwp: fresh AES-256 key, RFC 5649 AES key wrap with padding of the secret
 *   (`algorithm` = base64("AES-KWP"), `iv` = `tag` = ""), the AES key under the same OAEP.
 *
 * The helpers zero every buffer they create that holds key material; the caller owns (and zeroes)
 * the secret it passes in.
 */
import { constants, createCipheriv, createHash, createPublicKey, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import type { SecretKeyReply } from '../attest/types';
import { TasError } from '../errors';
import { oaepWrapPkcs1, rsaPkcs1Bits, wrapAesGcmPkcs1 } from '../native/wrap';
import { KbmError } from './types';

/** MIN_RSA_BITS: below 2048 bits RSA gives less than 112-bit security (NIST SP 800-57). */
export const MIN_RSA_BITS = 2048;
/** MAX_RSA_BITS bounds the work an RSA operation costs us. */
export const MAX_RSA_BITS = 16384;
/** Above SMALL_MODULUS_BITS, OpenSSL allows public exponents of at most MAX_LARGE_MODULUS_EXPONENT_BITS. */
const SMALL_MODULUS_BITS = 3072;
const MAX_LARGE_MODULUS_EXPONENT_BITS = 64;
/** bitLength of a big-endian unsigned integer without leading zero bytes. */
const bitLength = (b: Buffer): number => (b.length === 0 ? 0 : (b.length - 1) * 8 + (32 - Math.clz32(b[0]!)));
/** MAX_WRAPPING_KEY_SIZE bounds the input bytes (a 16384-bit PEM is about 3 KiB). */
export const MAX_WRAPPING_KEY_SIZE = 8192;
/** AES_KWP_ALGORITHM is the `algorithm` member of the KWP form: base64("AES-KWP"). */
export const AES_KWP_ALGORITHM = Buffer.from('AES-KWP', 'ascii').toString('base64');
/** RFC 5649 §3 alternative initial value prefix, which Node's id-aes256-wrap-pad wants as its IV. */
const KWP_AIV = Buffer.from('a65959a6', 'hex');

/** WrappingKey is a parsed, checked client RSA public key. */
export interface WrappingKey {
  readonly keyObject: KeyObject;
  /** Modulus, big-endian, no leading zero byte. */
  readonly n: Buffer;
  /** Public exponent, big-endian, no leading zero byte. */
  readonly e: Buffer;
  /** Modulus length in bits. */
  readonly bits: number;
  /** Hex SHA-256 of the SPKI DER: for logs and audit records instead of the key itself. */
  readonly fingerprint: string;
}

/** WrappingKeyFormat names what parseWrappingKey accepted. */
export type WrappingKeyFormat = 'pkcs1-der' | 'spki-der' | 'pem';

function invalid(detail: string): TasError {
  return new TasError('KBM_WRAPPING_KEY_INVALID', `wrapping-key: ${detail}`, { reason: 'KBM_WRAPPING_KEY_INVALID' });
}

/** parseWrappingKey turns the bytes of `wrapping-key` into a WrappingKey or throws TasError (400). */
export function parseWrappingKey(bytes: Buffer | Uint8Array): WrappingKey {
  return parseWrappingKeyWithFormat(bytes).key;
}

/** parseWrappingKeyWithFormat is parseWrappingKey that also says which encoding was sent. */
export function parseWrappingKeyWithFormat(bytes: Buffer | Uint8Array): { key: WrappingKey; format: WrappingKeyFormat } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length === 0) throw invalid('empty');
  if (buf.length > MAX_WRAPPING_KEY_SIZE) throw invalid(`${buf.length} bytes, more than ${MAX_WRAPPING_KEY_SIZE}`);
  let keyObject: KeyObject;
  let format: WrappingKeyFormat;
  if (buf[0] === 0x30) {
    // DER SEQUENCE: RSAPublicKey (what the agent sends), else SubjectPublicKeyInfo; either must
    // re-encode to the same bytes, which refuses private keys (which Node would happily turn into
    // their public half), BER oddities and trailing garbage. RSAPublicKey is checked by the addon
    // (plain DER codec) and used from these bytes: no KeyObject unless a broker asks for one (#16:
    // Node's decoder and encoder round trip and per-call EVP set-up cost several RSA operations).
    const bits = rsaPkcs1Bits(buf);
    if (bits > 0) return { key: describePkcs1(Buffer.from(buf), bits, (d) => invalid(d)), format: 'pkcs1-der' };
    const spki = trySpki(buf);
    if (!spki) throw invalid('not a DER RSAPublicKey or SubjectPublicKeyInfo');
    keyObject = spki;
    format = 'spki-der';
  } else {
    const text = buf.toString('latin1').trim();
    const m = /^-----BEGIN (PUBLIC KEY|RSA PUBLIC KEY)-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END \1-----$/.exec(text);
    if (!m) throw invalid('neither DER nor a single PEM PUBLIC KEY / RSA PUBLIC KEY block');
    const der = Buffer.from(m[2]!.replace(/[\r\n]/g, ''), 'base64');
    const fail = (): TasError => invalid(`PEM ${m[1]} does not hold a canonical RSA public key`);
    if (m[1] === 'RSA PUBLIC KEY') {
      // The same RSAPublicKey as the DER form above, in armour: the same check and use.
      const bits = rsaPkcs1Bits(der);
      if (bits === 0) throw fail();
      return { key: describePkcs1(der, bits, (d) => invalid(d)), format: 'pem' };
    }
    const parsed = trySpki(der);
    if (!parsed) throw fail();
    keyObject = parsed;
    format = 'pem';
  }
  return { key: describe(keyObject, (d) => invalid(d)), format };
}

/** trySpki returns the key of a SubjectPublicKeyInfo DER that re-encodes to the same bytes. */
function trySpki(der: Buffer): KeyObject | undefined {
  let k: KeyObject;
  try {
    k = createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
  if (k.type !== 'public') return undefined;
  let again: Buffer;
  try {
    again = k.export({ format: 'der', type: 'spki' }) as Buffer;
  } catch {
    return undefined;
  }
  return again.equals(der) ? k : undefined;
}

/**
 * DESCRIBED holds, for every WrappingKey that this module built, private copies of what it found
 * (and, for the RSAPublicKey form, the canonical bytes the addon wraps with): checkWrappingKey then
 * compares against those instead of parsing the key again (a WrappingKey is parsed, checked and
 * described once per request, not once per layer). Only this module can add to it, so a
 * look-alike object still gets the full check.
 */
interface Described {
  readonly n: Buffer;
  readonly e: Buffer;
  readonly bits: number;
  /** Canonical DER RSAPublicKey when the key came in that form: the addon wraps with these bytes. */
  readonly pkcs1?: Buffer;
}
const DESCRIBED = new WeakMap<WrappingKey, Described>();

/**
 * rsaPublicKeyParts reads n and e (big-endian, leading zero bytes dropped) from a DER
 * RSAPublicKey that OpenSSL produced or accepted as canonical: SEQUENCE { INTEGER n, INTEGER e }.
 * Anything else returns undefined (the caller then asks OpenSSL).
 */
function rsaPublicKeyParts(der: Buffer): { n: Buffer; e: Buffer } | undefined {
  let pos = 0;
  const header = (tag: number): number | undefined => {
    if (der[pos] !== tag || pos + 2 > der.length) return undefined;
    let len = der[pos + 1]!;
    pos += 2;
    if (len & 0x80) {
      const octets = len & 0x7f;
      if (octets === 0 || octets > 3 || pos + octets > der.length) return undefined;
      len = 0;
      for (let i = 0; i < octets; i++) len = len * 256 + der[pos++]!;
    }
    return pos + len <= der.length ? len : undefined;
  };
  const integer = (): Buffer | undefined => {
    const len = header(0x02);
    if (len === undefined || len === 0) return undefined;
    let start = pos;
    const end = pos + len;
    pos = end;
    while (start < end - 1 && der[start] === 0) start++;
    return Buffer.from(der.subarray(start, end));
  };
  const seq = header(0x30);
  if (seq === undefined || pos + seq !== der.length) return undefined;
  const n = integer();
  const e = integer();
  return n && e && pos === der.length ? { n, e } : undefined;
}

/** describe checks an RSA public KeyObject and builds the WrappingKey. */
function describe(k: KeyObject, fail: (detail: string) => Error): WrappingKey {
  if (k.type !== 'public') throw fail('not a public key');
  if (k.asymmetricKeyType !== 'rsa') throw fail(`not an RSA key (${k.asymmetricKeyType ?? 'unknown type'})`);
  const jwk = k.export({ format: 'jwk' });
  const n = Buffer.from(jwk.n ?? '', 'base64url');
  const e = Buffer.from(jwk.e ?? '', 'base64url');
  return build(k.asymmetricKeyDetails?.modulusLength ?? 0, n, e, fail, () => k);
}

/** describePkcs1 builds the WrappingKey of a canonical DER RSAPublicKey (`bits` from the addon). */
function describePkcs1(pkcs1: Buffer, bits: number, fail: (detail: string) => Error): WrappingKey {
  const parts = rsaPublicKeyParts(pkcs1);
  if (parts === undefined) throw fail('not a DER RSAPublicKey or SubjectPublicKeyInfo');
  return build(bits, parts.n, parts.e, fail, () => createPublicKey({ key: pkcs1, format: 'der', type: 'pkcs1' }), pkcs1);
}

/** build checks size and exponent and freezes the WrappingKey. */
function build(bits: number, n: Buffer, e: Buffer, fail: (detail: string) => Error, keyObject: () => KeyObject, pkcs1?: Buffer): WrappingKey {
  if (bits < MIN_RSA_BITS) throw fail(`RSA key of ${bits} bits, at least ${MIN_RSA_BITS} needed`);
  if (bits > MAX_RSA_BITS) throw fail(`RSA key of ${bits} bits, at most ${MAX_RSA_BITS} accepted`);
  // An RSA modulus is odd (a product of odd primes).
  if (n.length === 0 || (n[n.length - 1]! & 1) === 0) throw fail('RSA modulus is even');
  // An even or tiny exponent is not a usable RSA encryption key.
  if (e.length === 0 || (e[e.length - 1]! & 1) === 0 || (e.length === 1 && e[0]! < 3)) throw fail('RSA public exponent is not an odd number >= 3');
  // Both without leading zero bytes: a longer or equal-length, not smaller exponent is >= n.
  if (e.length > n.length || (e.length === n.length && Buffer.compare(e, n) >= 0)) throw fail('RSA public exponent is not below the modulus');
  // OpenSSL refuses to encrypt with more (one public operation would cost a private one): say so
  // now, before the attestation runs, instead of failing the release after it.
  if (bits > SMALL_MODULUS_BITS && bitLength(e) > MAX_LARGE_MODULUS_EXPONENT_BITS) {
    throw fail(`RSA public exponent of ${bitLength(e)} bits with a ${bits}-bit modulus (at most ${MAX_LARGE_MODULUS_EXPONENT_BITS} above ${SMALL_MODULUS_BITS})`);
  }
  const wk = Object.freeze(new ParsedKey(n, e, bits, keyObject));
  DESCRIBED.set(wk, { n: Buffer.from(n), e: Buffer.from(e), bits, ...(pkcs1 !== undefined ? { pkcs1 } : {}) });
  return wk;
}

/**
 * ParsedKey is the WrappingKey this module hands out. Neither the KeyObject (for brokers that use
 * node:crypto themselves) nor the fingerprint (logs and tools) is read on the agent's request
 * path: both are made on first read. A class, not per-object accessors: defining two accessors
 * per request cost more than parsing the key in the addon (#16).
 */
class ParsedKey implements WrappingKey {
  #keyObject: (() => KeyObject) | KeyObject;
  #fingerprint: string | undefined;
  constructor(
    readonly n: Buffer,
    readonly e: Buffer,
    readonly bits: number,
    keyObject: () => KeyObject,
  ) {
    this.#keyObject = keyObject;
  }
  get keyObject(): KeyObject {
    if (typeof this.#keyObject === 'function') this.#keyObject = this.#keyObject();
    return this.#keyObject;
  }
  get fingerprint(): string {
    return (this.#fingerprint ??= createHash('sha256').update(this.keyObject.export({ format: 'der', type: 'spki' })).digest('hex'));
  }
}

/**
 * checkWrappingKey re-checks a WrappingKey handed to a broker (brokers must not trust that the
 * caller went through parseWrappingKey): throws KbmError('bad_wrapping_key').
 */
export function checkWrappingKey(wk: WrappingKey): WrappingKey {
  checked(wk);
  return wk;
}

/** checked is checkWrappingKey returning this module's record of the key. */
function checked(wk: WrappingKey): Described {
  const fail = (d: string): KbmError => new KbmError('bad_wrapping_key', `wrapping key: ${d}`);
  if (typeof wk !== 'object' || wk === null) throw fail('not a parsed key');
  // Built here: its findings stand (the object is frozen, its KeyObject immutable); the fields the
  // broker reads are compared with the private copies, so a look-alike with a changed n, e or
  // bits still fails. Anything else is described from its KeyObject afresh.
  let known = DESCRIBED.get(wk);
  if (known === undefined) {
    if (typeof wk.keyObject?.export !== 'function') throw fail('not a parsed key');
    known = DESCRIBED.get(describe(wk.keyObject, fail))!;
  }
  if (!Buffer.isBuffer(wk.n) || !known.n.equals(wk.n) || !Buffer.isBuffer(wk.e) || !known.e.equals(wk.e) || known.bits !== wk.bits) {
    throw fail('modulus, exponent or size do not match the key object');
  }
  return known;
}

/** nativeWrap runs an addon wrap; a key the addon refuses is a KbmError like OpenSSL's refusal below. */
function nativeWrap<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if ((e as { code?: string }).code === 'KBM_ERR_WRAPPING_KEY') {
      throw new KbmError('bad_wrapping_key', `RSA-OAEP encryption under the wrapping key failed: ${(e as Error).message}`);
    }
    throw e;
  }
}

/** oaepWrap encrypts key material under the client's key with RSA-OAEP SHA-256/MGF1-SHA-256, empty label. */
export function oaepWrap(keyMaterial: Buffer, wk: WrappingKey): Buffer {
  const known = checked(wk);
  if (known.pkcs1 !== undefined) {
    const pkcs1 = known.pkcs1;
    return nativeWrap(() => oaepWrapPkcs1(pkcs1, keyMaterial));
  }
  try {
    // Node sets only the OAEP digest; OpenSSL then uses the same digest for MGF1 (RFC 8017 B.2.1).
    return publicEncrypt({ key: wk.keyObject, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, keyMaterial);
  } catch (e) {
    throw new KbmError('bad_wrapping_key', `RSA-OAEP encryption under the wrapping key failed: ${(e as Error).message}`);
  }
}

/** wrapAesGcm builds the AES-GCM form of the reply (the form every agent understands). */
export function wrapAesGcm(secret: Buffer, wk: WrappingKey): SecretKeyReply {
  const known = checked(wk);
  if (known.pkcs1 !== undefined) {
    // The agent's key form: one addon call (fresh key and IV, GCM, OAEP); the AES key stays inside it.
    const pkcs1 = known.pkcs1;
    const w = nativeWrap(() => wrapAesGcmPkcs1(pkcs1, secret));
    return { wrapped_key: w.wrappedKey.toString('base64'), blob: w.blob.toString('base64'), iv: w.iv.toString('base64'), tag: w.tag.toString('base64') };
  }
  // Key and IV from one draw of the CSPRNG (each draw is a call into OpenSSL's DRBG and its fork check).
  const fresh = randomBytes(44);
  const key = fresh.subarray(0, 32);
  try {
    const iv = Buffer.from(fresh.subarray(32));
    const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
    const blob = Buffer.concat([cipher.update(secret), cipher.final()]);
    const tag = cipher.getAuthTag();
    const wrapped = oaepWrap(key, wk);
    return {
      wrapped_key: wrapped.toString('base64'),
      blob: blob.toString('base64'),
      iv: iv.toString('base64'),
      tag: tag.toString('base64'),
    };
  } finally {
    fresh.fill(0);
  }
}

/** kwpWrap is RFC 5649 AES key wrap with padding of data under a 256-bit key. */
export function kwpWrap(data: Buffer, kek: Buffer): Buffer {
  if (kek.length !== 32) throw new Error('AES-KWP key must be 32 bytes');
  if (data.length === 0) throw new KbmError('unavailable', 'cannot wrap an empty secret with AES-KWP');
  const cipher = createCipheriv('id-aes256-wrap-pad', kek, KWP_AIV);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

/** kwpReply assembles the KWP form from the RFC 5649 wrapped secret and the OAEP-wrapped AES key. */
export function kwpReply(wrappedSecret: Buffer, wrappedKey: Buffer): SecretKeyReply {
  return { wrapped_key: wrappedKey.toString('base64'), blob: wrappedSecret.toString('base64'), iv: '', tag: '', algorithm: AES_KWP_ALGORITHM };
}

/** wrapKwp builds the AES-KWP form in software (the mock's optional form; HSM plugins wrap inside the HSM). */
export function wrapKwp(secret: Buffer, wk: WrappingKey): SecretKeyReply {
  checkWrappingKey(wk);
  const key = randomBytes(32);
  try {
    const blob = kwpWrap(secret, key);
    return kwpReply(blob, oaepWrap(key, wk));
  } finally {
    key.fill(0);
  }
}
