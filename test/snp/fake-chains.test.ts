/**
 * The verifier on fake AMD chains (test/support/fake-amd): all three products and both signer kinds
 * verify once the fake ARK is an extra anchor; AMD's pinned roots alone never trust them; and the
 * certificate↔report binding rules fail with precise reasons.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnpVerifier, loadSnpTrust, peekReport, type SnpEvidence, type SnpTrust } from '../../src/snp';
import { TasError } from '../../src/errors';
import { FakeAmd, PRODUCTS, DEFAULT_TCB, newLeafKey, type Product } from '../support/fake-amd';

const AT = new Date('2026-06-01T00:00:00Z');

async function failure(p: Promise<unknown>): Promise<{ code: string; reason: string }> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof TasError, `expected TasError, got ${String(e)}`);
    return { code: e.code, reason: e.reason };
  }
  assert.fail('expected a rejection');
}

describe('snp: fake AMD chains', function () {
  this.timeout(120_000); // first run may generate the fake CA keys
  let kits: Record<Product, FakeAmd>;
  let dir: string;
  let trust: SnpTrust;
  let v: SnpVerifier;
  before(async () => {
    kits = await FakeAmd.all();
    dir = mkdtempSync(join(tmpdir(), 'snp-fake-'));
    for (const k of Object.values(kits)) await k.writeTrustDir(join(dir, 'arks'));
    trust = loadSnpTrust({ extraTrustDir: join(dir, 'arks') });
    v = new SnpVerifier({ trust });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const ev = (k: FakeAmd, over: Partial<SnpEvidence> & { report: Buffer }): SnpEvidence =>
    ({ vek: k.vcekDer(), intermediate: k.askDer, at: AT, ...over });

  for (const p of PRODUCTS) {
    it(`${p}: VCEK-signed report verifies with the fake ARK as extra anchor`, async () => {
      const k = kits[p];
      const rd = Buffer.alloc(64, 0x5a);
      const res = await v.verify(ev(k, { report: k.signReport({ reportData: rd }) }));
      assert.equal(res.product, p);
      assert.equal(res.anchorIsTestRoot, true);
      assert.equal(res.claims.report_data, rd.toString('hex'));
      assert.equal(res.claims.signer.kind, 'VCEK');
      assert.deepEqual(res.claims.reported_tcb, { ...DEFAULT_TCB[p] });
      assert.equal(res.claims.chip_id, k.chipId.toString('hex'));
      assert.equal(res.claims.chip_id_masked, false);
    });

    it(`${p}: VLEK-signed report verifies (cspID claim, no chip binding)`, async () => {
      const k = kits[p];
      const res = await v.verify({ report: k.signReport({ signingKey: 'VLEK', chipId: Buffer.alloc(64) }), vek: k.vlekDer({ cspId: 'CN=csp.test' }), intermediate: k.asvkDer, at: AT });
      assert.deepEqual(res.claims.signer, { kind: 'VLEK', csp_id: 'CN=csp.test' });
      assert.equal(res.claims.key_info.signing_key, 1);
      assert.equal(res.claims.chip_id_masked, true);
    });

    it(`${p}: AMD's pinned roots alone do not trust the fake chain`, async () => {
      const k = kits[p];
      const r = await failure(new SnpVerifier().verify(ev(k, { report: k.signReport() })));
      assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_CHAIN' });
    });

    it(`${p}: a changed SPL in the VCEK is a TCB mismatch`, async () => {
      const k = kits[p];
      const tcb = { ...DEFAULT_TCB[p], snp: DEFAULT_TCB[p].snp + 1 };
      const r = await failure(v.verify(ev(k, { report: k.signReport(), vek: k.vcekDer({ tcb }) })));
      assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_TCB_MISMATCH' });
    });

    it(`${p}: CHIP_ID different from the VCEK hwID is refused`, async () => {
      const k = kits[p];
      const other = Buffer.from(k.chipId);
      other[0]! ^= 0xff;
      const r = await failure(v.verify(ev(k, { report: k.signReport({ chipId: other }) })));
      assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_CHIP_ID_MISMATCH' });
    });

    it(`${p}: masked CHIP_ID verifies, says so, and names the chip by the VCEK hwID (never by its zeros)`, async () => {
      const k = kits[p];
      const res = await v.verify(ev(k, { report: k.signReport({ chipId: Buffer.alloc(64), maskChipKey: true }) }));
      assert.equal(res.claims.chip_id_masked, true);
      assert.equal(res.claims.key_info.mask_chip_key, true);
      assert.match(res.checks.find((c) => c.name === 'chip_id_matches_hwid')!.detail, /masked.*VCEK hwID/);
      const hw = k.hwIdFor();
      assert.equal(res.claims.signer.hw_id, hw.toString('hex'));
      const layout = Buffer.alloc(64);
      hw.copy(layout);
      assert.equal(res.claims.chip_id, layout.toString('hex'), 'chip_id is the hwID in CHIP_ID layout');
      assert.equal(res.claims.chip_id, k.chipId.toString('hex').slice(0, hw.length * 2).padEnd(128, '0'));
    });

    it(`${p}: a VCEK certifying more than CURRENT_TCB is refused`, async () => {
      const k = kits[p];
      const cur = { ...DEFAULT_TCB[p], microcode: DEFAULT_TCB[p].microcode - 1 };
      const r = await failure(v.verify(ev(k, { report: k.signReport({ currentTcb: cur }) })));
      assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_TCB_ABOVE_CURRENT' });
    });

    it(`${p}: a report signed by another key fails the signature`, async () => {
      const k = kits[p];
      const r = await failure(v.verify(ev(k, { report: k.signReport({}, await newLeafKey()) })));
      assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_REPORT_SIGNATURE' });
    });

    it(`${p}: SIGNING_KEY 7 (unsigned) is refused`, async () => {
      const k = kits[p];
      const r = await failure(v.verify(ev(k, { report: k.signReport({ signingKey: 7 }) })));
      assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_SIGNER_KIND' });
    });

    it(`${p}: VCEK report presented with a VLEK is refused`, async () => {
      const k = kits[p];
      const r = await failure(v.verify({ report: k.signReport(), vek: k.vlekDer(), intermediate: k.asvkDer, at: AT }));
      assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_SIGNER_KIND' });
    });
  }

  for (const version of [2, 3, 4, 5]) {
    it(`Genoa report version ${version} verifies (v2 with TAS_SNP_V2_PRODUCT)`, async () => {
      const k = kits.Genoa;
      const res = await new SnpVerifier({ trust, v2Product: 'Genoa' }).verify(ev(k, { report: k.signReport({ version, launchMitVector: 3, currentMitVector: 7 }) }));
      assert.equal(res.claims.version, version);
      assert.equal(res.claims.cpuid === undefined, version === 2);
      assert.equal(res.claims.current_mit_vector, version >= 5 ? 7 : undefined);
    });
  }

  it('a v3 report with all-zero CPUID is treated like v2 (configured product or refused)', async () => {
    const k = kits.Genoa;
    const report = k.signReport({ version: 3, cpuid: { family: 0, model: 0, stepping: 0 } });
    assert.deepEqual(await failure(v.verify(ev(k, { report }))), { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_V2_PRODUCT_UNSET' });
    const res = await new SnpVerifier({ trust, v2Product: 'Genoa' }).verify(ev(k, { report }));
    assert.equal(res.productSource, 'config');
  });

  it('Turin report version 2 is refused even when the product is named', async () => {
    const k = kits.Turin;
    const r = await failure(v.verify(ev(k, { report: k.signReport({ version: 2 }), product: 'Turin' })));
    assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_V2_TURIN' });
  });

  it('Turin: CHIP_ID bytes 8..63 must be zero', async () => {
    const k = kits.Turin;
    const chip = Buffer.from(k.chipId);
    chip[40] = 1;
    const r = await failure(v.verify(ev(k, { report: k.signReport({ chipId: chip }) })));
    assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_CHIP_ID_MISMATCH' });
  });

  it('Milan: a reserved TCB byte (spl_5) that differs from the VCEK is a TCB mismatch', async () => {
    const k = kits.Milan;
    const r = await failure(v.verify(ev(k, { report: k.signReport({ reportedTcb: { ...DEFAULT_TCB.Milan, spl5: 1 } }) })));
    assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_TCB_MISMATCH' });
  });

  it('a Milan chain presented for a Genoa report fails (issuing chain product != report product)', async () => {
    const g = kits.Genoa;
    const m = kits.Milan;
    const r = await failure(v.verify({ report: g.signReport(), vek: m.vcekDer({ chipId: g.chipId, tcb: DEFAULT_TCB.Genoa }), intermediate: m.askDer, at: AT }));
    assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_CHAIN' });
  });

  it('Venice CPUID is refused, an unknown family too', async () => {
    const k = kits.Turin;
    const a = await failure(v.verify(ev(k, { report: k.signReport({ cpuid: { family: 0x1a, model: 0x50, stepping: 0 } }) })));
    assert.deepEqual(a, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_PRODUCT_UNSUPPORTED' });
    const b = await failure(v.verify(ev(k, { report: k.signReport({ cpuid: { family: 0x17, model: 0x31, stepping: 0 } }) })));
    assert.deepEqual(b, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_PRODUCT_UNKNOWN' });
  });

  it('a CRL listing the ASK rejects; a fresh empty CRL passes; a stale CRL rejects', async () => {
    const k = kits.Genoa;
    const day = 86400_000;
    const fresh = k.crlDer({ thisUpdate: new Date(AT.getTime() - day), nextUpdate: new Date(AT.getTime() + day) });
    const ok = await v.verify(ev(k, { report: k.signReport(), crl: fresh }));
    assert.ok(ok.checks.length > 0);
    const revoked = k.crlDer({ thisUpdate: new Date(AT.getTime() - day), nextUpdate: new Date(AT.getTime() + day), revoked: [0x20002] });
    assert.deepEqual(await failure(v.verify(ev(k, { report: k.signReport(), crl: revoked }))), { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_REVOKED' });
    const stale = k.crlDer({ thisUpdate: new Date(AT.getTime() - 10 * day), nextUpdate: new Date(AT.getTime() - 5 * day) });
    assert.deepEqual(await failure(v.verify(ev(k, { report: k.signReport(), crl: stale }))), { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_CRL_STALE' });
  });

  it('intermediates from the extra trust dir are offered when the evidence has none', async () => {
    const k = kits.Turin;
    const d = join(dir, 'with-ask');
    await k.writeTrustDir(d, { intermediates: true });
    const res = await new SnpVerifier({ trust: loadSnpTrust({ extraTrustDir: d }) }).verify({ report: k.signReport(), vek: k.vcekDer(), at: AT });
    assert.equal(res.product, 'Turin');
    // Without the ASK in the directory the pinned (genuine) ASK is tried and cannot chain.
    const r = await failure(v.verify({ report: k.signReport(), vek: k.vcekDer(), at: AT }));
    assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_CHAIN' });
  });

  it('peekReport gives the KDS hwID (8 bytes on Turin) and never one for a masked CHIP_ID', () => {
    const t = peekReport(kits.Turin.signReport());
    assert.equal(t.product, 'Turin');
    assert.equal(t.hwIdForKds, kits.Turin.chipId.subarray(0, 8).toString('hex'));
    assert.equal(t.reportedTcb?.fmc, 1);
    const g = peekReport(kits.Genoa.signReport());
    assert.equal(g.hwIdForKds, kits.Genoa.chipId.toString('hex'));
    assert.equal(g.hwIdForKds!.length, 128);
    assert.equal(g.reportedTcb?.snp, DEFAULT_TCB.Genoa.snp);
    const m = peekReport(kits.Genoa.signReport({ chipId: Buffer.alloc(64) }));
    assert.equal(m.chipIdMasked, true);
    assert.equal(m.hwIdForKds, undefined);
    const vl = peekReport(kits.Milan.signReport({ signingKey: 'VLEK' }));
    assert.equal(vl.signingKey, 'VLEK');
    assert.equal(vl.hwIdForKds, undefined);
    const v2 = peekReport(kits.Milan.signReport({ version: 2 }));
    assert.equal(v2.product, undefined);
    assert.equal(v2.productError?.reason, 'SNP_ERR_V2_PRODUCT_UNSET');
    assert.equal(peekReport(kits.Milan.signReport({ version: 2 }), { v2Product: 'Milan' }).product, 'Milan');
    assert.throws(() => peekReport(Buffer.alloc(100)), (e: unknown) => e instanceof TasError && e.code === 'TEE_EVIDENCE_MALFORMED');
  });

  it('the report is parsed once: peekReport\'s parse is reused, and only for the very bytes it parsed (the signature covers what the claims say)', async () => {
    const k = kits.Genoa;
    const report = k.signReport({ reportData: Buffer.alloc(64, 0x11) });
    const peek = peekReport(report);
    const again = await v.verify(ev(k, { report }));
    const once = await v.verify(ev(k, { report, parsed: peek.parsed }));
    assert.deepEqual(once.claims, again.claims);
    assert.deepEqual(once.checks, again.checks);
    // The caller's buffer changed after peek (REPORT_DATA flipped): the peek's parse is not used
    // for other bytes; the changed bytes are parsed and their signature fails.
    const changed = Buffer.from(report);
    changed[0x50] ^= 0xff;
    const r = await failure(v.verify(ev(k, { report: changed, parsed: peek.parsed })));
    assert.deepEqual(r, { code: 'TEE_VERIFICATION_FAILED', reason: 'SNP_ERR_REPORT_SIGNATURE' });
    // peek keeps its own copy: changing the caller's buffer does not change the parsed bytes.
    const mine = Buffer.from(report);
    const p2 = peekReport(mine);
    mine[0x50] ^= 0xff;
    assert.ok(p2.parsed.bytes.equals(report));
    const other = k.signReport({ reportData: Buffer.alloc(64, 0x22) });
    const res = await v.verify(ev(k, { report: other, parsed: peek.parsed }));
    assert.equal(res.claims.report_data, Buffer.alloc(64, 0x22).toString('hex'), 'a parse of other bytes is ignored');
  });
});
