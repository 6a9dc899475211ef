/** Edge bounds on real sockets and through inject(): body limits, timeouts, connection cap, in-flight cap, rate limits. */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { bodyLimit, managementAuth, MemoryRateLimitStore, parseRate, type RateLimitStore } from '../../src/http';
import { startTestDaemon, type TestDaemon } from '../support/daemon';
import { BlockingAttester, CLIENT_KEY, MGMT_KEY, clientHeaders, makeApp, mgmtHeaders, validBody } from './helpers';

const echoModule = {
  name: 'echo', scope: 'management' as const,
  register: (app: FastifyInstance) => {
    app.post('/management/echo', { onRequest: managementAuth, bodyLimit: bodyLimit.management }, async (r) => ({ size: JSON.stringify(r.body).length }));
  },
};

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

describe('http: body limits per route', () => {
  it('get_secret refuses more than 512 KiB with 413 (16 GPUs fit); a management route takes up to 1 MiB', async () => {
    const t = await makeApp({}, { routes: [echoModule] });
    try {
      const post = (url: string, headers: Record<string, string>, size: number) =>
        t.app.inject({ method: 'POST', url, headers: { ...headers, 'content-type': 'application/json' }, payload: JSON.stringify({ pad: 'x'.repeat(size) }) });
      const under = await post('/kb/v0/get_secret', clientHeaders, 500 * 1024);
      assert.equal(under.statusCode, 400, 'under the limit the body is parsed (and refused for its content)');
      const over = await post('/kb/v0/get_secret', clientHeaders, 513 * 1024);
      assert.equal(over.statusCode, 413);
      assert.deepEqual(over.json(), { error: 'Request body too large' });
      assert.equal((await post('/management/echo', mgmtHeaders, 900 * 1024)).statusCode, 200);
      const mOver = await post('/management/echo', mgmtHeaders, 1024 * 1024 + 10);
      assert.equal(mOver.statusCode, 413);
      assert.deepEqual(mOver.json(), { error: 'Request body too large' });
    } finally {
      await t.app.close();
    }
  });
});

describe('http: slow and idle clients', () => {
  let d: TestDaemon;
  let port: number;
  before(async () => {
    d = await startTestDaemon({}, { limits: { headersTimeoutMs: 400, requestTimeoutMs: 800, connectionsCheckingIntervalMs: 50, keepAliveTimeoutMs: 300, maxConnections: 3 } });
    port = Number(new URL(d.urls.main).port);
  });
  after(() => d.close());

  it('slow-loris headers: the server cuts the connection (408) long before the client is done', async () => {
    const s = await open(port);
    let got = '';
    let closed = false;
    s.on('data', (b) => (got += b.toString()));
    const closedP = new Promise<void>((r) => s.on('close', () => { closed = true; r(); }));
    s.write('GET /version HTTP/1.1\r\nHost: x\r\n');
    let sent = 0;
    // The client would need 400 lines at 25 ms each to finish: far past headersTimeout.
    while (!closed && sent < 400) {
      await new Promise((r) => setTimeout(r, 25));
      if (!s.writable) break;
      s.write(`X-Slow-${sent++}: a\r\n`);
    }
    await closedP;
    assert.ok(closed, 'server closed the connection');
    assert.ok(sent < 400, `closed after ${sent} of 400 header lines`);
    assert.match(got, /^HTTP\/1\.1 408 /);
    assert.match(got, /"error":"Request timeout"/);
  });

  it('slow body: requestTimeout cuts a body that trickles in', async () => {
    const s = await open(port);
    let closed = false;
    const closedP = new Promise<void>((r) => s.on('close', () => { closed = true; r(); }));
    s.on('error', () => undefined);
    s.write(`POST /kb/v0/get_secret HTTP/1.1\r\nHost: x\r\nX-API-KEY: ${CLIENT_KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`);
    let sent = 0;
    while (!closed && sent < 1000) {
      await new Promise((r) => setTimeout(r, 20));
      if (!s.writable) break;
      s.write(' ');
      sent++;
    }
    await closedP;
    assert.ok(sent < 1000, `closed after ${sent} of 1000 body bytes`);
  });

  it('idle keep-alive connections are closed by the server', async () => {
    const s = await open(port);
    const closedP = new Promise<void>((r) => s.on('close', () => r()));
    let got = '';
    s.on('data', (b) => (got += b.toString()));
    s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await closedP; // nothing more is sent: the keep-alive timeout closes it
    assert.match(got, /^HTTP\/1\.1 200 /);
  });

  it('connection cap: beyond server.maxConnections new connections are closed at once', async () => {
    const held = [await open(port), await open(port), await open(port)];
    const extra = await open(port);
    let got = '';
    extra.on('data', (b) => (got += b.toString()));
    extra.on('error', () => undefined);
    const closed = new Promise<void>((r) => extra.on('close', () => r()));
    extra.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await closed;
    assert.equal(got, '', 'the capped connection got no answer');
    for (const s of held) s.destroy();
    await new Promise((r) => setTimeout(r, 50));
    const r = await fetch(`${d.urls.main}/healthz`);
    assert.equal(r.status, 200, 'a slot is free again');
  });
});

