/**
 * The documented embedded → Redis migration (docs/policy.md): `tas policy export` from a host's
 * embedded store, `tas policy import` into Redis (each document re-verified), and the result
 * exported again from Redis equals the original, signatures kept — and a daemon on that Redis
 * uses the migrated policy.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { PolicyService, repoFromStore, PolicyTrust, loadTrust, signPolicy } from '../../src/policy';
import { openStore } from '../../src/store';
import { tasInProcess as tas } from '../support/cli-inproc';
import { CLIENT_KEY, MGMT_KEY, testConfig } from '../support/daemon';
import { startPlain, type RedisNode } from '../support/redis';
import { doc } from './helpers';

describe('policy: embedded → Redis migration with export/import', function () {
  this.timeout(60_000);
  let dir: string;
  let redis: RedisNode & { url: string };
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tas-migrate-'));
    redis = await startPlain();
  });
  after(async () => {
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips every policy with its signature into Redis, and Redis serves it for use', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
    const trust = join(dir, 'trust.pem');
    writeFileSync(trust, publicKey.export({ type: 'spki', format: 'pem' }));
    const src = join(dir, 'src');
    mkdirSync(src);
    for (const id of ['alpha', 'beta', 'gamma']) writeFileSync(join(src, `${id}.json`), JSON.stringify(signPolicy(doc(id), privateKey)));
    const base = { TAS_API_KEY: CLIENT_KEY, TAS_MANAGEMENT_API_KEY: MGMT_KEY, TAS_POLICY_TRUST: trust };
    const embedded = { ...base, TAS_STATE_DIR: join(dir, 'state') };
    const onRedis = { ...base, TAS_STORE: 'redis', TAS_REDIS_URL: redis.url };

    assert.match((await tas(['policy', 'import', src], embedded)).out, /3 stored, 0 already present, 0 refused/);
    const e = await tas(['policy', 'export', '--out', join(dir, 'from-embedded.json')], embedded);
    assert.equal(e.code, 0, e.err);
    const i = await tas(['policy', 'import', join(dir, 'from-embedded.json')], onRedis);
    assert.equal(i.code, 0, i.out + i.err);
    assert.match(i.out, /3 stored, 0 already present, 0 refused/);
    const back = await tas(['policy', 'export', '--out', join(dir, 'from-redis.json')], onRedis);
    assert.equal(back.code, 0, back.err);
    const a = JSON.parse(readFileSync(join(dir, 'from-embedded.json'), 'utf8')) as Array<{ signature: unknown }>;
    const b = JSON.parse(readFileSync(join(dir, 'from-redis.json'), 'utf8')) as Array<{ signature: unknown }>;
    assert.equal(b.length, 3);
    assert.deepEqual(b, a, 'identical documents, signatures kept');
    assert.ok(b.every((d) => d.signature !== undefined));

    // A daemon's policy service on that Redis uses them (signature re-checked at use).
    const store = openStore(testConfig(onRedis), pino({ level: 'silent' }));
    try {
      const t = new PolicyTrust();
      t.replace(loadTrust(trust).keys);
      const svc = new PolicyService({ repo: repoFromStore(store), trust: t, settings: () => ({ enforceSigned: true, allowUnsignedKeyBinding: false }) });
      const used = await svc.forUse('beta');
      assert.equal(used.keyBindingSigned, true);
      assert.equal(used.signed, true);
    } finally {
      await store.close();
    }
  });
});
