/**
 * The key broker contract suite (modelled on undici's cacheStoreTests): every KBM plugin runs it.
 *
 *   kbmContract('tas_kbm_mock (GCM)', async () => ({ broker, secrets: { 'my-key': Buffer.from('s') }, form: 'aes-gcm' }));
 *
 * The factory is called once (in a before hook); teardown runs in after. Replies are opened with the
 * independent agent-way decryptor (./agent-decrypt.ts). The `close` checks run last.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { isKbmError, toTasError, type KeyBroker } from '../../src/kbm/types';
import { parseWrappingKey, type WrappingKey } from '../../src/kbm/wrap';
import { isTasError } from '../../src/errors';
import { agentDecrypt } from './agent-decrypt';

/** ContractSubject is what a factory returns. */
export interface ContractSubject {
  broker: KeyBroker;
  /** Every key id the backend holds, with its secret bytes (at least one). */
  secrets: Record<string, Buffer>;
  /** The form the broker declares it answers in. */
  form: 'aes-gcm' | 'aes-kwp';
  /**
   * OAEP hash of wrapped_key. Always sha256 on the wire; sha1 only for SoftHSM 2.6.1 in-HSM tests
   * (its C_WrapKey does OAEP with SHA-1 only), which is then NOT the agent's format.
   */
  oaepHash?: 'sha256' | 'sha1';
  /** A key id the backend certainly does not hold (default 'no-such-key-…'). */
  unknownKeyId?: string;
  teardown?: () => Promise<void>;
}

/** expectKind asserts that p rejects with a KbmError of kind, mapped to the catalogue status. */
export async function expectKind(p: Promise<unknown>, kind: string, status: number): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isKbmError(e) || isTasError(e), `not a KbmError/TasError: ${String(e)}`);
    if (isKbmError(e)) assert.equal(e.kind, kind);
    assert.equal(toTasError(e).status, status);
    return true;
  });
}

/** clientKey makes an RSA key pair and the WrappingKey parsed from the PKCS#1 DER the agent sends. */
export function clientKey(bits = 2048): { privateKey: KeyObject; wk: WrappingKey; pkcs1: Buffer } {
  // RSA key generation is slow: one key pair per size and process.
  let k = keyCache.get(bits);
  if (!k) {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
    const pkcs1 = publicKey.export({ format: 'der', type: 'pkcs1' });
    k = { privateKey, wk: parseWrappingKey(pkcs1), pkcs1 };
    keyCache.set(bits, k);
  }
  return k;
}
const keyCache = new Map<number, { privateKey: KeyObject; wk: WrappingKey; pkcs1: Buffer }>();

