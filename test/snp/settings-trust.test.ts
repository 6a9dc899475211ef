/**
 * TAS_SNP_EXTRA_TRUST_DIR / TAS_SNP_V2_PRODUCT registration, and the trust status other modules
 * show: extra roots are flagged (testRoots), bad trust directories stop startup with the file named.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../src/config/all-settings';
import { loadConfig, settingByEnv } from '../../src/config';
import { Registry } from 'prom-client';
import { PINNED_ONLY, anchorsFor, loadSnpTrust, pinnedArk, registerTrustMetrics, registerVekTableMetric, snpTrustFromConfig, testRootsWarning, trustStatus, SnpVerifier, type SnpTrust } from '../../src/snp';
import { FakeAmd } from '../support/fake-amd';
import { clearChainCache, verify as nativeVerify, vekTables } from '../../src/native';
import { VECTORS, input } from '../native/vectors';

const KEYS = { TAS_API_KEY: 'c'.repeat(64), TAS_MANAGEMENT_API_KEY: 'm'.repeat(64) };

describe('snp: settings and trust status', function () {
  this.timeout(120_000);
  let dir: string;
  let kit: FakeAmd;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'snp-trust-'));
    kit = await FakeAmd.create({ product: 'Milan' });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('registers the PROTOCOL.md §5 names and paths', () => {
    const t = settingByEnv('TAS_SNP_EXTRA_TRUST_DIR')!;
    assert.equal(t.path, 'snp.extra_trust_dir');
    assert.equal(t.default, undefined);
    const v = settingByEnv('TAS_SNP_V2_PRODUCT')!;
    assert.equal(v.path, 'snp.v2_product');
    assert.equal(v.default, undefined);
    assert.deepEqual(v.values, ['Milan', 'Genoa']);
  });

  it('TAS_SNP_V2_PRODUCT accepts Milan/Genoa and refuses Turin or junk with the setting named', () => {
    assert.equal(loadConfig({ env: { ...KEYS, TAS_SNP_V2_PRODUCT: 'Genoa' } }).get('snp.v2_product'), 'Genoa');
    assert.equal(loadConfig({ env: { ...KEYS } }).get('snp.v2_product'), undefined);
    for (const bad of ['Turin', 'milan-b0']) {
      assert.throws(() => loadConfig({ env: { ...KEYS, TAS_SNP_V2_PRODUCT: bad } }), /TAS_SNP_V2_PRODUCT|snp\.v2_product/);
    }
  });

  it('no extra dir: pinned roots only, testRoots false, no warning', () => {
    const t = snpTrustFromConfig(loadConfig({ env: { ...KEYS } }));
    assert.equal(t, PINNED_ONLY);
    const s = trustStatus(t);
    assert.equal(s.testRoots, false);
    assert.equal(s.extraTrustDir, null);
    assert.equal(s.pinned.length, 3);
    assert.equal(s.pinned.find((p) => p.product === 'Genoa')!.arkSpkiSha256, '429a69c9422aa258ee4d8db5fcda9c6470ef15f8cd5a9cebd6cbc7d90b863831');
    assert.equal(testRootsWarning(t), undefined);
  });

  it('extra dir: fake ARK flagged as test root in status and warning; verifies fake evidence', async () => {
    const d = join(dir, 'arks');
    await kit.writeTrustDir(d);
    const t = snpTrustFromConfig(loadConfig({ env: { ...KEYS, TAS_SNP_EXTRA_TRUST_DIR: d } }));
    const s = trustStatus(t);
    assert.equal(s.testRoots, true);
    assert.equal(s.extraTrustDir, d);
    assert.equal(s.extraAnchors.length, 1);
    assert.equal(s.extraAnchors[0]!.product, 'Milan');
    assert.equal(s.extraAnchors[0]!.subjectCN, 'ARK-Milan');
    assert.match(testRootsWarning(t)!, /NON-AMD test root.*ARK-Milan/);
    const res = await new SnpVerifier({ trust: t }).verify({ report: kit.signReport(), vek: kit.vcekDer(), intermediate: kit.askDer, at: new Date('2026-06-01T00:00:00Z') });
    assert.equal(res.anchorIsTestRoot, true);
  });

  it('anchors per trust set and product are made once; a new trust set (SIGHUP) gets its own', async () => {
    const d = join(dir, 'arks-memo');
    await kit.writeTrustDir(d);
    const t = snpTrustFromConfig(loadConfig({ env: { ...KEYS, TAS_SNP_EXTRA_TRUST_DIR: d } }));
    const milan = anchorsFor(t, 'Milan');
    assert.equal(anchorsFor(t, 'Milan'), milan, 'same list on every request');
    assert.deepEqual(milan, [pinnedArk('Milan'), t.extra[0]!.der]);
    assert.ok(Object.isFrozen(milan), 'a shared list cannot be changed by a caller');
    assert.deepEqual(anchorsFor(t, 'Genoa'), [pinnedArk('Genoa')]);
    assert.deepEqual(anchorsFor(PINNED_ONLY, 'Milan'), [pinnedArk('Milan')]);
    // A reloaded trust set is a new object: its anchors are computed from it, not from the old one.
    const reloaded = snpTrustFromConfig(loadConfig({ env: { ...KEYS } }));
    assert.deepEqual(anchorsFor(reloaded, 'Milan'), [pinnedArk('Milan')]);
    assert.equal(pinnedArk('Milan'), pinnedArk('Milan'), 'pinned PEM bytes made once');
    assert.match(pinnedArk('Milan').toString('ascii'), /^-----BEGIN CERTIFICATE-----/);
  });

  it('the shared agent-fixtures ark-trust directory loads (three fake ARKs)', () => {
    const t = loadSnpTrust({ extraTrustDir: join(__dirname, '../fixtures/agent-fixtures/ark-trust') });
    assert.deepEqual(trustStatus(t).extraAnchors.map((a) => a.product).sort(), ['Genoa', 'Milan', 'Turin']);
  });

  it('bad trust dirs stop startup with the file named', () => {
    assert.throws(() => loadSnpTrust({ extraTrustDir: join(dir, 'absent') }), /does not exist/);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    assert.throws(() => loadSnpTrust({ extraTrustDir: empty }), /no \.pem/);
    const junk = join(dir, 'junk');
    mkdirSync(junk);
    writeFileSync(join(junk, 'x.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    assert.throws(() => loadSnpTrust({ extraTrustDir: junk }), /x\.pem: not a certificate/);
    const leaf = join(dir, 'leaf');
    mkdirSync(leaf);
    writeFileSync(join(leaf, 'vcek.der'), kit.vcekDer());
    assert.throws(() => loadSnpTrust({ extraTrustDir: leaf }), /vcek\.der: SEV-VCEK .* is not an ARK/);
    const onlyAsk = join(dir, 'ask-only');
    mkdirSync(onlyAsk);
    writeFileSync(join(onlyAsk, 'ask.pem'), kit.askPem);
    assert.throws(() => loadSnpTrust({ extraTrustDir: onlyAsk }), /no ARK certificate/);
  });
});

describe('snp: tas_test_roots_enabled metric', () => {
  it('follows the trust in force at scrape time', async () => {
    const reg = new Registry();
    let t: SnpTrust = PINNED_ONLY;
    registerTrustMetrics(reg, () => t);
    registerTrustMetrics(reg, () => t); // idempotent per registry
    assert.match(await reg.metrics(), /^tas_test_roots_enabled 0$/m);
    t = loadSnpTrust({ extraTrustDir: join(__dirname, '../fixtures/agent-fixtures/ark-trust') });
    assert.match(await reg.metrics(), /^tas_test_roots_enabled 1$/m);
  });

  it('tas_snp_vek_tables counts the VEK tables the addon holds at scrape time', async () => {
    const reg = new Registry();
    registerVekTableMetric(reg);
    clearChainCache();
    const base = vekTables().count; // worker threads' addon instances may hold some
    const scrape = async (): Promise<number> => Number(/^tas_snp_vek_tables (\d+)$/m.exec(await reg.metrics())?.[1]);
    assert.equal(await scrape(), base);
    const v = VECTORS[0]!;
    await nativeVerify(input(v));
    await nativeVerify(input(v)); // the key's second report builds its table
    assert.equal(await scrape(), base + 1);
    clearChainCache();
    assert.equal(await scrape(), base);
  });
});
