/**
 * src/kbm/wrap.ts: wrapping-key parsing (every accepted encoding, every refusal) and the two reply
 * forms, opened with the independent agent-way decryptor.
 */
import assert from 'node:assert/strict';
import { constants, createPublicKey, generateKeyPairSync, privateDecrypt, randomBytes } from 'node:crypto';
import { isTasError } from '../../src/errors';
import { isKbmError } from '../../src/kbm/types';
import { AES_KWP_ALGORITHM, checkWrappingKey, oaepWrap, parseWrappingKeyWithFormat, parseWrappingKey, wrapAesGcm, wrapKwp } from '../../src/kbm/wrap';
import { oaepWrapPkcs1, rsaPkcs1Bits, wrapAesGcmPkcs1 } from '../../src/native/wrap';
import { agentDecrypt } from './agent-decrypt';
import { clientKey } from './contract';

const refused = (bytes: Buffer, re: RegExp): void => {
  assert.throws(() => parseWrappingKey(bytes), (e: unknown) => isTasError(e) && e.code === 'KBM_WRAPPING_KEY_INVALID' && e.status === 400 && re.test(e.detail));
};

describe('kbm/wrap: parseWrappingKey', () => {
  const { privateKey, wk, pkcs1 } = clientKey(2048);
  const pub = wk.keyObject;

  it('accepts PKCS#1 DER (what the agent sends), SPKI DER and both PEM forms, all to the same key', () => {
    const forms: Array<[Buffer, string]> = [
      [pkcs1, 'pkcs1-der'],
      [pub.export({ format: 'der', type: 'spki' }), 'spki-der'],
      [Buffer.from(pub.export({ format: 'pem', type: 'spki' }) as string), 'pem'],
      [Buffer.from(pub.export({ format: 'pem', type: 'pkcs1' }) as string), 'pem'],
      [Buffer.from((pub.export({ format: 'pem', type: 'spki' }) as string).replace(/\n/g, '\r\n')), 'pem'],
    ];
    for (const [bytes, format] of forms) {
      const r = parseWrappingKeyWithFormat(bytes);
      assert.equal(r.format, format);
      assert.equal(r.key.bits, 2048);
      assert.ok(r.key.n.equals(wk.n));
      assert.equal(r.key.e.toString('hex'), '010001');
      assert.equal(r.key.fingerprint, wk.fingerprint);
      assert.match(r.key.fingerprint, /^[0-9a-f]{64}$/);
    }
  });

  it('PKCS#1 DER: n and e read from the bytes equal what OpenSSL exports (sizes, exponents, leading zero bytes)', () => {
    for (const [bits, exp] of [[2048, 65537], [3072, 3], [4096, 65537], [2049, 17]] as const) {
      const k = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: exp }).publicKey;
      const jwk = k.export({ format: 'jwk' });
      const r = parseWrappingKeyWithFormat(k.export({ format: 'der', type: 'pkcs1' }));
      assert.equal(r.format, 'pkcs1-der');
      assert.equal(r.key.bits, bits);
      assert.equal(r.key.n.toString('base64url'), jwk.n, `${bits}: modulus`);
      assert.equal(r.key.e.toString('base64url'), jwk.e, `${bits}: exponent`);
      assert.notEqual(r.key.n[0], 0, 'no leading zero byte');
      assert.equal(checkWrappingKey(r.key), r.key);
    }
  });

  it('accepts the wrapping-key bytes a real agent sent (PKCS#1 DER, 2048 bits)', () => {
    // From /work/shared/agent-fixtures/exchanges/ok-03-get_secret.json (the upstream tas_agent's
    // request body, `wrapping-key`): a public key, copied here so the test does not need the fixtures.
    const agent = 'MIIBCgKCAQEAteu7DIXH8Hlg2EPcr+x6txpBJJAWtjavDxEaevURh12yJX6zsZWBiB8EGLhzI+is4nRHaD7XgbTe7QSPekdK3ZgeXKv+lPljuOWUEPZgisfuhEbb5gbOU9DQPRmpRWy58Je9BLZNuIBXm/1emPnQRqPpIKT175pcHa39HpTmi1jFLtRt0Tn04RUPH2NXVhFcdhCL1jmFoQTVGBVhQFly4ggE7xtxIXuE8yK3E6Ik25Wizp8T7lgodWE6CbHKGpQpRxcqR6ZzfJzRcLr5DGKhROqYnsNT+KX5QDsOZdZBgrjxmB589xJQajiv809LlPxB8BqertaorbyNVpsyZjlabQIDAQAB';
    const r = parseWrappingKeyWithFormat(Buffer.from(agent, 'base64'));
    assert.equal(r.format, 'pkcs1-der');
    assert.equal(r.key.bits, 2048);
    assert.equal(r.key.e.toString('hex'), '010001');
    assert.equal(Buffer.from(wrapAesGcm(Buffer.from('x'), r.key).wrapped_key, 'base64').length, 256);
  });

  it('refuses private keys, even though they contain the public key', () => {
    refused(privateKey.export({ format: 'der', type: 'pkcs1' }), /not a DER/);
    refused(privateKey.export({ format: 'der', type: 'pkcs8' }), /not a DER/);
    refused(Buffer.from(privateKey.export({ format: 'pem', type: 'pkcs8' }) as string), /neither DER nor/);
    refused(Buffer.from(privateKey.export({ format: 'pem', type: 'pkcs1' }) as string), /neither DER nor/);
  });

  it('refuses small, non-RSA, RSA-PSS, trailing bytes, garbage, empty and oversized input', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    refused(small.export({ format: 'der', type: 'pkcs1' }), /1024 bits, at least 2048/);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;
    refused(ec.export({ format: 'der', type: 'spki' }), /not an RSA key \(ec\)/);
    refused(Buffer.from(ec.export({ format: 'pem', type: 'spki' }) as string), /not an RSA key/);
    const pss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).publicKey;
    refused(pss.export({ format: 'der', type: 'spki' }), /not an RSA key \(rsa-pss\)/);
    refused(Buffer.concat([pkcs1, Buffer.from([0])]), /not a DER/);
    refused(Buffer.from([0x30, 0x82, 0xff, 0xff, 1, 2, 3]), /not a DER/);
    refused(Buffer.from('hello'), /neither DER nor/);
    refused(Buffer.alloc(0), /empty/);
    refused(Buffer.alloc(9000, 0x30), /more than 8192/);
    const pem = pub.export({ format: 'pem', type: 'spki' }) as string;
    refused(Buffer.from(pem + pem), /neither DER nor/);
  });

  it('checkWrappingKey catches objects that did not come from parseWrappingKey', () => {
    assert.equal(checkWrappingKey(wk), wk);
    for (const forged of [{}, null, { ...wk, bits: 4096 }, { ...wk, e: Buffer.from([3]) }, { ...wk, keyObject: privateKey }]) {
      assert.throws(() => checkWrappingKey(forged as never), (e: unknown) => isKbmError(e) && e.kind === 'bad_wrapping_key');
    }
  });

  it('checkWrappingKey on a parsed key reuses the parse (no re-export), yet still catches a modulus or exponent changed in place', () => {
    const { wk: mine } = clientKey(2048);
    let exports = 0;
    const real = mine.keyObject.export.bind(mine.keyObject);
    (mine.keyObject as { export: typeof real }).export = ((o: never) => (exports++, real(o))) as typeof real;
    for (let i = 0; i < 5; i++) assert.equal(checkWrappingKey(mine), mine);
    assert.equal(exports, 0, 'described once, at parse');
    mine.n[mine.n.length - 1] ^= 2;
    assert.throws(() => checkWrappingKey(mine), (e: unknown) => isKbmError(e) && e.kind === 'bad_wrapping_key');
    mine.n[mine.n.length - 1] ^= 2;
    mine.e[mine.e.length - 1] ^= 2;
    assert.throws(() => checkWrappingKey(mine), (e: unknown) => isKbmError(e) && e.kind === 'bad_wrapping_key');
    mine.e[mine.e.length - 1] ^= 2;
    delete (mine.keyObject as { export?: unknown }).export; // the shared test key is used again below
    assert.equal(checkWrappingKey(mine), mine);
  });
});

