/**
 * The store contract against real redis-server topologies: plain, ACL user, TLS (mutual),
 * Sentinel and Cluster. Each topology starts once for its describe block.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import Redis, { Cluster } from 'ioredis';
import { ACL_PASSWORD, ACL_USER, ADMIN_PASSWORD, SENTINEL_NAME, startAcl, startCluster, startPlain, startSentinel, startTls, until } from '../support/redis';
import type { RedisSettings } from '../../src/store';
import { storeContract, type ContractHarness } from './contract';
import { openRedisStore, snapshotCluster, snapshotKeys } from './redis-helpers';

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** ownWrites counts this process's write(2)-family system calls (/proc/self/io). */
function ownWrites(): number {
  return Number(/^syscw:\s+(\d+)/m.exec(readFileSync('/proc/self/io', 'utf8'))?.[1]);
}

/**
 * coalesced checks that 40 commands started in one event-loop turn leave in a few writes (one per
 * connection and turn; without coalescing each command is its own write(2)).
 */
async function coalesced(s: ReturnType<typeof openRedisStore>, connections: number): Promise<void> {
  await s.hit('coalesce-warm', 60_000); // connected, scripts loaded
  const before = ownWrites();
  const hits = await Promise.all(Array.from({ length: 40 }, (_, i) => s.hit(`coalesce-${i}`, 60_000)));
  const writes = ownWrites() - before;
  assert.equal(hits.length, 40);
  assert.ok(hits.every((h) => h.count >= 1));
  // Without coalescing: 40 or more. The margin is for anything else this process writes meanwhile.
  assert.ok(writes <= 2 * connections + 8, `40 commands in one turn took ${writes} writes`);
}

function redisHarness(settings: () => Partial<RedisSettings> & { url: string }, admin: () => Redis | Cluster): () => ContractHarness {
  return () => ({
    open: async () => openRedisStore(settings()),
    pass: wait,
    sharedNonces: true,
    snapshot: async () => {
      const a = admin();
      return JSON.stringify(a instanceof Cluster ? await snapshotCluster(a) : await snapshotKeys(a));
    },
  });
}

describe('redis store: plain', function () {
  this.timeout(30_000);
  let srv: Awaited<ReturnType<typeof startPlain>>;
  let admin: Redis;
  before(async () => {
    srv = await startPlain();
    admin = new Redis(srv.port, '127.0.0.1');
  });
  after(async () => {
    admin.disconnect();
    await srv.stop();
  });
  storeContract('redis plain', redisHarness(() => ({ url: srv.url }), () => admin));

  it('commands started in one event-loop turn share a write, also after the connection was re-established', async () => {
    const s = openRedisStore({ url: srv.url, keyPrefix: `co${Date.now()}:` });
    try {
      await coalesced(s, 1);
      // The server drops the store's connection: ioredis reconnects on a new socket, coalesced too.
      const list = await admin.client('LIST') as string;
      const ids = [...list.matchAll(/^id=(\d+) .*name=tas /gm)].map((m) => m[1]!);
      assert.ok(ids.length >= 1, list);
      for (const id of ids) await admin.client('KILL', 'ID', id);
      await until(async () => (await s.health()) === undefined, 'reconnected');
      await coalesced(s, 1);
    } finally {
      await s.close();
    }
  });

  it('serves a cached policy with one GET of the generation per read; a change through another instance re-reads', async () => {
    const keyPrefix = `gen${Date.now()}:`;
    const s = openRedisStore({ url: srv.url, keyPrefix });
    const t = openRedisStore({ url: srv.url, keyPrefix });
    const calls = (info: string, cmd: string): number => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
    try {
      assert.equal(await s.putPolicy('p', 'doc-1'), 'created');
      assert.equal(await t.getPolicy('p'), 'doc-1');
      assert.equal((await t.listPolicies()).length, 1);
      await admin.config('RESETSTAT');
      for (let i = 0; i < 5; i++) assert.equal(await t.getPolicy('p'), 'doc-1');
      assert.deepEqual(await t.listPolicies(), [{ id: 'p', doc: 'doc-1' }]);
      const info = await admin.info('commandstats');
      assert.equal(calls(info, 'get'), 6, info);
      assert.equal(calls(info, 'hget') + calls(info, 'hgetall') + calls(info, 'evalsha') + calls(info, 'eval'), 0, 'no document read');
      assert.deepEqual(t.policyReads, { cached: 6, fetched: 2 });
      assert.equal(await s.deletePolicy('p'), true);
      assert.equal(await t.getPolicy('p'), undefined);
      assert.deepEqual(await t.listPolicies(), []);
      assert.equal(await s.putPolicy('p', 'doc-2'), 'created');
      assert.equal(await t.getPolicy('p'), 'doc-2');
      assert.deepEqual(await t.listPolicies(), [{ id: 'p', doc: 'doc-2' }]);
    } finally {
      await s.close();
      await t.close();
    }
  });
});

