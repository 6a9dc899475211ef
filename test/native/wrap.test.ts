/**
 * The addon's key wrapping (native/core/wrap.cc) through src/native/wrap.ts. Here, under test/native,
 * so that the ASan+UBSan run of this directory drives it too; the protocol-level tests (what the
 * agent can open, every refusal's message) are in test/kbm/wrap.test.ts.
 */
import assert from 'node:assert/strict';
import { constants, createDecipheriv, generateKeyPairSync, privateDecrypt, randomBytes } from 'node:crypto';
import { oaepWrapPkcs1, rsaPkcs1Bits, wrapAesGcmPkcs1 } from '../../src/native/wrap';

describe('native key wrapping', () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const der = publicKey.export({ format: 'der', type: 'pkcs1' }) as Buffer;

  it('wraps with the RSAPublicKey bytes: the private key opens the AES key, the AES key opens the secret', () => {
    assert.equal(rsaPkcs1Bits(der), 2048);
    for (const len of [0, 1, 32, 4096]) {
      const secret = randomBytes(len);
      const w = wrapAesGcmPkcs1(der, secret);
      assert.equal(w.wrappedKey.length, 256);
      assert.equal(w.blob.length, len);
      assert.equal(w.iv.length, 12);
      assert.equal(w.tag.length, 16);
      const key = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, w.wrappedKey);
      const d = createDecipheriv('aes-256-gcm', key, w.iv);
      d.setAuthTag(w.tag);
      assert.ok(Buffer.concat([d.update(w.blob), d.final()]).equals(secret), `${len} bytes`);
    }
    const m = randomBytes(48);
    assert.ok(privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, oaepWrapPkcs1(der, m)).equals(m));
  });

  it('every prefix and every single-byte change of a key is judged without a crash, and refusals carry the key code', () => {
    // Cheap exhaustive neighbourhood of one genuine key (the fuzz target goes further); under ASan
    // this is where an out-of-bounds read in the DER handling would show.
    const inputs: Buffer[] = [];
    for (let i = 0; i <= der.length; i++) inputs.push(der.subarray(0, i));
    for (let i = 0; i < 24; i++) {
      for (const x of [0x00, 0x01, 0x80, 0xff]) {
        const b = Buffer.from(der);
        b[i] = x;
        inputs.push(b);
      }
    }
    let accepted = 0;
    for (const b of inputs) {
      const bits = rsaPkcs1Bits(b);
      try {
        wrapAesGcmPkcs1(b, Buffer.from('s'));
        assert.ok(bits >= 2048, 'only keys the parse accepted wrap');
        accepted++;
      } catch (e) {
        assert.equal((e as { code?: string }).code, 'KBM_ERR_WRAPPING_KEY', (e as Error).message);
      }
    }
    assert.ok(accepted >= 1, 'the genuine key itself wraps');
    assert.ok(accepted < inputs.length / 2, 'most mangled keys are refused');
  });

  it('refuses non-Buffer arguments and oversized input with SNP_ERR_ARGUMENT', () => {
    for (const call of [() => rsaPkcs1Bits('x' as never), () => wrapAesGcmPkcs1(der, 'x' as never), () => oaepWrapPkcs1(Buffer.alloc(8193), Buffer.alloc(1))]) {
      assert.throws(call, (e: unknown) => (e as { code?: string }).code === 'SNP_ERR_ARGUMENT');
    }
  });
});