describe('http: in-flight cap (TAS_MAX_INFLIGHT)', () => {
  it('beyond the cap get_secret answers 503 + Retry-After at once; slots free up after', async () => {
    const att = new BlockingAttester();
    const t = await makeApp({ TAS_MAX_INFLIGHT: '2' }, { attester: att });
    try {
      const send = () => t.app.inject({ method: 'POST', url: '/kb/v0/get_secret', headers: { ...clientHeaders, 'content-type': 'application/json' }, payload: JSON.stringify(validBody()) });
      const a = send();
      const b = send();
      await att.whenStarted(2);
      const c = await send();
      assert.equal(c.statusCode, 503);
      assert.deepEqual(c.json(), { error: 'Server busy' });
      assert.ok(Number(c.headers['retry-after']) >= 1);
      assert.equal(att.started, 2, 'the refused request never reached the attester');
      assert.equal(t.edge.inflight.inflight, 2);
      att.release();
      assert.equal((await a).statusCode, 200);
      assert.equal((await b).statusCode, 200);
      assert.equal(t.edge.inflight.inflight, 0);
      const e = send();
      await att.whenStarted(3);
      att.release();
      assert.equal((await e).statusCode, 200);
      const m = await t.app.inject({ url: '/metrics' });
      assert.match(m.body, /tas_http_inflight_refused_total 1/);
    } finally {
      await t.app.close();
    }
  });
});

