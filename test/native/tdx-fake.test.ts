/**
 * The fake Intel DCAP kit (test/support/fake-intel) against the native verifier: fresh v4 and v5
 * quotes verify under the fake root (and only under it), every field a test sets comes back from
 * the parser, and the negatives that need re-signing are refused with their precise codes
 * (another root, revoked PCK / PCK CA / TCB Signing cert, body types 1 and 4 signed, wrong keys,
 * malformed SGX extensions, stale CRLs, expired collateral chains).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTdxQuote, peekTdxQuote, verifyTdxQuote, verifyTdxCollateral, clearChainCache, NativeError, type TdxVerifyInput } from '../../src/native/index.js';
import { FakeIntel, sgxExtension } from '../support/fake-intel/index.js';
import { INTEL_ROOT_DER, signedJson } from '../support/tdx-vectors.js';

const DAY = 86_400;

function input(kit: FakeIntel, quote: Buffer, over: Partial<TdxVerifyInput> = {}, c = kit.collateral()): TdxVerifyInput {
  return {
    quote,
    trustRoots: [INTEL_ROOT_DER, kit.root.der],
    rootCrl: c.rootCrl,
    pckCrl: c.pckCrl,
    tcbInfo: signedJson(c.tcbInfo, 'tcbInfo', c.tcbInfoChain),
    qeIdentity: signedJson(c.qeIdentity, 'enclaveIdentity', c.qeIdentityChain),
    at: kit.at,
    ...over,
  };
}

async function refused(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof NativeError, String(e));
    assert.equal(e.code, code, e.message);
    return true;
  });
}

describe('native TDX: fake Intel DCAP kit', () => {
  const kit = FakeIntel.create();
  beforeEach(() => clearChainCache());

  for (const [name, opts] of [
    ['v4 (TD 1.0)', { version: 4 }],
    ['v5 body type 3 (TD 1.5)', { version: 5, bodyType: 3 }],
    ['v5 body type 2 (TD 1.0)', { version: 5, bodyType: 2 }],
  ] as const) {
    it(`${name}: a fresh quote verifies and every chosen field parses back`, async () => {
      const reportData = randomBytes(64);
      const mrTd = randomBytes(48);
      const rtmr = [randomBytes(48), randomBytes(48), randomBytes(48), randomBytes(48)];
      const teeTcbSvn = Buffer.from('0b010400000000000000000000000000', 'hex');
      const quote = kit.quote({ ...opts, reportData, mrTd, rtmr, tdAttributes: 0x10000001n, teeTcbSvn, mrServiceTd: opts.version === 5 ? randomBytes(48) : undefined, padding: 70 });
      const r = await verifyTdxQuote(input(kit, quote));
      const q = r.quote;
      assert.equal(q.version, opts.version);
      assert.equal(q.bodyType, 'bodyType' in opts ? opts.bodyType : 2);
      assert.ok(q.body.reportData.equals(reportData));
      assert.ok(q.body.mrTd.equals(mrTd));
      q.body.rtmr.forEach((b, i) => assert.ok(b.equals(rtmr[i]!)));
      assert.equal(q.body.tdAttributesValue, 0x10000001n);
      assert.ok(q.body.teeTcbSvn.equals(teeTcbSvn));
      assert.equal(q.trailingBytes, 70);
      assert.equal(q.qeReport.isvSvn, 7);
      assert.equal(r.pck.caType, 'platform');
      assert.equal(r.pck.sgx.fmspc.toString('hex').toUpperCase(), kit.sgx.fmspc);
      assert.deepEqual(r.pck.sgx.tcbComponents, kit.sgx.tcbComponents);
      assert.equal(r.pck.sgx.pceSvn, kit.sgx.pceSvn);
      assert.ok(r.pck.sgx.cpuSvn.equals(kit.sgx.cpuSvn));
      assert.ok(r.pck.sgx.ppid.equals(kit.sgx.ppid));
      assert.ok(r.pck.sgx.platformInstanceId!.equals(kit.sgx.platformInstanceId!));
      assert.deepEqual(r.pck.sgx.configuration, { dynamicPlatform: false, cachedKeys: true, smtEnabled: true });
      assert.equal(r.pck.leaf.serialHex, kit.pck.serialHex);
      assert.equal(r.tcbInfo.signer.serialHex, kit.tcbSigning.serialHex);
    });
  }

  it('the QE report is verified once per platform: a later quote with other TD fields only checks its own signature', async () => {
    const first = await verifyTdxQuote(input(kit, kit.quote({ reportData: randomBytes(64) })));
    const second = await verifyTdxQuote(input(kit, kit.quote({ version: 5, reportData: randomBytes(64) })));
    assert.deepEqual([first.qeReportCached, second.qeReportCached], [false, true]);
    // Other QE auth data is other bytes: verified afresh.
    const third = await verifyTdxQuote(input(kit, kit.quote({ qeAuthData: Buffer.from('other') })));
    assert.equal(third.qeReportCached, false);
  });

  it('any QE auth data length verifies (0, 1, 300 bytes), zero-valued included', async () => {
    for (const qeAuthData of [Buffer.alloc(0), Buffer.from([9]), randomBytes(300), Buffer.alloc(32)]) {
      await verifyTdxQuote(input(kit, kit.quote({ qeAuthData })));
    }
  });

  it('a PCK Processor CA platform verifies with the Processor CA CRL, not with a Platform CA CRL', async () => {
    const proc = FakeIntel.create({ caType: 'processor' });
    const quote = proc.quote({ version: 5 });
    assert.equal(peekTdxQuote(quote).caType, 'processor');
    const r = await verifyTdxQuote(input(proc, quote));
    assert.equal(r.pck.caType, 'processor');
    assert.equal(r.pck.ca.subjectCN, 'Intel SGX PCK Processor CA');
    await refused(verifyTdxQuote(input(proc, quote, { pckCrl: kit.pckCrl() })), 'TDX_ERR_CRL_SIGNATURE');
  });

  it('the genuine pinned root alone refuses a fake quote (TDX_ERR_ROOT_NOT_PINNED)', async () => {
    await refused(verifyTdxQuote(input(kit, kit.quote(), { trustRoots: [INTEL_ROOT_DER] })), 'TDX_ERR_ROOT_NOT_PINNED');
  });

  it('a PCK chain to another root (same names, other keys) is refused', async () => {
    const other = FakeIntel.create();
    await refused(verifyTdxQuote(input(kit, other.quote())), 'TDX_ERR_ROOT_NOT_PINNED');
    // Even when the other root is trusted, its quote cannot borrow this kit's CRLs.
    await refused(verifyTdxQuote(input(kit, other.quote(), { trustRoots: [kit.root.der, other.root.der] })), 'TDX_ERR_CRL_SIGNATURE');
  });

  it('a revoked PCK certificate is refused (TDX_ERR_REVOKED), also after the chain was cached', async () => {
    const quote = kit.quote();
    await verifyTdxQuote(input(kit, quote));
    const c = kit.collateral({ pckCrl: kit.pckCrl({ revoked: ['1234', kit.pck.serialHex] }) });
    await refused(verifyTdxQuote(input(kit, quote, {}, c)), 'TDX_ERR_REVOKED');
  });

  it('a revoked PCK CA or TCB Signing certificate (root CA CRL) is refused', async () => {
    const quote = kit.quote();
    await refused(verifyTdxQuote(input(kit, quote, {}, kit.collateral({ rootCrl: kit.rootCrl({ revoked: [kit.pckCa.serialHex] }) }))), 'TDX_ERR_REVOKED');
    await refused(verifyTdxQuote(input(kit, quote, {}, kit.collateral({ rootCrl: kit.rootCrl({ revoked: [kit.tcbSigning.serialHex] }) }))), 'TDX_ERR_REVOKED');
  });

  it('a CRL given as null (the caller\'s TAS_CRL_FAIL_MODE=open) is not checked and the result says so; undefined is refused', async () => {
    const quote = kit.quote();
    const revokedEverywhere = kit.collateral({ pckCrl: kit.pckCrl({ revoked: [kit.pck.serialHex] }), rootCrl: kit.rootCrl({ revoked: [kit.pckCa.serialHex] }) });
    const both = await verifyTdxQuote(input(kit, quote, { rootCrl: null, pckCrl: null }, revokedEverywhere));
    assert.equal(both.crls.root, undefined);
    assert.equal(both.crls.pck, undefined);
    assert.match(both.checks.find((c) => c.name === 'revocation')!.detail, /NOT CHECKED against the root CA CRL and Platform CA CRL/);
    const noPck = await verifyTdxQuote(input(kit, quote, { pckCrl: null }));
    assert.ok(noPck.crls.root!.nextUpdate.getTime() > Date.now());
    assert.match(noPck.checks.find((c) => c.name === 'revocation')!.detail, /NOT CHECKED against the Platform CA CRL \(/);
    // The CRL that is given still counts.
    await refused(verifyTdxQuote(input(kit, quote, { pckCrl: null }, revokedEverywhere)), 'TDX_ERR_REVOKED');
    await refused(verifyTdxQuote(input(kit, quote, { rootCrl: null }, revokedEverywhere)), 'TDX_ERR_REVOKED');
    await refused(verifyTdxQuote(input(kit, quote, { rootCrl: undefined as unknown as Buffer })), 'TDX_ERR_ARGUMENT');
    await refused(verifyTdxQuote(input(kit, quote, { pckCrl: undefined as unknown as Buffer })), 'TDX_ERR_ARGUMENT');
    // Collateral alone: the signed pieces verify without the root CA CRL.
    const c = kit.collateral();
    const r = await verifyTdxCollateral({ trustRoots: [kit.root.der], rootCrl: null, pckCrl: c.pckCrl, pckCrlChain: c.pckCrlChain, tcbInfo: signedJson(c.tcbInfo, 'tcbInfo', c.tcbInfoChain), at: kit.at });
    assert.equal(r.rootCrl, undefined);
    assert.ok(r.pckCrl && r.tcbInfo);
  });

  it('CRL windows: past nextUpdate or not yet valid → TDX_ERR_CRL_STALE; skew is honoured', async () => {
    const quote = kit.quote();
    const stale = kit.collateral({ pckCrl: kit.pckCrl({ thisUpdate: new Date(kit.now.getTime() - 40 * DAY * 1000), nextUpdate: new Date(kit.now.getTime() - 1000) }) });
    await refused(verifyTdxQuote(input(kit, quote, {}, stale)), 'TDX_ERR_CRL_STALE');
    const future = kit.collateral({ rootCrl: kit.rootCrl({ thisUpdate: new Date(kit.now.getTime() + 60_000) }) });
    await refused(verifyTdxQuote(input(kit, quote, {}, future)), 'TDX_ERR_CRL_STALE');
    await verifyTdxQuote(input(kit, quote, { crlSkewSeconds: 120 }, future));
  });

  it('v5 body types 1 and 4, signed by the attestation key, are still refused (TDX_ERR_BODY_TYPE)', () => {
    for (const bodyType of [1, 4, 0, 5]) {
      assert.throws(() => parseTdxQuote(kit.quote({ version: 5, bodyType })), (e: unknown) => e instanceof NativeError && e.code === 'TDX_ERR_BODY_TYPE');
    }
  });

  it('a quote signed by another key than the one the QE report commits to → TDX_ERR_QUOTE_SIGNATURE', async () => {
    const other = FakeIntel.create();
    await refused(verifyTdxQuote(input(kit, kit.quote({ signWith: other.attestationKey }))), 'TDX_ERR_QUOTE_SIGNATURE');
  });

  it('SGX extension missing, short, duplicated or with a bad value → TDX_ERR_SGX_EXT', async () => {
    const variants = [
      FakeIntel.create({ omitSgxExtension: true }),
      FakeIntel.create({ editSgxExtension: (p) => p.filter((_, i) => i !== 3) }), // no FMSPC
      FakeIntel.create({ editSgxExtension: (p) => [...p, p[3]!] }), // FMSPC twice
      FakeIntel.create({ sgx: { tcbComponents: [1, 2, 3] } }), // 3 of 16 components
      FakeIntel.create({ sgx: { fmspc: '90C06F00' } }), // 4-byte FMSPC
      FakeIntel.create({ sgx: { tcbComponents: [256, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] } }), // SVN > 255
    ];
    for (const v of variants) {
      await refused(verifyTdxQuote(input(v, v.quote())), 'TDX_ERR_SGX_EXT');
      assert.throws(() => peekTdxQuote(v.quote()), (e: unknown) => e instanceof NativeError && e.code === 'TDX_ERR_SGX_EXT');
    }
    // The encoder itself is sound: the default extension decodes (covered above) and is DER.
    assert.equal(sgxExtension(kit.sgx)[0], 0x30);
  });

  it('tcbInfo / QE identity: edited, re-serialised, or signed by the PCK key → signature codes', async () => {
    const quote = kit.quote();
    const c = kit.collateral();
    const tcb = signedJson(c.tcbInfo, 'tcbInfo', c.tcbInfoChain);
    const reserialised = Buffer.from(JSON.stringify(JSON.parse(tcb.bodyBytes.toString()), null, 2));
    await refused(verifyTdxQuote(input(kit, quote, { tcbInfo: { ...tcb, bodyBytes: reserialised } })), 'TDX_ERR_TCB_INFO_SIGNATURE');
    const edited = Buffer.from(tcb.bodyBytes.toString().replace('"UpToDate"', '"OutOfDate"'));
    await refused(verifyTdxQuote(input(kit, quote, { tcbInfo: { ...tcb, bodyBytes: edited } })), 'TDX_ERR_TCB_INFO_SIGNATURE');
    const qe = signedJson(c.qeIdentity, 'enclaveIdentity', c.qeIdentityChain);
    await refused(verifyTdxQuote(input(kit, quote, { qeIdentity: { ...qe, bodyBytes: Buffer.from(qe.bodyBytes.toString().replace('"isvprodid":2', '"isvprodid":3')) } })), 'TDX_ERR_QE_IDENTITY_SIGNATURE');
    // A chain whose first certificate is not the TCB Signing certificate.
    await refused(verifyTdxQuote(input(kit, quote, { tcbInfo: { ...tcb, chain: c.pckCrlChain } })), 'TDX_ERR_COLLATERAL_CHAIN');
  });

  it('an expired TCB Signing certificate → TDX_ERR_CERT_EXPIRED; the PCK leaf expired → TDX_ERR_CERT_EXPIRED', async () => {
    const quote = kit.quote();
    const late = kit.at + 8 * 365 * DAY;
    const c = kit.collateral({ rootCrl: kit.rootCrl({ nextUpdate: new Date((late + DAY) * 1000) }), pckCrl: kit.pckCrl({ nextUpdate: new Date((late + DAY) * 1000) }) });
    await refused(verifyTdxQuote(input(kit, quote, { at: late }, c)), 'TDX_ERR_CERT_EXPIRED');
  });

  it('verifyTdxCollateral verifies the kit\'s collateral and a trust dir / vector dir can be written', async () => {
    const c = kit.collateral();
    const r = await verifyTdxCollateral({
      trustRoots: [kit.root.der], rootCrl: c.rootCrl, pckCrl: c.pckCrl, pckCrlChain: c.pckCrlChain,
      tcbInfo: signedJson(c.tcbInfo, 'tcbInfo', c.tcbInfoChain), qeIdentity: signedJson(c.qeIdentity, 'enclaveIdentity', c.qeIdentityChain), at: kit.at,
    });
    assert.equal(r.pckCa!.subjectCN, 'Intel SGX PCK Platform CA');
    await refused(verifyTdxCollateral({ trustRoots: [INTEL_ROOT_DER], rootCrl: c.rootCrl, at: kit.at }), 'TDX_ERR_CRL_SIGNATURE');
    const dir = mkdtempSync(join(tmpdir(), 'fake-intel-'));
    try {
      kit.writeTrustDir(join(dir, 'trust'));
      kit.writeVectorDir(join(dir, 'vec'), kit.quote({ version: 5 }));
      assert.deepEqual(readdirSync(join(dir, 'vec')).sort(), ['pck_crl.der', 'pck_crl_issuer_chain.pem', 'qe_identity.json', 'qe_identity_issuer_chain.pem', 'quote.bin', 'root_ca_crl.der', 'tcb_info.json', 'tcb_info_issuer_chain.pem', 'vector.json']);
      assert.equal(readFileSync(join(dir, 'trust', 'fake-intel-sgx-root.pem'), 'utf8'), kit.rootPem);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the tcbInfo the kit signs is TDX v3 with module identities and levels for its platform', () => {
    const body = JSON.parse(kit.tcbInfo().toString()) as { tcbInfo: { id: string; version: number; fmspc: string; tdxModuleIdentities: Array<{ id: string }>; tcbLevels: Array<{ tcb: { sgxtcbcomponents: Array<{ svn: number }>; pcesvn: number } }> }; signature: string };
    assert.equal(body.tcbInfo.id, 'TDX');
    assert.equal(body.tcbInfo.version, 3);
    assert.equal(body.tcbInfo.fmspc, kit.sgx.fmspc.toLowerCase());
    assert.deepEqual(body.tcbInfo.tdxModuleIdentities.map((m) => m.id), ['TDX_01', 'TDX_03']);
    assert.deepEqual(body.tcbInfo.tcbLevels[0]!.tcb.sgxtcbcomponents.map((c) => c.svn), kit.sgx.tcbComponents);
    assert.match(body.signature, /^[0-9a-f]{128}$/);
    const qe = JSON.parse(kit.qeIdentity().toString()) as { enclaveIdentity: { id: string; version: number } };
    assert.deepEqual([qe.enclaveIdentity.id, qe.enclaveIdentity.version], ['TD_QE', 2]);
  });
});
