/**
 * NonceService over a real embedded store on a fake monotonic clock: value format, the settings
 * TAS_NONCE_EXPIRATION_SECONDS and TAS_NONCE_MAX_OUTSTANDING, format checks before the store is
 * touched, the attest port shape (claim/consume/release with an owner) and the take() handle.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AttestPorts } from '../../src/attest/ports';
import { TasError, toWire } from '../../src/errors';
import { NonceService, nonceDigest, parseNonce } from '../../src/nonce';
import { freshNonce } from '../../src/nonce/service';
import { EmbeddedStore, type NonceStore } from '../../src/store';
import { testConfig } from '../support/daemon';

/** CountingStore forwards to a real store and counts calls (to prove the store was not touched). */
class CountingStore implements NonceStore {
  calls = 0;
  constructor(private readonly inner: NonceStore) {}
  issue(n: string, t: number, m: number) {
    this.calls++;
    return this.inner.issue(n, t, m);
  }
  claim(n: string, o: string, l: number) {
    this.calls++;
    return this.inner.claim(n, o, l);
  }
  consume(n: string, o: string) {
    this.calls++;
    return this.inner.consume(n, o);
  }
  release(n: string, o: string) {
    this.calls++;
    return this.inner.release(n, o);
  }
  unconsume(n: string, o: string) {
    this.calls++;
    return this.inner.unconsume(n, o);
  }
  forgetConsumed(n: string, o: string) {
    this.calls++;
    this.inner.forgetConsumed(n, o);
  }
  count() {
    return this.inner.count();
  }
}

