/** Probes, metrics and management status. */
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../src/daemon/context';
import { clientAuth } from '../../src/http';
import { clientHeaders, makeApp, mgmtHeaders, type TestEdge } from './helpers';

describe('http: probes, metrics, status', () => {
  let t: TestEdge;
  let storeDown = false;
  before(async () => {
    t = await makeApp({}, {
      status: [
        { name: 'store', status: () => ({ backend: 'embedded', persistent: true }) },
        { name: 'kbm', status: async () => { throw new Error('backend offline'); } },
        { name: 'links', status: () => ({ redis: 'rediss://tas:r3dis-pw@10.0.0.5:6380/0', proxies: ['http://u:pr0xy-pw@proxy:3128'] }) },
        { name: 'broken', status: () => { throw new Error('cannot reach https://kds-token@mirror.example/vcek'); } },
      ],
      routes: [{ name: 'nonce', scope: 'client', register: (app: FastifyInstance) => { app.get('/kb/v0/get_nonce', { onRequest: clientAuth }, async () => ({ nonce: 'x' })); } }],
    }, {
      configure: (ctx) => {
        ctx.readiness.register('store', () => (storeDown ? 'redis: connection refused' : undefined));
        ctx.readiness.register('selftest', () => undefined);
        ctx.readiness.register('kbm', () => new Promise(() => undefined)); // never answers
      },
    });
  });
  after(() => t.app.close());

  it('/healthz answers without auth', async () => {
    const r = await t.app.inject({ url: '/healthz' });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), { status: 'ok' });
  });

  it('/readyz is 503 naming each failed dependency, never its reason; the reasons are on /management/status', async () => {
    storeDown = true;
    const r = await t.app.inject({ url: '/readyz' });
    assert.equal(r.statusCode, 503);
    const body = r.json();
    assert.deepEqual(body, { status: 'not ready', failed: ['kbm', 'store'] });
    assert.ok(!r.body.includes('connection refused') && !r.body.includes('no answer'), r.body);
    const s = await t.app.inject({ url: '/management/status', headers: mgmtHeaders });
    const readiness = s.json().readiness;
    assert.equal(readiness.ready, false);
    assert.equal(readiness.failed.store, 'redis: connection refused');
    assert.match(readiness.failed.kbm, /no answer within/);
  });

  it('a separate management listener: /readyz there names the reasons too; the main listener names only', async () => {
    const reasons = (ctx: AppContext) => ctx.readiness.register('store', () => 'redis://tas:r3dis-pw@10.0.0.5:6380: connection refused');
    const main = await makeApp({}, {}, { role: 'main', configure: reasons });
    const mgmt = await makeApp({}, {}, { role: 'management', configure: reasons });
    try {
      const a = await main.app.inject({ url: '/readyz' });
      assert.deepEqual(a.json(), { status: 'not ready', failed: ['store'] });
      const b = await mgmt.app.inject({ url: '/readyz' });
      assert.equal(b.statusCode, 503);
      assert.deepEqual(b.json(), { status: 'not ready', failed: ['store'], reasons: { store: 'redis://***@10.0.0.5:6380: connection refused' } });
    } finally {
      await main.app.close();
      await mgmt.app.close();
    }
  });

  it('/readyz is 200 when every check passes', async () => {
    const ok = await makeApp({}, {}, { configure: (ctx) => ctx.readiness.register('store', () => undefined) });
    try {
      const r = await ok.app.inject({ url: '/readyz' });
      assert.equal(r.statusCode, 200);
      assert.deepEqual(r.json(), { status: 'ready' });
    } finally {
      await ok.app.close();
    }
  });

  it('/metrics labels requests by route pattern and status, never by client-chosen paths', async () => {
    const evil = ['/evil-path-a1', '/kb/v0/get_secret/../../x', '/%00zz', '/management/policy/v0/get/attacker-chosen'];
    for (const url of evil) await t.app.inject({ url, headers: clientHeaders });
    await t.app.inject({ url: '/version', headers: clientHeaders });
    await t.app.inject({ url: '/version' });
    await t.app.inject({ url: '/kb/v0/get_nonce', headers: clientHeaders });
    await t.app.inject({ method: 'PROPFIND' as 'GET', url: '/version', headers: clientHeaders });
    const m = await t.app.inject({ url: '/metrics' });
    assert.equal(m.statusCode, 200);
    assert.match(m.headers['content-type'] as string, /text\/plain/);
    const lines = m.body.split('\n').filter((l) => l.startsWith('tas_http_requests_total{'));
    assert.ok(lines.some((l) => l.includes('route="/version"') && l.includes('status="200"')));
    assert.ok(lines.some((l) => l.includes('route="/version"') && l.includes('status="401"')));
    assert.ok(lines.some((l) => l.includes('route="/kb/v0/get_nonce"')));
    assert.ok(lines.some((l) => l.includes('route="unmatched"') && l.includes('status="404"')));
    const routes = new Set(lines.map((l) => /route="([^"]*)"/.exec(l)![1]));
    for (const r of routes) assert.ok(['/version', '/kb/v0/get_nonce', '/healthz', '/readyz', '/metrics', '/management/status', 'unmatched'].includes(r!), `unexpected route label ${r}`);
    for (const e of ['evil', 'attacker', '%00', '..']) assert.ok(!m.body.includes(e), e);
    assert.match(m.body, /tas_http_request_duration_seconds_bucket\{/);
  });

  it('/management/status aggregates the providers, a failing one reports its error', async () => {
    const r = await t.app.inject({ url: '/management/status', headers: mgmtHeaders });
    assert.equal(r.statusCode, 200);
    const body = r.json();
    assert.match(body.version, /^\d+\.\d+\.\d+/);
    assert.deepEqual(body.store, { backend: 'embedded', persistent: true });
    assert.deepEqual(body.kbm, { error: 'backend offline' });
    assert.equal(body.edge.max_inflight, 256);
  });

  it('/management/status masks the userinfo of every URL, in values and in provider errors', async () => {
    const r = await t.app.inject({ url: '/management/status', headers: mgmtHeaders });
    assert.equal(r.statusCode, 200);
    for (const leak of ['r3dis-pw', 'pr0xy-pw', 'kds-token']) assert.ok(!r.body.includes(leak), `${leak} in ${r.body}`);
    const body = r.json();
    assert.equal(body.links.redis, 'rediss://***@10.0.0.5:6380/0');
    assert.deepEqual(body.links.proxies, ['http://***@proxy:3128']);
    assert.deepEqual(body.broken, { error: 'cannot reach https://***@mirror.example/vcek' });
  });

  it('GET /version returns the package version', async () => {
    const r = await t.app.inject({ url: '/version', headers: clientHeaders });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    assert.deepEqual(r.json(), { version: (require('../../package.json') as { version: string }).version });
  });
});
