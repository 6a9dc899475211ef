/**
 * Two daemons' worth of services on one Redis: the edge's RateLimiter (through the RateLimitStore
 * interface the Redis store implements) keeps one budget for the fleet, and a nonce issued by
 * one node's NonceService is claimed exactly once across both.
 */
import assert from 'node:assert/strict';
import { TasError } from '../../src/errors';
import { RateLimiter, parseRate, type RateLimitStore } from '../../src/http';
import { NonceService } from '../../src/nonce';
import type { Store } from '../../src/store';
import { startPlain } from '../support/redis';
import { openRedisStore } from './redis-helpers';

describe('store: a fleet of two nodes on one Redis', function () {
  this.timeout(30_000);
  let srv: Awaited<ReturnType<typeof startPlain>>;
  let a: Store;
  let b: Store;
  before(async () => {
    srv = await startPlain();
    a = openRedisStore({ url: srv.url });
    b = openRedisStore({ url: srv.url });
  });
  after(async () => {
    await a.close();
    await b.close();
    await srv.stop();
  });

  it('shares one rate-limit budget (TAS_CLIENT_RATE_LIMIT is fleet-wide)', async () => {
    const storeA: RateLimitStore = a;
    const limA = new RateLimiter(parseRate('5/minute'), storeA);
    const limB = new RateLimiter(parseRate('5/minute'), b);
    for (let i = 0; i < 5; i++) await (i % 2 ? limA : limB).check('2001:db8:1:2::/64');
    for (const lim of [limA, limB]) {
      const e = await lim.check('2001:db8:1:2::/64').then(() => undefined, (x: unknown) => x);
      assert.ok(e instanceof TasError && e.code === 'HTTP_RATE_LIMITED', 'the 6th request on either node is refused');
      assert.ok((e.retryAfterSeconds ?? 0) >= 1 && (e.retryAfterSeconds ?? 0) <= 60);
    }
    await limA.check('192.0.2.7'); // another client has its own budget
  });

  it('a nonce issued on one node is claimed exactly once across both', async () => {
    const na = new NonceService(a, { ttlSeconds: 60, maxOutstanding: 1000 });
    const nb = new NonceService(b, { ttlSeconds: 60, maxOutstanding: 1000 });
    const nonce = await na.issue();
    const wins = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? na : nb).claim(`"${nonce}"`, `req-${i}`)));
    assert.equal(wins.filter(Boolean).length, 1);
    const owner = `req-${wins.indexOf(true)}`;
    await (wins.indexOf(true) % 2 ? nb : na).release(nonce, owner); // transient failure on the other node
    assert.equal(await nb.claim(nonce, 'retry'), true, 'the retry may land on any node');
    await nb.consume(nonce, 'retry');
    assert.equal(await na.claim(nonce, 'replay'), false);
  });
});
