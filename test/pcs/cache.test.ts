/**
 * Intel collateral cache against a fake PCS serving GENUINE collateral (test/fixtures/tdx-vectors):
 * PCS paths and URL-encoded issuer-chain headers, memory → persistent → PCS with one upstream
 * request per piece, a restart with PCS down served from the store (re-verified), nothing cached
 * and PCS down → 503 + Retry-After, 429 + Retry-After honoured, a tampered stored piece refused and
 * fetched afresh, never used past nextUpdate, refreshed ahead of it, on the embedded store and Redis.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createCollateralCache } from '../../src/daemon/collateral';
import { TasError } from '../../src/errors';
import { clearChainCache } from '../../src/native';
import { cacheKeys, decodeIssuerChain, type CollateralCache } from '../../src/pcs';
import { openStore, type Store } from '../../src/store';
import { TDX_PINNED_ONLY } from '../../src/tdx/trust';
import { testConfig } from '../support/daemon';
import { FakePcs, vectorCollateral } from '../support/fake-pcs';
import { startPlain, type RedisNode } from '../support/redis';
import { TDX_VECTORS } from '../support/tdx-vectors';

const log = pino({ level: 'silent' });
const V = TDX_VECTORS.find((v) => v.name.startsWith('dcapqvl'))!;
const FMSPC = (V.expected.pck.ext.fmspc);
const AT = V.at * 1000;

function cacheOn(store: Store, pcs: FakePcs, now: () => number = () => AT, env: Record<string, string> = {}): CollateralCache {
  return createCollateralCache({
    cfg: testConfig({ TAS_PCS_BASE_URL: pcs.url, TAS_PCS_ROOT_CRL_URL: pcs.rootCrlUrl, ...env }), blobs: store, trust: () => TDX_PINNED_ONLY, now,
    fetcher: { perUrlIntervalMs: 20, attemptTimeoutMs: 500, connectTimeoutMs: 500 }, requestBudgetMs: 1500,
  }).cache;
}

async function unavailable(p: Promise<unknown>): Promise<TasError> {
  let err: TasError | undefined;
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof TasError, String(e));
    assert.equal(e.code, 'PCS_UNAVAILABLE', e.detail);
    assert.equal(e.status, 503);
    assert.ok((e.retryAfterSeconds ?? 0) >= 1);
    err = e;
    return true;
  });
  return err!;
}

for (const backend of ['embedded', 'redis'] as const) {
  describe(`pcs: collateral cache on the ${backend} store`, function () {
    this.timeout(30_000);
    let dir: string;
    let pcs: FakePcs;
    let redis: (RedisNode & { url: string }) | undefined;
    let stores: Store[] = [];
    /** open opens the test's store; `sub` names another, empty one (embedded: other directories). */
    const open = (sub = ''): Store => {
      const s = backend === 'redis'
        ? openStore(testConfig({ TAS_STORE: 'redis', TAS_REDIS_URL: redis!.url, TAS_REDIS_KEY_PREFIX: `pcs${Date.now()}${Math.random()}:`.replace('.', '') }), log)
        : openStore(testConfig({ TAS_STATE_DIR: join(dir, `state${sub}`), TAS_CACHE_DIR: join(dir, `cache${sub}`) }), log);
      stores.push(s);
      return s;
    };

    before(async () => {
      if (backend === 'redis') redis = await startPlain();
    });
    after(async () => {
      await redis?.stop();
    });
    beforeEach(async () => {
      clearChainCache();
      dir = mkdtempSync(join(tmpdir(), 'tas-pcs-'));
      pcs = await new FakePcs().start();
      pcs.serveCollateral(vectorCollateral(V.dir, FMSPC));
    });
    afterEach(async () => {
      await pcs.stop();
      for (const s of stores) await s.close();
      stores = [];
      rmSync(dir, { recursive: true, force: true });
    });

    it('fetches each piece once from the PCS v4 paths, then serves memory', async () => {
      const c = cacheOn(open(), pcs);
      const a = await c.collateral(FMSPC, 'platform', 'standard');
      assert.deepEqual(a.source, { rootCrl: 'pcs', tcbInfo: 'pcs', qeIdentity: 'pcs', pckCrl: 'pcs' });
      assert.deepEqual(a.tcbInfo.body, V.tcbInfoJson);
      assert.deepEqual(a.tcbInfo.chain!.toString(), V.tcbInfoChain.toString(), 'URL-decoded issuer chain');
      assert.deepEqual(a.pckCrl?.body, V.pckCrl);
      const b = await Promise.all([c.collateral(FMSPC, 'platform', 'standard'), c.collateral(FMSPC, 'platform', 'standard')]);
      assert.equal(b[0].source.tcbInfo, 'memory');
      assert.equal(pcs.total('/tdx/certification/v4/tcb'), 1);
      assert.equal(pcs.total('/tdx/certification/v4/qe/identity'), 1);
      assert.equal(pcs.total('/sgx/certification/v4/pckcrl'), 1);
      assert.equal(pcs.total('/IntelSGXRootCA.der'), 1);
      assert.equal(pcs.hits.get(`/tdx/certification/v4/tcb?fmspc=${FMSPC.toUpperCase()}&update=standard`), 1);
    });

    it('a PCS outage with collateral cached changes nothing (restart served from the store, re-verified)', async () => {
      const s = open();
      await cacheOn(s, pcs).collateral(FMSPC, 'platform', 'standard');
      await pcs.stop();
      const c2 = cacheOn(s, pcs);
      const r = await c2.collateral(FMSPC, 'platform', 'standard');
      assert.deepEqual(r.source, { rootCrl: 'persistent', tcbInfo: 'persistent', qeIdentity: 'persistent', pckCrl: 'persistent' });
      assert.equal(c2.stats.hits.persistent, 4);
    });

    it('nothing cached and PCS down: 503 PCS_UNAVAILABLE with Retry-After', async () => {
      await pcs.stop();
      await unavailable(cacheOn(open(), pcs).collateral(FMSPC, 'platform', 'standard'));
    });

    it('PCS 429 + Retry-After is honoured: one request, Retry-After passed on, no retry inside it', async () => {
      pcs.fault('/tdx/certification/v4/tcb', { status: 429, retryAfter: '120' });
      const e = await unavailable(cacheOn(open(), pcs).collateral(FMSPC, 'platform', 'standard'));
      assert.ok(e.retryAfterSeconds! >= 118 && e.retryAfterSeconds! <= 120, String(e.retryAfterSeconds));
      assert.equal(pcs.total('/tdx/certification/v4/tcb'), 1);
    });

    it('a 429 with a short Retry-After is waited out inside the request budget', async () => {
      pcs.fault('/tdx/certification/v4/qe', { status: 429, retryAfter: '1', times: 1 });
      const r = await cacheOn(open(), pcs).collateral(FMSPC, 'platform', 'standard');
      assert.equal(r.source.qeIdentity, 'pcs');
      assert.equal(pcs.total('/tdx/certification/v4/qe'), 2);
    });

    it('a tampered stored tcbInfo is refused and fetched afresh', async () => {
      const s = open();
      await cacheOn(s, pcs).collateral(FMSPC, 'platform', 'standard');
      const key = cacheKeys.tcbInfo(FMSPC, 'standard');
      const stored = JSON.parse((await s.getBlob(key))!.toString());
      stored.body = Buffer.from(V.tcbInfoJson.toString().replace('"UpToDate"', '"OutOfDate"')).toString('base64');
      await s.putBlob(key, Buffer.from(JSON.stringify(stored)));
      const c2 = cacheOn(s, pcs);
      const r = await c2.collateral(FMSPC, 'platform', 'standard');
      assert.equal(r.source.tcbInfo, 'pcs');
      assert.equal(c2.stats.rejectedPersistent, 1);
      assert.deepEqual(r.tcbInfo.body, V.tcbInfoJson);
    });

    it('never used past nextUpdate: memory entry dropped, stale PCS answer refused (503)', async () => {
      let now = AT;
      const c = cacheOn(open(), pcs, () => now);
      await c.collateral(FMSPC, 'platform', 'standard');
      const info = JSON.parse(V.tcbInfoJson.toString()).tcbInfo as { nextUpdate: string };
      now = Date.parse(info.nextUpdate) + 1000;
      const e = await unavailable(c.collateral(FMSPC, 'platform', 'standard'));
      assert.match(e.detail, /nextUpdate|CRL|stale/i);
    });

    it('collateral for another FMSPC is refused at load (the key promises the FMSPC)', async () => {
      pcs.serveCollateral({ ...vectorCollateral(V.dir, FMSPC), fmspc: '00806f050000' });
      await unavailable(cacheOn(open(), pcs).collateral('00806f050000', 'platform', 'standard'));
    });

    it('refreshes ahead of nextUpdate in the background, serving the current piece meanwhile', async () => {
      let now = AT;
      const c = cacheOn(open(), pcs, () => now);
      await c.collateral(FMSPC, 'platform', 'standard');
      const info = JSON.parse(V.tcbInfoJson.toString()).tcbInfo as { nextUpdate: string };
      now = Date.parse(info.nextUpdate) - 3600_000;
      const r = await c.collateral(FMSPC, 'platform', 'standard');
      assert.equal(r.source.tcbInfo, 'memory');
      assert.ok(c.stats.refreshes >= 1);
      await new Promise((res) => setTimeout(res, 300));
      assert.ok(pcs.total('/tdx/certification/v4/tcb') >= 2, 'a refresh went upstream');
    });

    it('TAS_CRL_FAIL_MODE: closed (default) makes an unobtainable CRL a 503; open passes it over with a note, never TCB Info', async () => {
      pcs.fault('/sgx/certification/v4/pckcrl', { status: 503, retryAfter: '120' });
      const e = await unavailable(cacheOn(open('a'), pcs).collateral(FMSPC, 'platform', 'standard'));
      assert.match(e.detail, /pckCrl/);
      await unavailable(cacheOn(open('b'), pcs, () => AT, { TAS_CRL_FAIL_MODE: 'closed' }).collateral(FMSPC, 'platform', 'standard'));

      pcs.fault('/IntelSGXRootCA.der', { status: 404 });
      const s = open('c');
      const r = await cacheOn(s, pcs, () => AT, { TAS_CRL_FAIL_MODE: 'open' }).collateral(FMSPC, 'platform', 'standard');
      assert.equal(r.pckCrl, undefined);
      assert.equal(r.rootCrl, undefined);
      assert.deepEqual(r.source, { rootCrl: 'none', tcbInfo: 'pcs', qeIdentity: 'pcs', pckCrl: 'none' });
      assert.equal(r.notes?.length, 2);
      assert.match(r.notes!.join('\n'), /no fresh Intel SGX Root CA CRL \(fail-open\): revocation by it not checked: .*404/);
      assert.match(r.notes!.join('\n'), /no fresh Intel PCK CRL \(ca=platform\) \(fail-open\)/);
      // TCB Info and the QE identity were still verified (signature, chain, FMSPC) without the root CRL.
      assert.deepEqual(r.tcbInfo.body, V.tcbInfoJson);

      // Once the CRLs can be had again they are used (and nothing is noted).
      pcs.clearFaults();
      const again = await cacheOn(s, pcs, () => AT, { TAS_CRL_FAIL_MODE: 'open' }).collateral(FMSPC, 'platform', 'standard');
      assert.deepEqual(again.pckCrl?.body, V.pckCrl);
      assert.equal(again.notes, undefined);

      pcs.fault('/tdx/certification/v4/tcb', { status: 503, retryAfter: '120' });
      await unavailable(cacheOn(open('d'), pcs, () => AT, { TAS_CRL_FAIL_MODE: 'open' }).collateral(FMSPC, 'platform', 'standard'));
    });

    it('TAS_CRL_FAIL_MODE=open: a stored CRL past its nextUpdate with PCS down is passed over, TCB Info still served', async () => {
      const s = open();
      let now = AT;
      await cacheOn(s, pcs, () => now).collateral(FMSPC, 'platform', 'standard');
      await pcs.stop();
      const idx = await cacheOn(s, pcs).index();
      // Every piece is listed (the pieces are stored concurrently; the index must not lose one).
      assert.deepEqual(Object.keys(idx).sort(), [cacheKeys.pckCrl('platform'), cacheKeys.qeIdentity('standard'), cacheKeys.rootCrl(), cacheKeys.tcbInfo(FMSPC, 'standard')].sort());
      const pckNext = idx[cacheKeys.pckCrl('platform')]!;
      now = Date.parse(pckNext) + 1000;
      const tcbNext = Date.parse((JSON.parse(V.tcbInfoJson.toString()).tcbInfo as { nextUpdate: string }).nextUpdate);
      if (now >= tcbNext) return assert.fail(`vector's PCK CRL outlives its TCB Info (${pckNext}); pick another vector`);
      await unavailable(cacheOn(s, pcs, () => now).collateral(FMSPC, 'platform', 'standard'));
      const r = await cacheOn(s, pcs, () => now, { TAS_CRL_FAIL_MODE: 'open' }).collateral(FMSPC, 'platform', 'standard');
      assert.equal(r.source.tcbInfo, 'persistent');
      assert.equal(r.pckCrl, undefined);
      assert.match(r.notes!.join('\n'), /PCK CRL.*fail-open.*(nextUpdate|stale|CRL)/i);
    });

    it('TAS_PCS_OFFLINE: never contacts PCS', async () => {
      await unavailable(cacheOn(open(), pcs, () => AT, { TAS_PCS_OFFLINE: 'true' }).collateral(FMSPC, 'platform', 'standard'));
      assert.equal(pcs.total(), 0);
    });
  });
}

describe('pcs: issuer chain header decoding', () => {
  it('URL-decodes PEM and refuses a header without a certificate', () => {
    const pem = V.tcbInfoChain.toString();
    assert.equal(decodeIssuerChain(encodeURIComponent(pem), 'x').toString(), pem);
    assert.throws(() => decodeIssuerChain('%E0%A4%A', 'x'));
    assert.throws(() => decodeIssuerChain('hello', 'x'));
    assert.throws(() => decodeIssuerChain(undefined, 'x'));
  });
});
