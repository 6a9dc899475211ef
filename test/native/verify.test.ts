/**
 * verify / verifyChain / parseVek / certInfo against the genuine vectors, and derived negatives
 * (each rejected with its precise native code). Time is always pinned inside the vectors'
 * validity; the VLEK vector expired on 2025-12-10.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { verify, verifyChain, parseVek, certInfo, clearChainCache, chainCacheSize, opensslVersion, type Product } from '../../src/native/index.js';
import { VECTORS, vector, input, mutate, expectCode, root } from './vectors.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const pemToDer = (pem: Buffer): Buffer => Buffer.from(pem.toString('latin1').replace(/-----[^-]+-----|\s/g, ''), 'base64');

describe('native verify (genuine vectors)', () => {
  beforeEach(() => clearChainCache());

  it('runs on the OpenSSL of the running node', () => {
    assert.equal(opensslVersion().split(' ')[1], process.versions.openssl);
  });

  for (const v of VECTORS) {
    it(`${v.name}: chain + signature verify at a pinned time, certificate fields equal expected.json`, async () => {
      assert.equal(v.expected['expected_chain_valid'], true);
      assert.equal(v.expected['expected_signature_valid'], true);
      const res = await verify(input(v));
      assert.equal(res.chainCached, false);
      assert.equal(res.report.version, v.expected['report_version']);
      assert.equal(res.vek.kind, v.kind);
      assert.equal(res.anchorSha256.toString('hex'), sha256(pemToDer(root(v.product, 'ark.pem'))));
      assert.deepEqual(res.checks.map((c) => c.name), [
        'ark_self_signed', 'intermediate_signed_by_ark', 'vek_signed_by_intermediate', 'distinguished_names',
        'ca_constraints', 'vek_extensions', 'validity', 'report_signature',
      ]);
      assert.ok(res.checks.every((c) => c.ok));
      // Certificate fields against expected.json.
      const x = v.expected.vek_extensions;
      const vek = res.vek;
      assert.equal(vek.structVersion, x['structVersion']);
      assert.equal(vek.productName, x['productName']);
      assert.equal(vek.spl.bl, x['blSPL']);
      assert.equal(vek.spl.tee, x['teeSPL']);
      assert.equal(vek.spl.snp, x['snpSPL']);
      assert.equal(vek.spl.ucode, x['ucodeSPL']);
      assert.equal(vek.spl.spl4, x['spl_4']);
      assert.equal(vek.spl.spl5, x['spl_5']);
      assert.equal(vek.spl.spl6, x['spl_6']);
      assert.equal(vek.spl.spl7, x['spl_7']);
      assert.equal(vek.spl.fmc, x['fmcSPL']);
      assert.equal(vek.hwId?.toString('hex'), x['hwID']);
      assert.equal(vek.cspId, x['cspID']);
      assert.equal(vek.serialHex, String(v.expected['vek_serial']));
      assert.equal(vek.notBefore.getTime(), Date.parse(v.expected.vek_not_before));
      assert.equal(vek.notAfter.getTime(), Date.parse(v.expected.vek_not_after));
      assert.equal(vek.subjectCN, v.kind === 'VCEK' ? 'SEV-VCEK' : 'SEV-VLEK');
      assert.deepEqual(parseVek(v.leaf), vek);
      // The second run comes from this instance's cache and returns the same verdict.
      const again = await verify(input(v));
      assert.equal(again.chainCached, true);
      assert.deepEqual(again.vek, vek);
    });
  }

  it('omitReport (the per-request form): no report, and the VEK described once per leaf equals the full form, every leaf its own', async () => {
    // Every vector in turn, twice round: the description kept by leaf SHA-256 must follow the leaf
    // actually verified, never the one verified before it.
    for (let round = 0; round < 2; round++) {
      for (const v of VECTORS) {
        const full = await verify(input(v));
        const lean = await verify({ ...input(v), omitReport: true });
        assert.equal((lean as { report?: unknown }).report, undefined, `${v.name}: no report`);
        assert.deepEqual(lean.vek, full.vek, `${v.name}: the same VEK description`);
        assert.equal(lean.vek.sha256.toString('hex'), sha256(v.leaf.toString('latin1').startsWith('-----') ? pemToDer(v.leaf) : v.leaf), `${v.name}: the leaf verified`);
        assert.ok(Object.isFrozen(lean.vek), 'shared descriptions are frozen');
        assert.deepEqual(lean.checks, full.checks);
        for (const k of ['anchorSha256', 'intermediateSha256', 'intermediateSerialHex', 'crl'] as const) assert.deepEqual(lean[k], full[k], `${v.name}: ${k}`);
        assert.equal(lean.chainCached, true, `${v.name}: the full call cached the chain`);
        assert.deepEqual((await verify({ ...input(v), omitReport: true, omitChecks: true })).checks, [], `${v.name}: omitChecks`);
      }
    }
  });

  it('certInfo identifies ARK/ASK (DER and PEM give the same digest)', () => {
    const ark = root('Milan', 'ark.pem');
    const a = certInfo(ark);
    const b = certInfo(pemToDer(ark));
    assert.equal(a.subjectCN, 'ARK-Milan');
    assert.equal(a.issuerCN, 'ARK-Milan');
    assert.deepEqual(a.sha256, b.sha256);
    assert.equal(a.sha256.toString('hex'), sha256(pemToDer(ark)));
    assert.deepEqual(a.der, pemToDer(ark));
    assert.equal(certInfo(root('Turin', 'asvk.pem')).subjectCN, 'SEV-VLEK-Turin');
  });

  it('flipped signed byte fails the signature (SNP_ERR_REPORT_SIGNATURE), also with a cached chain', async () => {
    for (const v of VECTORS) {
      await verify(input(v)); // warm the cache
      for (const off of [0x50, 0x90, 0x180, 0x1a0, 0x2a0]) {
        const bad = mutate(v.report, (b) => (b[off] ^= 0x01));
        await expectCode(verify(input(v, { report: bad })), 'SNP_ERR_REPORT_SIGNATURE');
      }
    }
  });

  it('malformed reports are rejected before any crypto (size, unsigned tail, version, algo)', async () => {
    const v = vector('mstav-genoa-v3');
    await expectCode(verify(input(v, { report: v.report.subarray(0, 1183) })), 'SNP_ERR_REPORT_SIZE');
    await expectCode(verify(input(v, { report: Buffer.concat([v.report, Buffer.alloc(1)]) })), 'SNP_ERR_REPORT_SIZE');
    await expectCode(verify(input(v, { report: mutate(v.report, (b) => (b[0x400] = 1)) })), 'SNP_ERR_MBZ');
    await expectCode(verify(input(v, { report: mutate(v.report, (b) => b.writeUInt32LE(6, 0)) })), 'SNP_ERR_REPORT_VERSION');
    await expectCode(verify(input(v, { report: mutate(v.report, (b) => b.writeUInt32LE(2, 0x34)) })), 'SNP_ERR_SIGNATURE_ALGO');
  });

  it('swapped product roots fail: foreign ARK (SNP_ERR_CHAIN) and wrong product name (SNP_ERR_CERT_DN)', async () => {
    const v = vector('mstav-milan-v3');
    await expectCode(verify(input(v, { anchors: [root('Genoa', 'ark.pem')] })), 'SNP_ERR_CHAIN');
    await expectCode(verify(input(v, { anchors: [root('Turin', 'ark.pem')] })), 'SNP_ERR_CHAIN');
    await expectCode(verify(input(v, { intermediate: root('Genoa', 'ask.pem'), anchors: [root('Genoa', 'ark.pem')] })), 'SNP_ERR_CHAIN');
    await expectCode(verify(input(v, { product: 'Genoa' })), 'SNP_ERR_CERT_DN');
    const t = vector('mstav-turin-v5');
    await expectCode(verify(input(t, { product: 'Milan' as Product })), 'SNP_ERR_CERT_DN');
    // Every ARK pinned at once still only accepts the right chain and reports which one anchored it.
    const all = (['Milan', 'Genoa', 'Turin'] as const).map((p) => root(p, 'ark.pem'));
    const ok = await verify(input(t, { anchors: all }));
    assert.equal(ok.anchorSha256.toString('hex'), sha256(pemToDer(root('Turin', 'ark.pem'))));
  });

  it('VCEK <-> VLEK kind swap fails with SNP_ERR_SIGNER_KIND', async () => {
    const vcek = vector('mstav-milan-v3');
    const vlek = vector('trustee-milan-v3-vlek');
    await expectCode(verify(input(vcek, { kind: 'VLEK' })), 'SNP_ERR_SIGNER_KIND');
    await expectCode(verify(input(vlek, { kind: 'VCEK' })), 'SNP_ERR_SIGNER_KIND');
    // VLEK chain supplied for a report whose SIGNING_KEY says VCEK, and vice versa
    await expectCode(verify(input(vlek, { report: vcek.report })), 'SNP_ERR_SIGNER_KIND');
    await expectCode(verify(input(vcek, { report: vlek.report })), 'SNP_ERR_SIGNER_KIND');
    // VLEK under the VCEK intermediate: right kind asked, wrong issuer
    await expectCode(verify(input(vlek, { intermediate: root('Milan', 'ask.pem'), report: vlek.report })), 'SNP_ERR_CHAIN');
    // unsigned report (SIGNING_KEY 7)
    await expectCode(verify(input(vcek, { report: mutate(vcek.report, (b) => b.writeUInt32LE(7 << 2, 0x48)) })), 'SNP_ERR_SIGNER_KIND');
  });

  it('a certificate from another chip/TCB signs nothing: Milan report with the other Milan VCEK', async () => {
    const a = vector('mstav-milan-v3');
    const b = vector('virtee-milan-v2');
    await expectCode(verify(input(a, { leaf: b.leaf, atSeconds: Math.max(a.atSeconds, b.atSeconds) })), 'SNP_ERR_REPORT_SIGNATURE');
  });

  it('expired certificate at a later time fails with SNP_ERR_CERT_EXPIRED, cached or not', async () => {
    const vlek = vector('trustee-milan-v3-vlek');
    const after = Math.floor(Date.parse('2025-12-11T00:00:00Z') / 1000);
    await expectCode(verify(input(vlek, { atSeconds: after })), 'SNP_ERR_CERT_EXPIRED');
    await expectCode(verify(input(vlek, { atSeconds: Math.floor(Date.parse('2024-12-01T00:00:00Z') / 1000) })), 'SNP_ERR_CERT_EXPIRED');
    assert.equal((await verify(input(vlek))).chainCached, false);
    assert.equal(chainCacheSize(), 1);
    await expectCode(verify(input(vlek, { atSeconds: after })), 'SNP_ERR_CERT_EXPIRED');
    const turin = vector('mstav-turin-v5');
    await verify(input(turin));
    await expectCode(verify(input(turin, { atSeconds: Math.floor(Date.parse('2033-02-06T00:00:00Z') / 1000) })), 'SNP_ERR_CERT_EXPIRED');
    clearChainCache();
    assert.equal(chainCacheSize(), 0);
  });

  it('verifyChain re-verifies a KDS certificate and caches it', async () => {
    const v = vector('mstav-genoa-v3');
    const { report: _r, ...chain } = input(v);
    const first = await verifyChain(chain);
    const second = await verifyChain(chain);
    assert.equal(first.cached, false);
    assert.equal(second.cached, true);
    assert.equal(first.vek.productName, 'Genoa');
    assert.equal(first.intermediateSerialHex, certInfo(v.intermediate).serialHex);
    await expectCode(verifyChain({ ...chain, leaf: Buffer.from('not a certificate') }), 'SNP_ERR_CERT_PARSE');
    await expectCode(verifyChain({ ...chain, product: 'Venice' as Product }), 'SNP_ERR_ARGUMENT');
    await expectCode(verifyChain({ ...chain, atSeconds: -1 }), 'SNP_ERR_ARGUMENT');
    await expectCode(verifyChain({ ...chain, anchors: [] }), 'SNP_ERR_ARGUMENT');
  });

  it('the chain cache is keyed by the exact bytes: same anchors in any order hit; another anchor set, another encoding or kind miss', async () => {
    clearChainCache();
    const g = vector('mstav-genoa-v3');
    const m = vector('mstav-milan-v3');
    const { report: _r, ...chain } = input(g);
    assert.equal((await verifyChain(chain)).cached, false);
    assert.equal((await verifyChain(chain)).cached, true);
    const two = [...chain.anchors, ...input(m).anchors];
    assert.equal((await verifyChain({ ...chain, anchors: two })).cached, false, 'a second anchor is another key');
    assert.equal((await verifyChain({ ...chain, anchors: [...two].reverse() })).cached, true, 'anchor order does not matter');
    const pem = Buffer.from(`-----BEGIN CERTIFICATE-----\n${pemToDer(chain.leaf).toString('base64')}\n-----END CERTIFICATE-----\n`);
    const asPem = await verifyChain({ ...chain, leaf: pem });
    assert.equal(asPem.cached, false, 'other bytes, other key (same verdict)');
    assert.equal(asPem.vek.serialHex, (await verifyChain(chain)).vek.serialHex);
    await expectCode(verifyChain({ ...chain, kind: 'VLEK' }), 'SNP_ERR_SIGNER_KIND');
    assert.equal(chainCacheSize(), 3);
  });

  it('the ARK itself or the ASK as a leaf is refused', async () => {
    const v = vector('mstav-milan-v3');
    await expectCode(verify(input(v, { leaf: v.intermediate })), 'SNP_ERR_CERT_SHAPE');
    await expectCode(verify(input(v, { leaf: v.ark })), 'SNP_ERR_CERT_SHAPE');
    await expectCode(verify(input(v, { intermediate: v.leaf })), 'SNP_ERR_CHAIN');
  });
});
