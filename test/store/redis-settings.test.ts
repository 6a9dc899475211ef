/**
 * One test per store setting of PROTOCOL.md §5, each showing its effect on a real redis-server:
 * the configuration is loaded as the daemon loads it and the store opened with openStore().
 */
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import pino from 'pino';
import { ConfigError } from '../../src/config';
import { TasError } from '../../src/errors';
import { openStore, type Store } from '../../src/store';
import { testConfig } from '../support/daemon';
import {
  ACL_PASSWORD, ACL_USER, ADMIN_PASSWORD, SENTINEL_NAME, startAcl, startCluster, startNode, startPlain, startReplicated, startSentinel, startTls,
  type ClusterSet, type RedisNode, type Replicated, type SentinelSet,
} from '../support/redis';
import { snapshotKeys } from './redis-helpers';

const silent = pino({ level: 'silent' });
const NONCE = 'c'.repeat(64);

async function failure(p: Promise<unknown>): Promise<TasError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof TasError) return e;
    throw e;
  }
  assert.fail('expected a TasError');
}

function configProblems(env: Record<string, string>): string {
  try {
    testConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.join('\n');
    throw e;
  }
  return '';
}

describe('store settings: configuration', () => {
  it('refuses every TAS_REDIS_* setting without TAS_STORE=redis, naming it', () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ TAS_REDIS_URL: 'redis://127.0.0.1:6379' }, 'redis.url'],
      [{ TAS_REDIS_HOST: 'db' }, 'redis.host'],
      [{ TAS_REDIS_PORT: '6380' }, 'redis.port'],
      [{ TAS_REDIS_USERNAME: 'tas' }, 'redis.username'],
      [{ TAS_REDIS_PASSWORD: 'pw' }, 'redis.password'],
      [{ TAS_REDIS_TLS_CA_FILE: '/etc/ca.pem' }, 'redis.tls.ca_file'],
      [{ TAS_REDIS_TLS_CERT_FILE: '/c', TAS_REDIS_TLS_KEY_FILE: '/k' }, 'redis.tls.cert_file'],
      [{ TAS_REDIS_SENTINELS: 'h:1', TAS_REDIS_SENTINEL_NAME: 'm' }, 'redis.sentinels'],
      [{ TAS_REDIS_CLUSTER_NODES: 'h:1' }, 'redis.cluster_nodes'],
      [{ TAS_REDIS_KEY_PREFIX: 'x:' }, 'redis.key_prefix'],
      [{ TAS_REDIS_WAIT_REPLICAS: '1' }, 'redis.wait_replicas'],
    ];
    for (const [env, path] of cases) {
      const p = configProblems(env);
      assert.match(p, /TAS_STORE \(store\.backend\).*set TAS_STORE=redis/, JSON.stringify(env));
      assert.ok(p.includes(path), `${path} named in: ${p}`);
      assert.equal(configProblems({ ...env, TAS_STORE: 'redis' }).includes('TAS_STORE'), false);
    }
    assert.equal(configProblems({ TAS_STORE: 'embedded' }), '');
  });

  it('applies the §5 defaults only with TAS_STORE=redis', () => {
    const r = testConfig({ TAS_STORE: 'redis' });
    assert.equal(r.get('redis.url'), 'redis://127.0.0.1:6379');
    assert.equal(r.get('redis.key_prefix'), 'tas:');
    assert.equal(r.get('redis.wait_replicas'), 0);
    const e = testConfig({});
    assert.equal(e.get('store.backend'), 'embedded');
    assert.equal(e.get('redis.url'), undefined);
  });

  it('checks shapes and combinations, and masks the password', () => {
    assert.match(configProblems({ TAS_STORE: 'redis', TAS_REDIS_KEY_PREFIX: 'a{b}:' }), /no braces/);
    assert.match(configProblems({ TAS_STORE: 'redis', TAS_REDIS_SENTINELS: '127.0.0.1:26379' }), /needs TAS_REDIS_SENTINEL_NAME/);
    assert.match(configProblems({ TAS_STORE: 'redis', TAS_REDIS_SENTINEL_NAME: 'm' }), /needs TAS_REDIS_SENTINELS/);
    assert.match(configProblems({ TAS_STORE: 'redis', TAS_REDIS_CLUSTER_NODES: 'nohostport' }), /not host:port/);
    assert.match(configProblems({ TAS_STORE: 'redis', TAS_REDIS_CLUSTER_NODES: '127.0.0.1:7000', TAS_REDIS_WAIT_REPLICAS: '1' }), /not supported with TAS_REDIS_CLUSTER_NODES/);
    assert.match(configProblems({ TAS_STORE: 'redis', TAS_REDIS_TLS_CERT_FILE: '/c' }), /needs TAS_REDIS_TLS_KEY_FILE/);
    assert.match(configProblems({ TAS_STORE: 'redis', TAS_REDIS_URL: 'http://x' }), /redis:\/\/ or rediss:\/\//);
    assert.match(configProblems({ TAS_STORE: 'mongodb' }), /must be one of embedded, redis/);
    const c = testConfig({ TAS_STORE: 'redis', TAS_REDIS_PASSWORD: 'hunter2-secret' });
    assert.equal(c.get('redis.password'), 'hunter2-secret');
    assert.ok(!JSON.stringify(c.effective()).includes('hunter2'));
  });

  it('an unreadable TLS file stops openStore with a message naming the setting', () => {
    const cfg = testConfig({ TAS_STORE: 'redis', TAS_REDIS_TLS_CA_FILE: '/nonexistent/ca.pem' });
    assert.throws(() => openStore(cfg, silent), /TAS_REDIS_TLS_CA_FILE: cannot read \/nonexistent\/ca.pem/);
  });
});