describe('kbm/wrap: reply forms', () => {
  const { privateKey, wk } = clientKey(2048);
  const secret = Buffer.from('the quick brown fox jumps over the lazy dog');

  it('wrapAesGcm: 12-byte IV, 16-byte tag apart from blob, OAEP-SHA256 wrapped AES-256 key', () => {
    const r = wrapAesGcm(secret, wk);
    assert.deepEqual(Object.keys(r).sort(), ['blob', 'iv', 'tag', 'wrapped_key']);
    assert.equal(Buffer.from(r.iv, 'base64').length, 12);
    assert.equal(Buffer.from(r.tag, 'base64').length, 16);
    assert.equal(Buffer.from(r.blob, 'base64').length, secret.length);
    assert.equal(Buffer.from(r.wrapped_key, 'base64').length, 256);
    const d = agentDecrypt(r, privateKey);
    assert.equal(d.form, 'aes-gcm');
    assert.ok(d.secret.equals(secret));
    // OAEP-SHA1 must not open it: the hash really is SHA-256.
    assert.throws(() => agentDecrypt(r, privateKey, 'sha1'));
  });

  it('wrapAesGcm: a flipped tag or blob bit fails authentication', () => {
    const r = wrapAesGcm(secret, wk);
    const tag = Buffer.from(r.tag, 'base64');
    tag[0]! ^= 1;
    assert.throws(() => agentDecrypt({ ...r, tag: tag.toString('base64') }, privateKey));
    const blob = Buffer.from(r.blob, 'base64');
    blob[0]! ^= 1;
    assert.throws(() => agentDecrypt({ ...r, blob: blob.toString('base64') }, privateKey));
  });

  it('wrapKwp: RFC 5649 blob, empty iv and tag, algorithm base64("AES-KWP")', () => {
    assert.equal(AES_KWP_ALGORITHM, 'QUVTLUtXUA==');
    for (const len of [1, 7, 8, 9, 32, 43, 1000]) {
      const s = Buffer.alloc(len, 0xa5);
      const r = wrapKwp(s, wk);
      assert.equal(r.iv, '');
      assert.equal(r.tag, '');
      assert.equal(r.algorithm, AES_KWP_ALGORITHM);
      assert.equal(Buffer.from(r.blob, 'base64').length, Math.ceil(len / 8) * 8 + 8);
      const d = agentDecrypt(r, privateKey);
      assert.equal(d.form, 'aes-kwp');
      assert.ok(d.secret.equals(s));
    }
  });

  it('leaves the caller\'s secret intact', () => {
    const s = Buffer.from(secret);
    wrapAesGcm(s, wk);
    wrapKwp(s, wk);
    assert.ok(s.equals(secret));
  });
});

