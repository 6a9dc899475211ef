/**
 * Certificate cache layers against a fake KDS serving the GENUINE certificates of the SNP vectors:
 * the KDS URL of every vector (Milan/Genoa; Turin with fmcSPL and the 8-byte hwid), DER and PEM
 * answers, memory -> persistent -> KDS, restart with KDS down, a tampered cached certificate,
 * two instances sharing one Redis, and CRL freshness with both TAS_CRL_FAIL_MODE values.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { createCertCache } from '../../src/daemon/certs';
import { TasError } from '../../src/errors';
import { crlPath, vcekPath, type CertCache } from '../../src/kds';
import { peekReport, loadSnpTrust, PINNED_ONLY, SnpVerifier, type SnpTrust } from '../../src/snp';
import { openStore, type Store } from '../../src/store';
import { FakeAmd } from '../support/fake-amd';
import { FakeKds } from '../support/fake-kds';
import { testConfig } from '../support/daemon';
import { startPlain, type RedisNode } from '../support/redis';

const VEC = resolve(__dirname, '../fixtures/snp-vectors');
const expected = JSON.parse(readFileSync(join(VEC, 'expected.json'), 'utf8')) as Record<string, {
  product: 'Milan' | 'Genoa' | 'Turin'; signing_key: string; report_version: number;
  vek_extensions: { hwID: string; blSPL: number; teeSPL: number; snpSPL: number; ucodeSPL: number; fmcSPL?: number };
}>;
const VCEK_VECTORS = Object.keys(expected).filter((k) => expected[k]!.signing_key === 'VCEK');
const AT = Date.parse('2027-01-01T00:00:00Z'); // inside every genuine VCEK's validity
const log = pino({ level: 'silent' });

function vekDer(name: string): { der: Buffer; pem: boolean } {
  const files = readdirSync(join(VEC, name));
  if (files.includes('vcek.der')) return { der: readFileSync(join(VEC, name, 'vcek.der')), pem: false };
  const pem = readFileSync(join(VEC, name, 'vcek.pem'), 'latin1');
  return { der: Buffer.from(pem.replace(/-----[^-]+-----|\s+/g, ''), 'base64'), pem: true };
}

/** expectedUrl is built from expected.json alone (not from our URL code). */
function expectedUrl(name: string): string {
  const e = expected[name]!;
  const x = e.vek_extensions;
  const q = e.product === 'Turin' ? `fmcSPL=${x.fmcSPL}&` : '';
  return `/vcek/v1/${e.product}/${x.hwID}?${q}blSPL=${x.blSPL}&teeSPL=${x.teeSPL}&snpSPL=${x.snpSPL}&ucodeSPL=${x.ucodeSPL}`;
}

function peekOf(name: string) {
  const e = expected[name]!;
  const p = peekReport(readFileSync(join(VEC, name, 'report.bin')), { v2Product: e.report_version === 2 ? e.product : undefined });
  return { product: p.product!, chip: Buffer.from(p.chipId, 'hex'), tcb: p.reportedTcb! };
}

function embedded(dir: string): Store {
  return openStore(testConfig({ TAS_STATE_DIR: join(dir, 'state'), TAS_CACHE_DIR: join(dir, 'cache') }), log);
}

function cacheOn(store: Store, kdsUrl: string, trust: SnpTrust = PINNED_ONLY, env: Record<string, string> = {}): CertCache {
  return createCertCache({
    cfg: testConfig({ TAS_KDS_BASE_URL: kdsUrl, ...env }), blobs: store, trust: () => trust, now: () => AT,
    fetcher: { perUrlIntervalMs: 20, attemptTimeoutMs: 500, connectTimeoutMs: 500 }, requestBudgetMs: 1500,
  }).cache;
}

async function rejects(p: Promise<unknown>): Promise<TasError> {
  const e = await p.then(() => assert.fail('expected a rejection'), (x: unknown) => x);
  assert.ok(e instanceof TasError, String(e));
  return e;
}