describe('redis store: ACL user', function () {
  this.timeout(30_000);
  let srv: Awaited<ReturnType<typeof startAcl>>;
  let admin: Redis;
  before(async () => {
    srv = await startAcl();
    admin = new Redis({ port: srv.port, host: '127.0.0.1', username: 'admin', password: ADMIN_PASSWORD });
  });
  after(async () => {
    admin.disconnect();
    await srv.stop();
  });
  storeContract('redis ACL user', redisHarness(() => ({ url: srv.url, username: ACL_USER, password: ACL_PASSWORD }), () => admin));
});

describe('redis store: TLS', function () {
  this.timeout(30_000);
  let srv: Awaited<ReturnType<typeof startTls>>;
  let admin: Redis;
  before(async () => {
    srv = await startTls();
    const { readFileSync } = await import('node:fs');
    admin = new Redis({
      port: srv.port,
      host: '127.0.0.1',
      tls: { ca: readFileSync(srv.pki.ca), cert: readFileSync(srv.pki.clientCert), key: readFileSync(srv.pki.clientKey) },
    });
  });
  after(async () => {
    admin.disconnect();
    await srv.stop();
  });
  storeContract(
    'redis TLS',
    redisHarness(() => ({ url: srv.url, caFile: srv.pki.ca, certFile: srv.pki.clientCert, keyFile: srv.pki.clientKey }), () => admin),
  );
  it('commands started in one event-loop turn share a write over TLS', async () => {
    const s = openRedisStore({ url: srv.url, caFile: srv.pki.ca, certFile: srv.pki.clientCert, keyFile: srv.pki.clientKey, keyPrefix: `co${Date.now()}:` });
    try {
      await coalesced(s, 1);
    } finally {
      await s.close();
    }
  });
});

describe('redis store: Sentinel', function () {
  this.timeout(30_000);
  let set: Awaited<ReturnType<typeof startSentinel>>;
  let admin: Redis;
  before(async () => {
    set = await startSentinel();
    admin = new Redis(set.master.port, '127.0.0.1');
  });
  after(async () => {
    admin.disconnect();
    await set.stop();
  });
  storeContract(
    'redis Sentinel',
    redisHarness(() => ({ url: 'redis://127.0.0.1:1', sentinels: set.sentinelList.split(','), sentinelName: SENTINEL_NAME }), () => admin),
  );
  it('commands started in one event-loop turn share a write to the master Sentinel names', async () => {
    const s = openRedisStore({ url: 'redis://127.0.0.1:1', sentinels: set.sentinelList.split(','), sentinelName: SENTINEL_NAME, keyPrefix: `co${Date.now()}:` });
    try {
      await coalesced(s, 1);
    } finally {
      await s.close();
    }
  });
});

describe('redis store: Cluster', function () {
  this.timeout(30_000);
  let set: Awaited<ReturnType<typeof startCluster>>;
  let admin: Cluster;
  before(async () => {
    set = await startCluster();
    admin = new Cluster(set.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })));
    await new Promise<void>((resolve, reject) => {
      admin.once('ready', () => resolve());
      admin.once('error', reject);
    });
  });
  after(async () => {
    admin.disconnect();
    await set.stop();
  });
  storeContract('redis Cluster', redisHarness(() => ({ url: 'redis://127.0.0.1:1', clusterNodes: set.nodeList.split(',') }), () => admin));
  it('commands started in one event-loop turn share a write per cluster node', async () => {
    const s = openRedisStore({ url: 'redis://127.0.0.1:1', clusterNodes: set.nodeList.split(','), keyPrefix: `co${Date.now()}:` });
    try {
      // 40 keys over the masters: at most a write or two per master connection.
      await coalesced(s, set.nodes.length);
    } finally {
      await s.close();
    }
  });
});