/** kbmContract registers the contract tests for one broker. */
export function kbmContract(name: string, factory: () => Promise<ContractSubject>): void {
  describe(`KBM contract: ${name}`, function () {
    this.timeout(60_000);
    let s: ContractSubject;
    let client: ReturnType<typeof clientKey>;
    let keyIds: string[];
    const hash = (): 'sha256' | 'sha1' => s.oaepHash ?? 'sha256';

    before(async () => {
      client = clientKey(2048);
      s = await factory();
      keyIds = Object.keys(s.secrets);
      assert.ok(keyIds.length > 0, 'the factory must name at least one secret');
    });
    after(async () => {
      await s?.broker.close();
      await s?.teardown?.();
    });

    it('releases every known key; the reply opens the agent way to the stored secret, in the declared form', async () => {
      for (const id of keyIds) {
        const reply = await s.broker.getSecret(id, client.wk);
        const out = agentDecrypt(reply, client.privateKey, hash());
        assert.equal(out.form, s.form, `form of ${id}`);
        assert.ok(out.secret.equals(s.secrets[id]!), `secret of ${id} differs`);
        if (s.form === 'aes-gcm') {
          assert.equal(reply.algorithm, undefined);
        } else {
          assert.equal(reply.algorithm, Buffer.from('AES-KWP').toString('base64'));
          assert.equal(reply.iv, '');
          assert.equal(reply.tag, '');
        }
      }
    });

    it('wraps for a key of another size (3072 bits)', async () => {
      for (const bits of [3072]) {
        const c = clientKey(bits);
        const reply = await s.broker.getSecret(keyIds[0]!, c.wk);
        assert.equal(Buffer.from(reply.wrapped_key, 'base64').length, bits / 8);
        assert.ok(agentDecrypt(reply, c.privateKey, hash()).secret.equals(s.secrets[keyIds[0]!]!));
      }
    });

    it('refuses an unknown key id as not_found (404), never a made-up secret', async () => {
      await expectKind(s.broker.getSecret(s.unknownKeyId ?? 'no-such-key-7f3a', client.wk), 'not_found', 404);
      // A near miss of a real id is just as unknown.
      await expectKind(s.broker.getSecret(`${keyIds[0]!}x`, client.wk), 'not_found', 404);
    });

    it('refuses key ids no backend can hold (empty, control characters, over-long) as not_found', async () => {
      for (const id of ['', 'a\u0000b', 'x'.repeat(300)]) await expectKind(s.broker.getSecret(id, client.wk), 'not_found', 404);
    });

    it('refuses short, non-RSA and forged wrapping keys with 400 (parse time and broker time)', async () => {
      const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
      for (const bytes of [
        small.export({ format: 'der', type: 'pkcs1' }),
        ec.export({ format: 'der', type: 'spki' }),
        Buffer.from('not a key'),
        Buffer.alloc(0),
      ]) {
        assert.throws(() => parseWrappingKey(bytes), (e: unknown) => isTasError(e) && e.code === 'KBM_WRAPPING_KEY_INVALID' && e.status === 400);
      }
      // A broker must re-check what it is handed: a 1024-bit key dressed up as 2048 bits.
      const jwk = small.export({ format: 'jwk' });
      const forged = { keyObject: small, n: Buffer.from(jwk.n!, 'base64url'), e: Buffer.from(jwk.e!, 'base64url'), bits: 2048, fingerprint: '00' } as WrappingKey;
      await expectKind(s.broker.getSecret(keyIds[0]!, forged), 'bad_wrapping_key', 400);
      const ecForged = { ...client.wk, keyObject: ec } as WrappingKey;
      await expectKind(s.broker.getSecret(keyIds[0]!, ecForged), 'bad_wrapping_key', 400);
      const mismatched = { ...client.wk, n: Buffer.alloc(256, 0xff) } as WrappingKey;
      await expectKind(s.broker.getSecret(keyIds[0]!, mismatched), 'bad_wrapping_key', 400);
    });

    it('reports healthy', async () => {
      const h = await s.broker.health();
      assert.equal(h.ok, true, h.detail);
      assert.notEqual(h.authFailed, true);
    });

    it('serves 50 concurrent releases, all correct', async () => {
      const ids = Array.from({ length: 50 }, (_, i) => keyIds[i % keyIds.length]!);
      const replies = await Promise.all(ids.map((id) => s.broker.getSecret(id, client.wk)));
      replies.forEach((r, i) => assert.ok(agentDecrypt(r, client.privateKey, hash()).secret.equals(s.secrets[ids[i]!]!)));
      assert.equal(new Set(replies.map((r) => r.wrapped_key)).size, 50);
    });

    it('uses a fresh AES key (and IV) for every reply', async () => {
      const a = await s.broker.getSecret(keyIds[0]!, client.wk);
      const b = await s.broker.getSecret(keyIds[0]!, client.wk);
      const da = agentDecrypt(a, client.privateKey, hash());
      const db = agentDecrypt(b, client.privateKey, hash());
      assert.ok(!da.aesKey.equals(db.aesKey), 'AES key reused');
      assert.notEqual(a.blob, b.blob);
      assert.notEqual(a.wrapped_key, b.wrapped_key);
      if (s.form === 'aes-gcm') assert.notEqual(a.iv, b.iv);
    });

    it('close is idempotent and later releases fail as a KbmError (never a secret)', async () => {
      await s.broker.close();
      await s.broker.close();
      await assert.rejects(s.broker.getSecret(keyIds[0]!, client.wk), (e: unknown) => isKbmError(e) && e.kind === 'unavailable');
    });
  });
}