/** derLen encodes a DER length (minimal form). */
function derLen(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const b: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) b.unshift(v & 0xff);
  return Buffer.from([0x80 | b.length, ...b]);
}
const tlv = (tag: number, body: Buffer, len: Buffer = derLen(body.length)): Buffer => Buffer.concat([Buffer.from([tag]), len, body]);
/** rsaPublicKeyDer builds SEQUENCE { INTEGER n, INTEGER e } from the integers' content octets as given (no normalising). */
const rsaPublicKeyDer = (n: Buffer, e: Buffer): Buffer => tlv(0x30, Buffer.concat([tlv(0x02, n), tlv(0x02, e)]));

describe('kbm/wrap: the RSAPublicKey form in the addon', () => {
  const { privateKey, wk, pkcs1 } = clientKey(2048);
  const secret = Buffer.from('passphrase of the root disk');
  const nodeCanonical = (der: Buffer): boolean => {
    try {
      return (createPublicKey({ key: der, format: 'der', type: 'pkcs1' }).export({ format: 'der', type: 'pkcs1' }) as Buffer).equals(der);
    } catch {
      return false;
    }
  };

  it('agrees with Node (decode, re-encode, compare) on which bytes are a canonical RSAPublicKey', () => {
    const n = Buffer.concat([Buffer.from([0]), wk.n]); // content octets: a leading zero keeps it positive
    const e = Buffer.from([1, 0, 1]);
    const body = Buffer.concat([tlv(0x02, n), tlv(0x02, e)]);
    const cases: Array<[string, Buffer]> = [
      ['as OpenSSL exports it', pkcs1],
      ['rebuilt from its integers', rsaPublicKeyDer(n, e)],
      ['outer length in long form although short would do (BER)', tlv(0x30, body, Buffer.from([0x83, 0, (body.length >> 8) & 0xff, body.length & 0xff]))],
      ['exponent with a needless leading zero', rsaPublicKeyDer(n, Buffer.from([0, 1, 0, 1]))],
      ['modulus with two leading zeros', rsaPublicKeyDer(Buffer.concat([Buffer.from([0]), n]), e)],
      ['trailing byte', Buffer.concat([pkcs1, Buffer.from([0])])],
      ['truncated', pkcs1.subarray(0, pkcs1.length - 1)],
      ['three integers', tlv(0x30, Buffer.concat([body, tlv(0x02, e)]))],
      ['one integer', tlv(0x30, tlv(0x02, n))],
      ['SET instead of SEQUENCE', tlv(0x31, body)],
      ['private key', privateKey.export({ format: 'der', type: 'pkcs1' }) as Buffer],
      ['SPKI', wk.keyObject.export({ format: 'der', type: 'spki' }) as Buffer],
      ['empty', Buffer.alloc(0)],
      ['one byte', Buffer.from([0x30])],
    ];
    for (const [what, der] of cases) {
      assert.equal(rsaPkcs1Bits(der) > 0, nodeCanonical(der), what);
      if (nodeCanonical(der)) assert.equal(rsaPkcs1Bits(der), 2048, what);
    }
    // Stricter than Node on purpose: a negative modulus or exponent is no RSA key at all.
    assert.equal(rsaPkcs1Bits(rsaPublicKeyDer(wk.n, e)), 0, 'negative modulus (high bit set, no leading zero)');
    assert.equal(rsaPkcs1Bits(rsaPublicKeyDer(n, Buffer.from([0x81]))), 0, 'negative exponent');
    refused(rsaPublicKeyDer(wk.n, e), /not a DER/);
  });

  it('wrapAesGcm and oaepWrap open with the private key for 2048..4096 bits and exponents 3, 17, 65537', () => {
    for (const [bits, exp] of [[2048, 65537], [2049, 17], [3072, 3], [4096, 65537]] as const) {
      const pair = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: exp });
      const key = parseWrappingKey(pair.publicKey.export({ format: 'der', type: 'pkcs1' }));
      for (const s of [Buffer.alloc(0), Buffer.from([7]), secret, randomBytes(4096)]) {
        const r = wrapAesGcm(s, key);
        assert.equal(Buffer.from(r.wrapped_key, 'base64').length, Math.ceil(bits / 8), `${bits}`);
        const d = agentDecrypt(r, pair.privateKey);
        assert.ok(d.secret.equals(s), `${bits}/${exp}: ${s.length} bytes`);
      }
      const material = randomBytes(32);
      const w = oaepWrap(material, key);
      assert.ok(privateDecrypt({ key: pair.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, w).equals(material));
      assert.throws(() => privateDecrypt({ key: pair.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, w));
    }
  });

  it('fresh AES key, IV and OAEP seed on every call', () => {
    const a = wrapAesGcm(secret, wk);
    const b = wrapAesGcm(secret, wk);
    assert.notEqual(a.iv, b.iv);
    assert.notEqual(a.blob, b.blob);
    assert.notEqual(a.wrapped_key, b.wrapped_key);
    const ka = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from(a.wrapped_key, 'base64'));
    const kb = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from(b.wrapped_key, 'base64'));
    assert.equal(ka.length, 32);
    assert.ok(!ka.equals(kb));
  });

  it('the SPKI and PEM forms still wrap through node:crypto, to the same result for the agent', () => {
    for (const bytes of [wk.keyObject.export({ format: 'der', type: 'spki' }) as Buffer, Buffer.from(wk.keyObject.export({ format: 'pem', type: 'spki' }) as string)]) {
      const key = parseWrappingKey(bytes);
      assert.ok(agentDecrypt(wrapAesGcm(secret, key), privateKey).secret.equals(secret));
      assert.ok(privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, oaepWrap(secret, key)).equals(secret));
    }
  });

  it('the addon checks the key it wraps with again: size, exponent, canonical form', () => {
    const refusedByAddon = (der: Buffer, re: RegExp): void => {
      for (const call of [() => wrapAesGcmPkcs1(der, secret), () => oaepWrapPkcs1(der, secret)]) {
        assert.throws(call, (e: unknown) => (e as { code?: string }).code === 'KBM_ERR_WRAPPING_KEY' && re.test((e as Error).message));
      }
    };
    refusedByAddon(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'der', type: 'pkcs1' }) as Buffer, /1024 bits/);
    const n = Buffer.concat([Buffer.from([0]), wk.n]);
    refusedByAddon(rsaPublicKeyDer(n, Buffer.from([1, 0, 0])), /exponent/);
    refusedByAddon(rsaPublicKeyDer(n, Buffer.from([1])), /exponent/);
    refusedByAddon(rsaPublicKeyDer(n, n), /exponent/);
    refusedByAddon(Buffer.concat([pkcs1, Buffer.from([0])]), /canonical/);
    refusedByAddon(privateKey.export({ format: 'der', type: 'pkcs1' }) as Buffer, /canonical/);
    // Found by fuzz_wrapkey: an even modulus made OpenSSL's Montgomery set-up fail (was an internal error).
    const even = Buffer.from(n);
    even[even.length - 1]! &= 0xfe;
    refusedByAddon(rsaPublicKeyDer(even, Buffer.from([1, 0, 1])), /modulus is even/);
    refused(rsaPublicKeyDer(even, Buffer.from([1, 0, 1])), /modulus is even/);
    refused(rsaPublicKeyDer(n, n), /exponent is not below the modulus/);
    assert.throws(() => wrapAesGcmPkcs1(pkcs1, 'text' as never), (e: unknown) => (e as { code?: string }).code === 'SNP_ERR_ARGUMENT');
  });

  it('above 3072 modulus bits the exponent may have at most 64 bits (the bound OpenSSL keeps), refused at parse and in the addon', () => {
    // A 4096-bit odd integer stands in for a modulus: the bounds are checked before any arithmetic.
    const n = Buffer.concat([Buffer.from([0]), Buffer.alloc(512, 0xc3)]);
    const e64 = Buffer.from([0, 0x80, 0, 0, 0, 0, 0, 0, 1]); // DER INTEGER content: the 0 keeps it positive
    const e65 = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 1]);
    const ok = parseWrappingKey(rsaPublicKeyDer(n, e64));
    assert.equal(ok.bits, 4096);
    assert.equal(Buffer.from(wrapAesGcm(secret, ok).wrapped_key, 'base64').length, 512);
    refused(rsaPublicKeyDer(n, e65), /exponent of 65 bits with a 4096-bit modulus/);
    assert.throws(() => wrapAesGcmPkcs1(rsaPublicKeyDer(n, e65), secret), (e: unknown) => (e as { code?: string }).code === 'KBM_ERR_WRAPPING_KEY' && /65 bits/.test((e as Error).message));
    // Up to 3072 bits any odd exponent below the modulus is OpenSSL's to use (and ours).
    const n3072 = Buffer.concat([Buffer.from([0]), Buffer.alloc(384, 0xc3)]);
    assert.equal(parseWrappingKey(rsaPublicKeyDer(n3072, e65)).bits, 3072);
    assert.equal(Buffer.from(wrapAesGcm(secret, parseWrappingKey(rsaPublicKeyDer(n3072, e65))).wrapped_key, 'base64').length, 384);
  });

  it('material too long for OAEP under the key is a KbmError, not a crash', () => {
    // 2048-bit OAEP-SHA256 carries at most 256 - 2*32 - 2 = 190 bytes.
    assert.equal(privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, oaepWrap(Buffer.alloc(190, 1), wk)).length, 190);
    assert.throws(() => oaepWrap(Buffer.alloc(191, 1), wk), (e: unknown) => isKbmError(e) && e.kind === 'bad_wrapping_key' && /too long/.test(e.message));
  });
});
