/**
 * The store contract against real redis-server topologies: plain, ACL user, TLS (mutual),
 * Sentinel and Cluster. Each topology starts once for its describe block.
 */
import assert from 'node:assert/strict';
import Redis, { Cluster } from 'ioredis';
import { ACL_PASSWORD, ACL_USER, ADMIN_PASSWORD, SENTINEL_NAME, startAcl, startCluster, startPlain, startSentinel, startTls } from '../support/redis';
import type { RedisSettings } from '../../src/store';
import { storeContract, type ContractHarness } from './contract';
import { openRedisStore, snapshotCluster, snapshotKeys } from './redis-helpers';

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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
});
