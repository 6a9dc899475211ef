import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { KeyRing, managementAuth, policyAuth } from '../../src/http';
import { CLIENT_KEY_2, testConfig } from '../support/daemon';
import { CLIENT_KEY, MGMT_KEY, makeApp, type TestEdge } from './helpers';

describe('http: authentication', () => {
  let t: TestEdge;
  before(async () => {
    t = await makeApp({}, {
      routes: [{
        name: 'policy-probe', scope: 'management',
        register: (app: FastifyInstance) => {
          app.get('/policy/v0/list', { onRequest: policyAuth }, async () => ({ policies: [], count: 0 }));
          app.get('/management/policy/v0/list', { onRequest: managementAuth }, async () => ({ policies: [], count: 0 }));
        },
      }],
    });
  });
  after(() => t.app.close());

  const get = (url: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'GET', url, headers });

  it('client route: missing key, wrong key and management key are 401 Unauthorized; client key passes', async () => {
    const variants: Array<Record<string, string>> = [{}, { 'x-api-key': 'x'.repeat(64) }, { 'x-api-key': MGMT_KEY }, { 'x-management-api-key': MGMT_KEY }, { 'x-api-key': '' }];
    for (const headers of variants) {
      const r = await get('/version', headers);
      assert.equal(r.statusCode, 401, JSON.stringify(headers));
      assert.deepEqual(r.json(), { error: 'Unauthorized' });
    }
    const ok = await get('/version', { 'x-api-key': CLIENT_KEY });
    assert.equal(ok.statusCode, 200);
    assert.match(ok.json().version, /^\d+\.\d+\.\d+/);
  });

  it('management route: client key (in either header) is refused; management key passes only in X-MANAGEMENT-API-KEY', async () => {
    const variants: Array<Record<string, string>> = [{}, { 'x-management-api-key': CLIENT_KEY }, { 'x-api-key': CLIENT_KEY }, { 'x-api-key': MGMT_KEY }];
    for (const headers of variants) {
      const r = await get('/management/status', headers);
      assert.equal(r.statusCode, 401, JSON.stringify(headers));
      assert.deepEqual(r.json(), { error: 'Unauthorized' });
    }
    assert.equal((await get('/management/status', { 'x-management-api-key': MGMT_KEY })).statusCode, 200);
    assert.equal((await get('/management/policy/v0/list', { 'x-api-key': MGMT_KEY })).statusCode, 401);
  });

  it('first-dialect policy routes accept the management key in X-API-KEY too, never the client key', async () => {
    assert.equal((await get('/policy/v0/list', { 'x-api-key': MGMT_KEY })).statusCode, 200);
    assert.equal((await get('/policy/v0/list', { 'x-management-api-key': MGMT_KEY })).statusCode, 200);
    assert.equal((await get('/policy/v0/list', { 'x-api-key': CLIENT_KEY })).statusCode, 401);
    assert.equal((await get('/policy/v0/list')).statusCode, 401);
  });

  it('a duplicated key header is refused with 400, not joined and compared', async () => {
    const r = await t.app.inject({ method: 'GET', url: '/version', headers: { 'x-api-key': [CLIENT_KEY, CLIENT_KEY] } });
    assert.equal(r.statusCode, 400);
    assert.deepEqual(r.json(), { error: 'Bad request' });
  });

  it('audits refusals without the key', async () => {
    const before = t.audit.records.length;
    await get('/version', { 'x-api-key': 'wrong-key-value-'.repeat(5) });
    const rec = t.audit.records.slice(before).find((r) => r.event === 'auth');
    assert.ok(rec);
    assert.equal(rec.outcome, 'deny');
    assert.equal(rec.reason, 'AUTH_INVALID');
    assert.ok(!JSON.stringify(t.audit.records).includes('wrong-key-value-'));
    assert.ok(!JSON.stringify(t.logLines).includes('wrong-key-value-'));
  });

  it('rotation: a reload swaps keys; the rotated-out key is refused, the rotated-in key passes', async () => {
    const r = await makeApp({ TAS_API_KEY: CLIENT_KEY });
    try {
      assert.equal((await r.app.inject({ url: '/version', headers: { 'x-api-key': CLIENT_KEY_2 } })).statusCode, 401);
      // overlap: both keys active
      r.edge.reload(testConfig({ TAS_API_KEY: `${CLIENT_KEY},${CLIENT_KEY_2}` }));
      assert.equal((await r.app.inject({ url: '/version', headers: { 'x-api-key': CLIENT_KEY } })).statusCode, 200);
      assert.equal((await r.app.inject({ url: '/version', headers: { 'x-api-key': CLIENT_KEY_2 } })).statusCode, 200);
      // old key retired
      r.edge.reload(testConfig({ TAS_API_KEY: CLIENT_KEY_2 }));
      assert.equal((await r.app.inject({ url: '/version', headers: { 'x-api-key': CLIENT_KEY } })).statusCode, 401);
      assert.equal((await r.app.inject({ url: '/version', headers: { 'x-api-key': CLIENT_KEY_2 } })).statusCode, 200);
    } finally {
      await r.app.close();
    }
  });

  it('compares with crypto.timingSafeEqual over equal-length digests, every configured key, no early exit', async () => {
    const ring = new KeyRing('t', [CLIENT_KEY, CLIENT_KEY_2, MGMT_KEY], 64);
    const real = crypto.timingSafeEqual;
    const calls: Array<[number, number]> = [];
    crypto.timingSafeEqual = ((a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      calls.push([a.byteLength, b.byteLength]);
      return real(a, b);
    }) as typeof crypto.timingSafeEqual;
    try {
      for (const presented of ['short', CLIENT_KEY, MGMT_KEY, 'y'.repeat(5000), '']) {
        calls.length = 0;
        const hit = ring.matches(presented);
        assert.equal(hit, presented === CLIENT_KEY || presented === MGMT_KEY);
        // one compare per configured key whatever is presented (also after the first match) ...
        assert.equal(calls.length, 3, presented.slice(0, 10));
        // ... and always over 32-byte digests, so the presented length never changes the work.
        assert.ok(calls.every(([a, b]) => a === 32 && b === 32));
      }
      // the HTTP path goes through the same compare
      calls.length = 0;
      await t.app.inject({ url: '/version', headers: { 'x-api-key': 'nope' } });
      assert.equal(calls.length, 1);
    } finally {
      crypto.timingSafeEqual = real;
    }
  });

  it('a keep-alive connection keeps its verdict for the same key, by constant-time compare, until the key set changes (rotation bites at once)', () => {
    const ring = new KeyRing('t', [CLIENT_KEY, CLIENT_KEY_2], 64);
    const conn = {};
    const realHmac = crypto.createHmac;
    const realEq = crypto.timingSafeEqual;
    let hmacs = 0;
    const eqs: Array<[number, number]> = [];
    crypto.createHmac = ((...a: Parameters<typeof realHmac>) => (hmacs++, realHmac(...a))) as typeof realHmac;
    crypto.timingSafeEqual = ((a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => (eqs.push([a.byteLength, b.byteLength]), realEq(a, b))) as typeof realEq;
    try {
      assert.equal(ring.matchesOn(conn, CLIENT_KEY), true);
      assert.equal(hmacs, 1);
      for (let i = 0; i < 10; i++) assert.equal(ring.matchesOn(conn, CLIENT_KEY), true);
      assert.equal(hmacs, 1, 'later requests on the connection: no HMAC');
      assert.ok(eqs.slice(-10).every(([a, b]) => a === CLIENT_KEY.length && b === CLIENT_KEY.length), 'a constant-time compare of the whole key');
      // Another key, or a wrong one, on the same connection gets the full check.
      assert.equal(ring.matchesOn(conn, CLIENT_KEY_2), true);
      assert.equal(ring.matchesOn(conn, 'x'.repeat(72)), false);
      assert.equal(hmacs, 3);
      assert.equal(ring.matchesOn(conn, CLIENT_KEY), true);
      assert.equal(ring.matchesOn({}, CLIENT_KEY), true, 'other connections are checked in full');
      assert.equal(hmacs, 5);
      // Rotation: the cached verdict is void at once.
      const g = ring.generation;
      ring.replace([CLIENT_KEY_2], 64);
      assert.notEqual(ring.generation, g);
      assert.equal(ring.matchesOn(conn, CLIENT_KEY), false, 'the rotated-out key is refused on the same connection');
      assert.equal(ring.matchesOn(conn, CLIENT_KEY_2), true);
    } finally {
      crypto.createHmac = realHmac;
      crypto.timingSafeEqual = realEq;
    }
  });

  it('refuses short keys and shared client/management keys at startup', () => {
    assert.throws(() => testConfig({ TAS_API_KEY: 'short-key' }), /TAS_API_KEY.*shorter than 64/s);
    assert.throws(() => testConfig({ TAS_MANAGEMENT_API_KEY: CLIENT_KEY }), /also a client key/);
    assert.throws(() => new KeyRing('x', ['a'.repeat(63)], 64), /shorter than 64/);
    assert.throws(() => new KeyRing('x', [], 64), /at least one key/);
  });
});