describe('http: rate limit per client address', () => {
  const get = (app: FastifyInstance, remoteAddress: string, headers: Record<string, string> = {}) =>
    app.inject({ url: '/version', remoteAddress, headers: { ...clientHeaders, ...headers } });

  it('IPv4 per address, IPv6 per /64, IPv4-mapped IPv6 counts as IPv4; 429 + Retry-After', async () => {
    const t = await makeApp({ TAS_CLIENT_RATE_LIMIT: '2/minute' });
    try {
      assert.equal((await get(t.app, '192.0.2.1')).statusCode, 200);
      assert.equal((await get(t.app, '::ffff:192.0.2.1')).statusCode, 200);
      const r = await get(t.app, '192.0.2.1');
      assert.equal(r.statusCode, 429);
      assert.deepEqual(r.json(), { error: 'Too many requests' });
      const ra = Number(r.headers['retry-after']);
      assert.ok(ra >= 1 && ra <= 60, String(ra));
      assert.equal((await get(t.app, '192.0.2.2')).statusCode, 200, 'another IPv4 address has its own budget');

      assert.equal((await get(t.app, '2001:db8:1:2::1')).statusCode, 200);
      assert.equal((await get(t.app, '2001:db8:1:2:ffff:ffff:ffff:ffff')).statusCode, 200);
      assert.equal((await get(t.app, '2001:db8:1:2::99')).statusCode, 429, 'same /64');
      assert.equal((await get(t.app, '2001:db8:1:3::1')).statusCode, 200, 'next /64');
      // unknown paths spend the budget too
      assert.equal((await t.app.inject({ url: '/nope', remoteAddress: '192.0.2.3' })).statusCode, 404);
      assert.equal((await t.app.inject({ url: '/nope', remoteAddress: '192.0.2.3' })).statusCode, 404);
      assert.equal((await t.app.inject({ url: '/nope', remoteAddress: '192.0.2.3' })).statusCode, 429);
      // probes are never limited
      for (let i = 0; i < 5; i++) assert.equal((await t.app.inject({ url: '/healthz', remoteAddress: '192.0.2.1' })).statusCode, 200);
    } finally {
      await t.app.close();
    }
  });

  it('X-Forwarded-For is believed only from trusted proxies, right-most untrusted hop wins', async () => {
    const t = await makeApp({ TAS_CLIENT_RATE_LIMIT: '1/hour', TAS_TRUSTED_PROXIES: '10.0.0.0/8, fd00::/8' });
    try {
      // through a trusted proxy: the client is the right-most untrusted hop
      assert.equal((await get(t.app, '10.0.0.5', { 'x-forwarded-for': '198.51.100.7' })).statusCode, 200);
      assert.equal((await get(t.app, '10.0.0.6', { 'x-forwarded-for': '198.51.100.7' })).statusCode, 429, 'same client behind another proxy');
      // a forged left-most entry does not buy a fresh budget
      assert.equal((await get(t.app, '10.0.0.5', { 'x-forwarded-for': '1.1.1.1, 198.51.100.7' })).statusCode, 429);
      // chained trusted proxies are skipped
      assert.equal((await get(t.app, '10.0.0.5', { 'x-forwarded-for': '198.51.100.8, 10.9.9.9' })).statusCode, 200);
      assert.equal((await get(t.app, 'fd00::1', { 'x-forwarded-for': '198.51.100.8' })).statusCode, 429);
      // an untrusted peer's X-Forwarded-For is ignored: it is accounted to the peer itself
      assert.equal((await get(t.app, '203.0.113.9', { 'x-forwarded-for': '198.51.100.99' })).statusCode, 200);
      assert.equal((await get(t.app, '203.0.113.9', { 'x-forwarded-for': '198.51.100.100' })).statusCode, 429);
      assert.equal((await get(t.app, '10.0.0.5', { 'x-forwarded-for': '198.51.100.99' })).statusCode, 200, '198.51.100.99 was never charged');
      // malformed hop: accounted to the proxy that wrote it
      assert.equal((await get(t.app, '10.0.0.7', { 'x-forwarded-for': 'not-an-ip' })).statusCode, 200);
      assert.equal((await get(t.app, '10.0.0.7', { 'x-forwarded-for': 'still-not-an-ip' })).statusCode, 429);
    } finally {
      await t.app.close();
    }
  });

  it('uses the pluggable store, and fails closed when it is down', async () => {
    const keys: string[] = [];
    const mem = new MemoryRateLimitStore();
    let down = false;
    const store: RateLimitStore = {
      hit: async (key, windowMs) => {
        if (down) throw new Error('redis unreachable');
        keys.push(key);
        return mem.hit(key, windowMs);
      },
    };
    const t = await makeApp({ TAS_CLIENT_RATE_LIMIT: '100/second' }, {}, { store });
    try {
      assert.equal((await get(t.app, '2001:db8:aa:bb:1:2:3:4')).statusCode, 200);
      assert.deepEqual(keys, ['rl:2001:db8:aa:bb::/64']);
      down = true;
      const r = await get(t.app, '192.0.2.50');
      assert.equal(r.statusCode, 503);
      assert.ok(r.headers['retry-after']);
    } finally {
      await t.app.close();
    }
  });

  it('memory store stays bounded and windows reset', async () => {
    let now = 0;
    const s = new MemoryRateLimitStore(3, () => now);
    for (const k of ['a', 'b', 'c', 'd', 'e']) await s.hit(k, 1000);
    assert.equal(s.size, 3);
    assert.equal((await s.hit('e', 1000)).count, 2);
    now = 1500;
    assert.deepEqual(await s.hit('e', 1000), { count: 1, resetMs: 1000 });
    assert.deepEqual(parseRate('200/minute'), { limit: 200, windowMs: 60_000 });
    assert.deepEqual(parseRate('5/s'), { limit: 5, windowMs: 1000 });
    assert.throws(() => parseRate('200 per minute'), /200\/minute/);
    assert.throws(() => parseRate('0/hour'), /at least 1/);
  });
});

describe('http: auth never reaches the body parser', () => {
  it('an unauthenticated oversized body is 401, not parsed', async () => {
    const t = await makeApp();
    try {
      const r = await t.app.inject({ method: 'POST', url: '/kb/v0/get_secret', headers: { 'content-type': 'application/json', 'x-api-key': MGMT_KEY }, payload: 'x'.repeat(100_000) });
      assert.equal(r.statusCode, 401);
    } finally {
      await t.app.close();
    }
  });
});
