/**
 * The KDS fetcher against a real HTTP fake KDS: single flight, Retry-After (seconds and date),
 * 5xx backoff inside the deadline, 404 negative caching, timeouts, connection refused, offline.
 * Spacing and budgets are shortened by options so the suite runs in seconds; assertions count
 * requests and outcomes, never elapsed time.
 */
import assert from 'node:assert/strict';
import { KdsFetcher, KdsNotFound, parseRetryAfter, pemToDer } from '../../src/kds';
import { TasError } from '../../src/errors';
import { FakeKds } from '../support/fake-kds';

const fast = { perUrlIntervalMs: 20, globalPerSecond: 1000, negativeTtlMs: 60_000, attemptTimeoutMs: 300, connectTimeoutMs: 300 };

async function rejects(p: Promise<unknown>): Promise<TasError> {
  const e = await p.then(() => assert.fail('expected a rejection'), (x: unknown) => x);
  assert.ok(e instanceof TasError, String(e));
  return e;
}

describe('kds: fetcher', function () {
  this.timeout(30_000);
  let kds: FakeKds;
  beforeEach(async () => {
    kds = await new FakeKds().start();
  });
  afterEach(async () => kds.stop());

  it('50 concurrent misses for one URL make exactly one upstream request', async () => {
    kds.serve('/vcek/v1/Genoa/abc', Buffer.from('DER')).fault('/vcek/v1/Genoa/abc', { delayMs: 100 });
    const f = new KdsFetcher({ baseUrl: kds.url, ...fast });
    const all = await Promise.all(Array.from({ length: 50 }, () => f.get('/vcek/v1/Genoa/abc', { deadline: Date.now() + 5000 })));
    assert.ok(all.every((b) => b.toString() === 'DER'));
    assert.equal(kds.total('/vcek/v1/Genoa/abc'), 1);
    await f.close();
  });

  it('429 with Retry-After in seconds is honoured: the retry waits, then succeeds', async () => {
    kds.serve('/x', 'ok').fault('/x', { status: 429, retryAfter: '1', times: 1 });
    const f = new KdsFetcher({ baseUrl: kds.url, ...fast });
    const b = await f.get('/x', { deadline: Date.now() + 5000 });
    assert.equal(b.toString(), 'ok');
    assert.equal(kds.total('/x'), 2);
    await f.close();
  });

  it('a Retry-After beyond the deadline answers KDS_UNAVAILABLE with that Retry-After, without retrying', async () => {
    kds.serve('/y', 'ok').fault('/y', { status: 503, retryAfter: '600' });
    const f = new KdsFetcher({ baseUrl: kds.url, ...fast });
    const e = await rejects(f.get('/y', { deadline: Date.now() + 2000 }));
    assert.equal(e.code, 'KDS_UNAVAILABLE');
    assert.ok(e.retryAfterSeconds! >= 590 && e.retryAfterSeconds! <= 600, String(e.retryAfterSeconds));
    assert.equal(kds.total('/y'), 1);
    // the next call inside the Retry-After window does not hit KDS at all
    await rejects(f.get('/y', { deadline: Date.now() + 2000 }));
    assert.equal(kds.total('/y'), 1);
    await f.close();
  });

  it('Retry-After as an HTTP date is understood', () => {
    const now = Date.parse('2026-11-29T12:00:00Z');
    assert.equal(parseRetryAfter('Sun, 29 Nov 2026 12:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('17', now), 17_000);
    assert.equal(parseRetryAfter('soon', now), undefined);
  });

  it('500s are retried with backoff inside the deadline and then succeed', async () => {
    kds.serve('/z', 'ok').fault('/z', { status: 500, times: 2 });
    const f = new KdsFetcher({ baseUrl: kds.url, ...fast, random: () => 0 });
    assert.equal((await f.get('/z', { deadline: Date.now() + 10_000 })).toString(), 'ok');
    assert.equal(kds.total('/z'), 3);
    await f.close();
  });

  it('persistent 500s give up at the deadline with KDS_UNAVAILABLE (503 + Retry-After)', async () => {
    kds.fault('/down', { status: 500 });
    const f = new KdsFetcher({ baseUrl: kds.url, ...fast });
    const e = await rejects(f.get('/down', { deadline: Date.now() + 1500 }));
    assert.equal(e.status, 503);
    assert.ok(e.retryAfterSeconds! >= 1);
    assert.ok(kds.total('/down') >= 2, 'retried at least once');
    await f.close();
  });

  it('404 is not retried and is negatively cached', async () => {
    const f = new KdsFetcher({ baseUrl: kds.url, ...fast });
    const e = await rejects(f.get('/nope', { deadline: Date.now() + 3000 }));
    assert.ok(e instanceof KdsNotFound);
    assert.equal(e.reason, 'KDS_NOT_FOUND');
    await rejects(f.get('/nope', { deadline: Date.now() + 3000 }));
    assert.equal(kds.total('/nope'), 1);
    await f.close();
  });

  it('a hanging KDS is cut by the attempt timeout; connection refused is unavailable', async () => {
    kds.fault('/hang', { hang: true });
    const f = new KdsFetcher({ baseUrl: kds.url, ...fast });
    const e = await rejects(f.get('/hang', { deadline: Date.now() + 1000 }));
    assert.equal(e.code, 'KDS_UNAVAILABLE');
    const base = kds.url;
    await kds.stop();
    const g = new KdsFetcher({ baseUrl: base, ...fast });
    const r = await rejects(g.get('/anything', { deadline: Date.now() + 800 }));
    assert.equal(r.code, 'KDS_UNAVAILABLE');
    assert.match(r.detail, /request failed/);
    await f.close();
    await g.close();
  });

  it('a slow KDS on one URL does not block another URL (count answers)', async () => {
    kds.serve('/slow', 'slow').fault('/slow', { delayMs: 1500 });
    kds.serve('/fast', 'fast');
    const f = new KdsFetcher({ baseUrl: kds.url, ...fast, attemptTimeoutMs: 5000 });
    const slow = f.get('/slow', { deadline: Date.now() + 5000 });
    let answered = 0;
    let slowDone = false;
    void slow.then(() => (slowDone = true));
    while (!slowDone) {
      await f.get('/fast', { deadline: Date.now() + 5000 });
      answered++;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.ok(answered >= 3, `fast URL answered ${answered} times while the slow one was pending`);
    assert.equal((await slow).toString(), 'slow');
    await f.close();
  });

  it('TAS_KDS_OFFLINE never contacts KDS', async () => {
    kds.serve('/vcek/v1/Milan/aa', 'x');
    const f = new KdsFetcher({ baseUrl: kds.url, offline: true });
    const e = await rejects(f.get('/vcek/v1/Milan/aa', { deadline: Date.now() + 1000 }));
    assert.equal(e.reason, 'KDS_OFFLINE');
    assert.equal(kds.total(), 0);
    await f.close();
  });

  it('splits PEM bodies into DER and passes DER through', () => {
    const der = Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]);
    const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64')}\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n${der.toString('base64')}\n-----END CERTIFICATE-----\n`;
    assert.deepEqual(pemToDer(Buffer.from(pem)), [der, der]);
    assert.deepEqual(pemToDer(der), [der]);
  });
});