describe('store settings: effects on real Redis', function () {
  this.timeout(60_000);
  let plain: RedisNode & { url: string };
  let acl: RedisNode & { url: string };
  let tls: Awaited<ReturnType<typeof startTls>>;
  let rep: Replicated;
  let sentinel: SentinelSet;
  let cluster: ClusterSet;
  let opened: Store[] = [];
  const open = (env: Record<string, string>): Store => {
    const s = openStore(testConfig({ TAS_STORE: 'redis', ...env }), silent);
    opened.push(s);
    return s;
  };
  before(async () => {
    [plain, acl, tls, rep, sentinel, cluster] = await Promise.all([startPlain(), startAcl(), startTls(), startReplicated(), startSentinel(), startCluster()]);
  });
  afterEach(async () => {
    for (const s of opened) await s.close();
    opened = [];
  });
  after(async () => {
    for (const x of [plain, acl, tls, rep, sentinel, cluster]) await x?.stop();
  });

  it('TAS_STORE=redis opens the Redis backend (embedded is the default)', async () => {
    const s = open({ TAS_REDIS_URL: plain.url });
    assert.equal(s.info.backend, 'redis');
    assert.equal(await s.putPolicy('backend', '{}'), 'created');
    const admin = new Redis(plain.port, '127.0.0.1');
    try {
      assert.equal(await admin.hget('tas:{policy}:docs', 'backend'), '{}', 'the policy is in Redis');
    } finally {
      admin.disconnect();
    }
    await s.deletePolicy('backend');
  });

  it('TAS_REDIS_CLUSTER_NODES: every operation works through the cluster from one seed node', async () => {
    const s = open({ TAS_REDIS_CLUSTER_NODES: `127.0.0.1:${cluster.nodes[1]!.port}` });
    assert.match(s.info.persistence, /^cluster /);
    assert.equal(await s.putPolicy('c', '{}'), 'created');
    assert.equal(await s.issue('b'.repeat(64), 60_000, 10), 'issued');
    assert.equal(await s.claim('b'.repeat(64), 'o', 1000), 'claimed');
    assert.equal(await s.consume('b'.repeat(64), 'o'), true);
    assert.equal((await s.hit('c', 60_000)).count, 1);
    await s.putBlob('vcek/c', Buffer.from('v'));
    assert.equal((await s.getBlob('vcek/c'))?.toString(), 'v');
    // The hash tags put the multi-key scripts' keys into one slot each, on whichever node owns it.
    const owners = new Set<number>();
    for (const n of cluster.nodes) {
      const c = new Redis(n.port, '127.0.0.1');
      try {
        if (Number(await c.call('CLUSTER', 'COUNTKEYSINSLOT', String(await c.call('CLUSTER', 'KEYSLOT', 'tas:{policy}:docs')))) > 0) owners.add(n.port);
      } finally {
        c.disconnect();
      }
    }
    assert.equal(owners.size, 1, 'one node holds the policy keys (docs and generation share a slot)');
  });

  it('TAS_REDIS_URL / TAS_REDIS_HOST / TAS_REDIS_PORT choose the server', async () => {
    const s = open({ TAS_REDIS_URL: plain.url });
    assert.equal(await s.putPolicy('url', '{}'), 'created');
    const byParts = open({ TAS_REDIS_URL: 'redis://127.0.0.1:1', TAS_REDIS_HOST: '127.0.0.1', TAS_REDIS_PORT: String(plain.port) });
    assert.equal(await byParts.getPolicy('url'), '{}', 'host/port replace the URL\'s');
    assert.match(s.info.persistence, new RegExp(`redis://127.0.0.1:${plain.port}`));
    await s.deletePolicy('url');
  });

  it('an ACL-only Redis refuses without TAS_REDIS_USERNAME/PASSWORD (503), accepts with them', async () => {
    const anon = open({ TAS_REDIS_URL: acl.url });
    const e = await failure(anon.issue(NONCE, 60_000, 10));
    assert.equal(e.code, 'STORE_UNAVAILABLE');
    assert.equal(e.status, 503);
    assert.match((await anon.health()) ?? '', /unreachable|NOAUTH|auth/i);
    const wrong = open({ TAS_REDIS_URL: acl.url, TAS_REDIS_USERNAME: ACL_USER, TAS_REDIS_PASSWORD: 'wrong-password' });
    assert.equal((await failure(wrong.putPolicy('p', '{}'))).code, 'STORE_UNAVAILABLE');
    const ok = open({ TAS_REDIS_URL: acl.url, TAS_REDIS_USERNAME: ACL_USER, TAS_REDIS_PASSWORD: ACL_PASSWORD });
    assert.equal(await ok.health(), undefined);
    assert.equal(await ok.issue(NONCE, 60_000, 10), 'issued');
    // A user without TIME (the scripts' clock) is named on /readyz, not discovered by requests.
    const admin = new Redis({ port: acl.port, host: '127.0.0.1', username: 'admin', password: ADMIN_PASSWORD });
    try {
      await admin.call('ACL', 'SETUSER', 'notime', 'on', '>notime-password', '~tas:*', '-@all', '+@read', '+@write', '+@scripting', '+@connection', '-@dangerous', '+info');
    } finally {
      admin.disconnect();
    }
    const notime = open({ TAS_REDIS_URL: acl.url, TAS_REDIS_USERNAME: 'notime', TAS_REDIS_PASSWORD: 'notime-password' });
    assert.match((await notime.health()) ?? '', /refused: .*can't run this command/);
    assert.equal((await failure(notime.issue(NONCE, 60_000, 10))).code, 'STORE_UNAVAILABLE');
    // The ACL allows ~tas:* only: a prefix outside it is refused by Redis, and tas says 503.
    const outside = open({ TAS_REDIS_URL: acl.url, TAS_REDIS_USERNAME: ACL_USER, TAS_REDIS_PASSWORD: ACL_PASSWORD, TAS_REDIS_KEY_PREFIX: 'other:' });
    const np = await failure(outside.putPolicy('p', '{}'));
    assert.equal(np.code, 'STORE_UNAVAILABLE');
    assert.match(np.detail, /NOPERM/);
  });

  it('TAS_REDIS_KEY_PREFIX changes every key name and separates fleets', async () => {
    const a = open({ TAS_REDIS_URL: plain.url, TAS_REDIS_KEY_PREFIX: 'fleetA:' });
    const b = open({ TAS_REDIS_URL: plain.url, TAS_REDIS_KEY_PREFIX: 'fleetB:' });
    await a.putPolicy('p', '{"fleet":"A"}');
    await a.issue(NONCE, 60_000, 10);
    await a.hit('client', 60_000);
    await a.putBlob('vcek/x', Buffer.from('c'));
    const admin = new Redis(plain.port, '127.0.0.1');
    try {
      const keys = (await snapshotKeys(admin)).map((l) => l.split(' ')[0]!);
      const mine = keys.filter((k) => k.startsWith('fleetA:'));
      assert.ok(mine.includes('fleetA:{policy}:docs'));
      assert.ok(mine.includes('fleetA:{policy}:gen'));
      assert.ok(mine.includes(`fleetA:{nonce}:${NONCE}`));
      assert.ok(mine.includes('fleetA:{nonce}:outstanding'));
      assert.ok(mine.includes('fleetA:{blob}:vcek/x'));
      assert.ok(mine.some((k) => /^fleetA:\{nonce\}:rl:[0-9a-f]{32}$/.test(k)));
      assert.equal(keys.filter((k) => k.startsWith('fleetB:')).length, 0);
    } finally {
      admin.disconnect();
    }
    assert.equal(await b.getPolicy('p'), undefined);
    assert.equal(await b.claim(NONCE, 'o', 1000), 'invalid');
    assert.equal(await a.claim(NONCE, 'o', 1000), 'claimed');
  });

  it('TAS_REDIS_WAIT_REPLICAS=1: 503 without a replica, confirmed writes with one', async () => {
    const alone = open({ TAS_REDIS_URL: plain.url, TAS_REDIS_WAIT_REPLICAS: '1' });
    const e = await failure(alone.putPolicy('w', '{}'));
    assert.equal(e.code, 'STORE_UNAVAILABLE');
    assert.match(e.detail, /0 of 1 replicas/);
    assert.equal((await failure(alone.issue('d'.repeat(64), 60_000, 10))).code, 'STORE_UNAVAILABLE');
    // An unconfirmed claim is handed back at once: the retry can claim (and is refused the same way).
    const plainStore = open({ TAS_REDIS_URL: plain.url });
    assert.equal(await plainStore.issue('9'.repeat(64), 60_000, 10), 'issued');
    assert.equal((await failure(alone.claim('9'.repeat(64), 'first', 60_000))).code, 'STORE_UNAVAILABLE');
    assert.equal(await plainStore.claim('9'.repeat(64), 'retry', 60_000), 'claimed', 'not held by the unconfirmed claim');
    const replicated = open({ TAS_REDIS_URL: rep.url, TAS_REDIS_WAIT_REPLICAS: '1' });
    assert.equal(await replicated.putPolicy('w', '{"confirmed":true}'), 'created');
    assert.equal(await replicated.issue('d'.repeat(64), 60_000, 10), 'issued');
    assert.equal(await replicated.claim('d'.repeat(64), 'o', 10_000), 'claimed');
    assert.equal(await replicated.consume('d'.repeat(64), 'o'), true);
    // The replica holds the confirmed write as soon as the call returned.
    const replica = new Redis(rep.replica.port, '127.0.0.1');
    try {
      assert.equal(await replica.hget('tas:{policy}:docs', 'w'), '{"confirmed":true}');
    } finally {
      replica.disconnect();
    }
  });

  it('TAS_REDIS_TLS_*: the right CA and client certificate connect; a wrong CA or none is refused', async () => {
    const ok = open({ TAS_REDIS_URL: tls.url, TAS_REDIS_TLS_CA_FILE: tls.pki.ca, TAS_REDIS_TLS_CERT_FILE: tls.pki.clientCert, TAS_REDIS_TLS_KEY_FILE: tls.pki.clientKey });
    assert.equal(await ok.health(), undefined);
    assert.equal(await ok.putPolicy('t', '{}'), 'created');
    const wrongCa = open({ TAS_REDIS_URL: tls.url, TAS_REDIS_TLS_CA_FILE: tls.pki.wrongCa, TAS_REDIS_TLS_CERT_FILE: tls.pki.clientCert, TAS_REDIS_TLS_KEY_FILE: tls.pki.clientKey });
    assert.equal((await failure(wrongCa.getPolicy('t'))).code, 'STORE_UNAVAILABLE');
    assert.match((await wrongCa.health()) ?? '', /certificate|unreachable/i);
    const noClientCert = open({ TAS_REDIS_URL: tls.url, TAS_REDIS_TLS_CA_FILE: tls.pki.ca });
    assert.equal((await failure(noClientCert.getPolicy('t'))).code, 'STORE_UNAVAILABLE');
    const plainText = open({ TAS_REDIS_URL: `redis://127.0.0.1:${tls.port}` });
    assert.equal((await failure(plainText.getPolicy('t'))).code, 'STORE_UNAVAILABLE');
  });

  it('TAS_REDIS_SENTINELS + TAS_REDIS_SENTINEL_NAME find the master; a wrong name fails', async () => {
    const ok = open({ TAS_REDIS_SENTINELS: sentinel.sentinelList, TAS_REDIS_SENTINEL_NAME: SENTINEL_NAME });
    assert.equal(await ok.putPolicy('s', '{}'), 'created');
    const master = new Redis(sentinel.master.port, '127.0.0.1');
    try {
      assert.equal(await master.hget('tas:{policy}:docs', 's'), '{}', 'written on the master the sentinels name');
    } finally {
      master.disconnect();
    }
    const wrong = open({ TAS_REDIS_SENTINELS: sentinel.sentinelList, TAS_REDIS_SENTINEL_NAME: 'no-such-master' });
    assert.equal((await failure(wrong.getPolicy('s'))).code, 'STORE_UNAVAILABLE');
    assert.notEqual(await wrong.health(), undefined);
  });

  it('a Redis that goes away answers STORE_UNAVAILABLE (no crash) and recovers when it is back', async () => {
    const port = plain.port;
    const s = open({ TAS_REDIS_URL: plain.url });
    assert.equal(await s.issue('e'.repeat(64), 60_000, 10), 'issued');
    await plain.stop();
    for (let i = 0; i < 3; i++) assert.equal((await failure(s.claim('e'.repeat(64), 'o', 1000))).code, 'STORE_UNAVAILABLE');
    assert.match((await s.health()) ?? '', /unreachable/);
    plain = { ...(await startNode((p) => `port ${p}`, { listenPort: port })), url: `redis://127.0.0.1:${port}` };
    let back = false;
    for (let i = 0; i < 100 && !back; i++) {
      back = (await s.health()) === undefined;
      if (!back) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(back, 'reconnected');
    assert.equal(await s.putPolicy('after', '{}'), 'created');
  });
});