describe('kds: URLs and cache layers with genuine AMD certificates', function () {
  this.timeout(60_000);
  let dir: string;
  let kds: FakeKds;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tas-kdscache-'));
    kds = await new FakeKds().start();
    for (const name of VCEK_VECTORS) {
      const { der, pem } = vekDer(name);
      // The PEM vectors are served as PEM (KDS mirrors do), the others as DER.
      if (pem) kds.serve(expectedUrl(name), readFileSync(join(VEC, name, 'vcek.pem')), 'application/x-pem-file');
      else kds.serve(expectedUrl(name), der, 'application/pkix-cert');
    }
  });
  after(async () => {
    await kds.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const name of VCEK_VECTORS) {
    it(`${name}: the KDS URL is the one AMD serves (${expected[name]!.product})`, () => {
      const { product, chip, tcb } = peekOf(name);
      assert.equal(vcekPath(product, chip, tcb), expectedUrl(name));
      if (product === 'Turin') assert.match(vcekPath(product, chip, tcb), /\/Turin\/[0-9a-f]{16}\?fmcSPL=/);
    });
  }

  it('never builds a URL from a CHIP_ID that names no chip: a definitive 400, never 503 + Retry-After', () => {
    const refusal = (product: 'Milan' | 'Turin', chip: Buffer): TasError | undefined => {
      try {
        vcekPath(product, chip, { bootloader: 1, tee: 0, snp: 1, microcode: 1, fmc: 0 });
      } catch (x) {
        return x as TasError;
      }
      return undefined;
    };
    const masked = refusal('Milan', Buffer.alloc(64));
    assert.equal(masked?.reason, 'CHIP_ID_MASKED_NO_VCEK');
    assert.equal(masked?.status, 400);
    assert.equal(masked?.retryAfterSeconds, undefined);
    const turinTail = Buffer.alloc(64, 0);
    turinTail[0] = 1;
    turinTail[40] = 1;
    const malformed = refusal('Turin', turinTail);
    assert.equal(malformed?.reason, 'CHIP_ID_MALFORMED');
    assert.equal(malformed?.status, 400);
    turinTail[40] = 0;
    assert.equal(refusal('Turin', turinTail), undefined, 'a well-formed Turin chip id builds its URL');
  });

  it('provisions the genuine VLEK (trustee-milan-v3-vlek) under its product and TCB; the report verifies from the cache as from tee-certificates', async () => {
    const d = join(VEC, 'trustee-milan-v3-vlek');
    const e = expected['trustee-milan-v3-vlek'] as unknown as { vek_not_before: string; vek_not_after: string; reported_tcb: { bootloader: number; tee: number; snp: number; microcode: number } };
    const at = (Date.parse(e.vek_not_before) + Date.parse(e.vek_not_after)) / 2;
    const store = embedded(join(dir, 'vlek'));
    const cache = createCertCache({ cfg: testConfig({ TAS_KDS_BASE_URL: kds.url }), blobs: store, trust: () => PINNED_ONLY, now: () => at }).cache;
    const vlek = readFileSync(join(d, 'vlek.der'));
    assert.deepEqual(await cache.vleks('Milan', e.reported_tcb), [], 'nothing provisioned yet');
    const key = await cache.importVlek(vlek, 'Milan', e.reported_tcb);
    assert.match(key, /^vlek\/Milan\/bl4_tee0_snp24_ucode217\//);
    cache.clearMemory();
    const hits = await cache.vleks('Milan', e.reported_tcb);
    assert.equal(hits.length, 1);
    assert.ok(hits[0]!.leaf.equals(vlek));
    assert.deepEqual(await cache.vleks('Milan', { ...e.reported_tcb, microcode: 218 }), [], 'another TCB has none');
    const report = readFileSync(join(d, 'report.bin'));
    const fromCache = await new SnpVerifier().verify({ report, vek: hits[0]!.leaf, intermediate: hits[0]!.intermediate, at: new Date(at) });
    const fromEvidence = await new SnpVerifier().verify({ report, vek: vlek, at: new Date(at) });
    assert.equal(fromCache.claims.signer.kind, 'VLEK');
    assert.deepEqual(fromCache.claims, fromEvidence.claims);
    await store.close();
  });

  it('fetches each genuine VCEK once (DER and PEM), chains it to the pinned roots, then serves from memory', async () => {
    const store = embedded(join(dir, 'a'));
    const cache = cacheOn(store, kds.url);
    for (const name of VCEK_VECTORS) {
      const { product, chip, tcb } = peekOf(name);
      const first = await cache.vcek(product, chip, tcb);
      assert.equal(first.source, 'kds', name);
      assert.ok(first.leaf.equals(vekDer(name).der), `${name}: DER as served or converted from PEM`);
      assert.equal((await cache.vcek(product, chip, tcb)).source, 'memory');
      assert.equal(kds.total(expectedUrl(name).split('?')[0]), 1, name);
    }
    await store.close();
  });

  it('a restart serves from the persistent cache with KDS down', async () => {
    const d = join(dir, 'restart');
    const s1 = embedded(d);
    const c1 = cacheOn(s1, kds.url);
    const { product, chip, tcb } = peekOf('mstav-genoa-v3');
    assert.equal((await c1.vcek(product, chip, tcb)).source, 'kds');
    await s1.close();
    const s2 = embedded(d);
    const c2 = cacheOn(s2, 'http://127.0.0.1:9'); // nothing listens there
    assert.equal((await c2.vcek(product, chip, tcb)).source, 'persistent');
    await s2.close();
  });

  it('a tampered cached certificate is rejected (a poisoned cache cannot forge trust)', async () => {
    const d = join(dir, 'tamper');
    const s1 = embedded(d);
    const { product, chip, tcb } = peekOf('mstav-milan-v3');
    await cacheOn(s1, kds.url).vcek(product, chip, tcb);
    const blobs = join(d, 'cache', 'blobs');
    for (const f of readdirSync(blobs)) {
      const b = readFileSync(join(blobs, f));
      b[b.length - 40] ^= 0x01; // inside the certificate's signature
      writeFileSync(join(blobs, f), b);
    }
    const c2 = cacheOn(embedded(d), 'http://127.0.0.1:9');
    const e = await rejects(c2.vcek(product, chip, tcb));
    assert.equal(e.code, 'KDS_UNAVAILABLE');
    assert.equal(c2.stats.rejectedPersistent, 1);
    // with KDS back, the genuine certificate replaces the poisoned one
    const c3 = cacheOn(embedded(d), kds.url);
    assert.equal((await c3.vcek(product, chip, tcb)).source, 'kds');
  });

  it('a fake-root certificate is refused unless its root is explicitly trusted', async () => {
    const kit = await FakeAmd.create({ product: 'Genoa' });
    const chip = Buffer.alloc(64, 0x42);
    const tcb = { bootloader: 10, tee: 0, snp: 23, microcode: 84 };
    kds.serve(vcekPath('Genoa', chip, tcb), kit.vcekDer({ chipId: chip, tcb }));
    const store = embedded(join(dir, 'fake'));
    const e = await rejects(cacheOn(store, kds.url).vcek('Genoa', chip, tcb));
    assert.equal(e.code, 'TEE_VERIFICATION_FAILED');
    const trustDir = join(dir, 'fake-trust');
    await kit.writeTrustDir(trustDir);
    writeFileSync(join(trustDir, 'ask.pem'), kit.askPem);
    const c = createCertCache({ cfg: testConfig({ TAS_KDS_BASE_URL: kds.url }), blobs: store, trust: () => loadSnpTrust({ extraTrustDir: trustDir }), fetcher: { perUrlIntervalMs: 10 } }).cache;
    assert.equal((await c.vcek('Genoa', chip, tcb)).source, 'kds');
  });

  describe('two instances on one Redis share the cache', () => {
    let redis: RedisNode & { url: string };
    before(async () => (redis = await startPlain()));
    after(async () => redis?.stop());
    it('the second instance is served from Redis with KDS down', async () => {
      const env = { TAS_STORE: 'redis', TAS_REDIS_URL: redis.url };
      const s1 = openStore(testConfig(env), log);
      const s2 = openStore(testConfig(env), log);
      const { product, chip, tcb } = peekOf('mstav-turin-v5');
      assert.equal((await cacheOn(s1, kds.url).vcek(product, chip, tcb)).source, 'kds');
      assert.equal((await cacheOn(s2, 'http://127.0.0.1:9').vcek(product, chip, tcb)).source, 'persistent');
      await s1.close();
      await s2.close();
    });
  });

  describe('CRL freshness', () => {
    it('a stale CRL refuses with fail-closed and is passed over (with a note) with fail-open', async () => {
      const kit = await FakeAmd.create({ product: 'Milan' });
      const trustDir = join(dir, 'crl-trust');
      await kit.writeTrustDir(trustDir);
      const trust = loadSnpTrust({ extraTrustDir: trustDir });
      kds.serve(crlPath('Milan', 'VCEK'), kit.crlDer({ thisUpdate: new Date(AT - 30 * 86400_000), nextUpdate: new Date(AT - 86400_000) }));
      const store = embedded(join(dir, 'crl'));
      const closed = cacheOn(store, kds.url, trust);
      const e = await rejects(closed.crl('Milan', 'VCEK'));
      assert.equal(e.reason, 'CRL_UNAVAILABLE');
      assert.equal(e.status, 503);
      const open = cacheOn(store, kds.url, trust, { TAS_CRL_FAIL_MODE: 'open' });
      const r = await open.crl('Milan', 'VCEK');
      assert.equal(r.der, undefined);
      assert.match(r.note!, /fail-open/);
      // a fresh CRL is accepted and cached until its nextUpdate
      kds.serve(crlPath('Milan', 'VCEK'), kit.crlDer({ thisUpdate: new Date(AT - 3600_000), nextUpdate: new Date(AT + 86400_000) }));
      const fresh = cacheOn(store, kds.url, trust);
      assert.ok((await fresh.crl('Milan', 'VCEK')).der);
      const hits = kds.total(crlPath('Milan', 'VCEK'));
      assert.ok((await fresh.crl('Milan', 'VCEK')).der);
      assert.equal(kds.total(crlPath('Milan', 'VCEK')), hits, 'served from memory until nextUpdate');
      await store.close();
    });
  });
});

describe('kds: concurrent misses', function () {
  this.timeout(30_000);
  it('50 concurrent lookups of one uncached chip make exactly one upstream fetch and one stored entry', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tas-kdsconc-'));
    const kds = await new FakeKds().start();
    try {
      const { product, chip, tcb } = peekOf('mstav-genoa-v3');
      kds.serve(vcekPath(product, chip, tcb), vekDer('mstav-genoa-v3').der).fault('/vcek/', { delayMs: 200 });
      const store = embedded(dir);
      const cache = cacheOn(store, kds.url);
      const all = await Promise.all(Array.from({ length: 50 }, () => cache.vcek(product, chip, tcb)));
      assert.ok(all.every((r) => r.leaf.equals(all[0]!.leaf)));
      assert.equal(kds.total('/vcek/'), 1);
      assert.equal(cache.stats.misses, 1);
      await store.close();
    } finally {
      await kds.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