describe('nonce service', () => {
  let dir: string;
  let t: number;
  let store: CountingStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-nonce-'));
    t = 0;
    store = new CountingStore(new EmbeddedStore({ stateDir: dir, cacheDir: join(dir, 'c'), now: () => t }));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('issues 64 lowercase hex characters, all distinct', async () => {
    const svc = NonceService.fromConfig(testConfig({}), store);
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const n = await svc.issue();
      assert.match(n, /^[0-9a-f]{64}$/);
      seen.add(n);
    }
    assert.equal(seen.size, 200);
    assert.equal(await svc.outstanding(), 200);
  });

  it('nonces cut from the CSPRNG pool: distinct across many refills, every bit position varies', () => {
    // 128 nonces per refill: 5000 cross 39 refills. A pool handed out twice, or not refilled,
    // repeats; a byte range not taken from the CSPRNG (e.g. left zero after the wipe) stays fixed.
    const seen = new Set<string>();
    let or = Buffer.alloc(32);
    let and = Buffer.alloc(32, 0xff);
    for (let i = 0; i < 5000; i++) {
      const n = freshNonce();
      assert.match(n, /^[0-9a-f]{64}$/);
      seen.add(n);
      const b = Buffer.from(n, 'hex');
      or = Buffer.from(or.map((x, j) => x | b[j]!));
      and = Buffer.from(and.map((x, j) => x & b[j]!));
    }
    assert.equal(seen.size, 5000);
    assert.ok(or.equals(Buffer.alloc(32, 0xff)), 'every bit was 1 somewhere');
    assert.ok(and.equals(Buffer.alloc(32)), 'every bit was 0 somewhere');
  });

  it('TAS_NONCE_EXPIRATION_SECONDS sets the lifetime (default 120)', async () => {
    assert.equal(testConfig({}).get('nonce.ttl_seconds'), 120);
    const svc = NonceService.fromConfig(testConfig({ TAS_NONCE_EXPIRATION_SECONDS: '2' }), store);
    const n = await svc.issue();
    t += 1999;
    assert.equal(await svc.claim(n, 'o1'), true);
    await svc.release(n, 'o1');
    t += 2;
    assert.equal(await svc.claim(n, 'o2'), false, 'expired 2 s after issue, the release did not extend it');
    const dflt = NonceService.fromConfig(testConfig({}), store);
    const m = await dflt.issue();
    t += 119_999;
    assert.equal(await dflt.claim(m, 'o'), true);
  });

  it('TAS_NONCE_MAX_OUTSTANDING caps get_nonce with 503 NONCE_CAPACITY + Retry-After (default 100000)', async () => {
    assert.equal(testConfig({}).get('nonce.max_outstanding'), 100_000);
    const svc = NonceService.fromConfig(testConfig({ TAS_NONCE_MAX_OUTSTANDING: '3' }), store);
    const ns = [await svc.issue(), await svc.issue(), await svc.issue()];
    const e = await svc.issue().then(() => undefined, (x: unknown) => x);
    assert.ok(e instanceof TasError && e.code === 'NONCE_CAPACITY');
    const w = toWire(e);
    assert.equal(w.status, 503);
    assert.deepEqual(w.body, { error: 'Too many outstanding nonces' });
    assert.ok(Number(w.headers['retry-after']) >= 1);
    const c = await svc.take(ns[0]);
    await c.consume();
    assert.match(await svc.issue(), /^[0-9a-f]{64}$/, 'a consumed nonce frees its slot');
    t += 120_001;
    assert.match(await svc.issue(), /^[0-9a-f]{64}$/);
    assert.equal(await svc.outstanding(), 1, 'expired nonces do not count');
  });

  it('parses JSON-quoted nonces and refuses malformed ones with 400 before touching the store', async () => {
    const svc = NonceService.fromConfig(testConfig({}), store);
    const n = await svc.issue();
    assert.equal(parseNonce(`"${n}"`), n);
    assert.equal(parseNonce(n), n);
    const before = store.calls;
    for (const bad of [n.toUpperCase(), n.slice(1), `${n}0`, `"${n}`, `""${n}""`, `policy:x`, '*', '', `"${n.slice(2)}"`, 'a'.repeat(10_000), 42, null, undefined, {}]) {
      for (const call of [() => svc.claim(bad, 'o'), () => svc.take(bad), () => svc.consume(bad as string, 'o'), () => svc.release(bad as string, 'o')]) {
        const e = await call().then(() => undefined, (x: unknown) => x);
        assert.ok(e instanceof TasError && e.code === 'NONCE_FORMAT', JSON.stringify(bad));
        assert.equal(toWire(e).status, 400);
        assert.equal(toWire(e).body.error, 'Invalid nonce format');
      }
    }
    assert.equal(store.calls, before, 'the store saw none of them');
  });

  it('claim/consume/release with an owner match the attest pipeline port', async () => {
    const svc = NonceService.fromConfig(testConfig({}), store);
    const port: AttestPorts['nonces'] = svc; // compile-time: the composition root plugs it in as is
    const n = await svc.issue();
    assert.equal(await port.claim(n, 'req-1'), true);
    assert.equal(await port.claim(n, 'req-2'), false);
    await port.release(n, 'req-1');
    assert.equal(await port.claim(n, 'req-2'), true);
    await port.consume(n, 'req-2');
    assert.equal(await port.claim(n, 'req-3'), false);
  });

  it('take() hands out one claim; a second take is NONCE_INVALID (401)', async () => {
    const svc = NonceService.fromConfig(testConfig({}), store, { leaseMs: 1000 });
    const n = await svc.issue();
    const c = await svc.take(`"${n}"`);
    assert.equal(c.nonce, n);
    const e = await svc.take(n).then(() => undefined, (x: unknown) => x);
    assert.ok(e instanceof TasError && e.code === 'NONCE_INVALID');
    assert.deepEqual(toWire(e).body, { error: 'Invalid or expired nonce' });
    assert.equal(toWire(e).status, 401);
    assert.ok(!e.detail.includes(n), 'the detail names a digest, not the nonce');
    assert.ok(e.detail.includes(nonceDigest(n)));
    assert.equal(await c.release(), true);
    t += 1001;
    const again = await svc.take(n);
    assert.equal(await c.consume(), false, 'a released claim cannot be consumed');
    assert.equal(await again.consume(), true);
  });
});
