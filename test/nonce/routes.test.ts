/**
 * GET /kb/v0/get_nonce through the real HTTP edge (fastify inject): client key auth, reply shape,
 * audit record with a digest only, 503 over the cap and when the store is down.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientAuth } from '../../src/http';
import { NonceService, nonceDigest, nonceRoutes } from '../../src/nonce';
import { EmbeddedStore, RedisStore, type Store } from '../../src/store';
import { CLIENT_KEY, MGMT_KEY, makeApp } from '../http/helpers';
import { freePort, startPlain } from '../support/redis';

describe('nonce route: GET /kb/v0/get_nonce', () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-nonce-route-'));
    store = new EmbeddedStore({ stateDir: dir, cacheDir: join(dir, 'c') });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const app = async (svc: NonceService) => makeApp({}, { routes: [nonceRoutes(svc, clientAuth)] });

  it('answers {"nonce": <64 hex>} for a client key, audits a digest, never the nonce', async () => {
    const svc = new NonceService(store, { ttlSeconds: 120, maxOutstanding: 10 });
    const t = await app(svc);
    const r = await t.app.inject({ method: 'GET', url: '/kb/v0/get_nonce', headers: { 'x-api-key': CLIENT_KEY } });
    assert.equal(r.statusCode, 200);
    const body = r.json() as { nonce: string };
    assert.deepEqual(Object.keys(body), ['nonce']);
    assert.match(body.nonce, /^[0-9a-f]{64}$/);
    assert.equal(await svc.claim(body.nonce, 'o'), true, 'the nonce was issued in the store');
    const rec = t.audit.records.find((a) => a.event === 'get_nonce');
    assert.ok(rec);
    assert.equal(rec.outcome, 'allow');
    assert.deepEqual(rec.details, { nonce_sha256: nonceDigest(body.nonce) });
    assert.ok(!JSON.stringify(t.audit.records).includes(body.nonce));
    assert.ok(!JSON.stringify(t.logLines).includes(body.nonce), 'not in the log either');
    const metrics = await t.ctx.metrics.metrics();
    assert.match(metrics, /^tas_nonces_outstanding 1$/m, 'a claimed nonce is still outstanding');
    await t.app.close();
  });

  it('refuses a missing key, a wrong key and the management key with 401', async () => {
    const svc = new NonceService(store, { ttlSeconds: 120, maxOutstanding: 10 });
    const t = await app(svc);
    for (const headers of [{}, { 'x-api-key': 'x'.repeat(64) }, { 'x-api-key': MGMT_KEY }, { 'x-management-api-key': MGMT_KEY }]) {
      const r = await t.app.inject({ method: 'GET', url: '/kb/v0/get_nonce', headers });
      assert.equal(r.statusCode, 401, JSON.stringify(headers));
      assert.deepEqual(r.json(), { error: 'Unauthorized' });
    }
    assert.equal(await store.count(), 0, 'no nonce issued');
    await t.app.close();
  });

  it('answers 503 + Retry-After over TAS_NONCE_MAX_OUTSTANDING', async () => {
    const svc = new NonceService(store, { ttlSeconds: 120, maxOutstanding: 2 });
    const t = await app(svc);
    const get = () => t.app.inject({ method: 'GET', url: '/kb/v0/get_nonce', headers: { 'x-api-key': CLIENT_KEY } });
    assert.equal((await get()).statusCode, 200);
    assert.equal((await get()).statusCode, 200);
    const r = await get();
    assert.equal(r.statusCode, 503);
    assert.deepEqual(r.json(), { error: 'Too many outstanding nonces' });
    assert.ok(Number(r.headers['retry-after']) >= 1);
    assert.ok(t.audit.records.some((a) => a.event === 'get_nonce' && a.outcome === 'error' && a.reason === 'NONCE_CAPACITY'));
    await t.app.close();
  });

  it('answers 503 STORE_UNAVAILABLE + Retry-After when Redis is unreachable (no crash)', async () => {
    const port = await freePort(); // nothing listens there
    const redis = new RedisStore({ host: '127.0.0.1', port, keyPrefix: 'tas:', waitReplicas: 0, commandTimeoutMs: 1000 });
    try {
      const t = await app(new NonceService(redis, { ttlSeconds: 120, maxOutstanding: 10 }));
      const r = await t.app.inject({ method: 'GET', url: '/kb/v0/get_nonce', headers: { 'x-api-key': CLIENT_KEY } });
      assert.equal(r.statusCode, 503);
      assert.deepEqual(r.json(), { error: 'Service temporarily unavailable' });
      assert.ok(Number(r.headers['retry-after']) >= 1);
      await t.app.close();
    } finally {
      await redis.close();
    }
  });

  // get_nonce counts the client's rate budget inside the nonce issue when the edge's rate counter
  // is the nonces' store (the daemon's composition): one store operation (one Redis round trip).
  for (const backend of ['embedded', 'redis'] as const) {
    it(`${backend}: counts the rate budget inside the issue; a refused key and other routes draw on the same budget`, async () => {
      const redis = backend === 'redis' ? await startPlain() : undefined;
      const st: Store = redis ? new RedisStore({ host: '127.0.0.1', port: redis.port, keyPrefix: 'tas:', waitReplicas: 0 }) : store;
      const calls = { hit: 0, issue: 0, issueCharged: 0 };
      const counted = new Proxy(st, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if (typeof v !== 'function') return v;
          return (...args: unknown[]) => {
            if (prop === 'hit' || prop === 'issue' || prop === 'issueCharged') calls[prop]++;
            return (v as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
      try {
        const svc = new NonceService(counted, { ttlSeconds: 120, maxOutstanding: 10 });
        const t = await makeApp(
          { TAS_CLIENT_RATE_LIMIT: '3/minute' },
          { routes: [nonceRoutes(svc, clientAuth)] },
          { store: { hit: (k, w) => counted.hit(k, w), chargesWithNonces: true } },
        );
        const get = (key = CLIENT_KEY) => t.app.inject({ method: 'GET', url: '/kb/v0/get_nonce', headers: { 'x-api-key': key }, remoteAddress: '192.0.2.9' });
        assert.equal((await get()).statusCode, 200);
        assert.deepEqual(calls, { hit: 0, issue: 0, issueCharged: 1 }, 'one store operation for the route');
        assert.equal((await get('x'.repeat(64))).statusCode, 401, 'a refused key is counted by the error path');
        assert.equal(calls.hit, 1);
        assert.equal((await get()).statusCode, 200);
        const over = await get();
        assert.equal(over.statusCode, 429, 'fourth request of the window');
        assert.deepEqual(over.json(), { error: 'Too many requests' });
        assert.ok(Number(over.headers['retry-after']) >= 1);
        assert.equal(await st.count(), 2, 'nothing issued beyond the budget');
        assert.equal((await get('x'.repeat(64))).statusCode, 429, 'over budget, a refused key answers 429 as before');
        assert.equal((await t.app.inject({ url: '/version', headers: { 'x-api-key': CLIENT_KEY }, remoteAddress: '192.0.2.9' })).statusCode, 429, 'one budget across routes');
        assert.equal((await t.app.inject({ method: 'GET', url: '/kb/v0/get_nonce', headers: { 'x-api-key': CLIENT_KEY }, remoteAddress: '192.0.2.10' })).statusCode, 200, 'another client has its own');
        assert.ok(!t.audit.records.some((a) => a.event === 'get_nonce' && a.outcome !== 'allow'), 'a 429 is the edge\'s answer, not an audited nonce refusal');
        await t.app.close();
      } finally {
        if (redis) {
          await st.close();
          await redis.stop();
        }
      }
    });
  }
});
