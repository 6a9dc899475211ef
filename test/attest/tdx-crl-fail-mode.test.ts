/**
 * TAS_CRL_FAIL_MODE for Intel's CRLs, end to end over HTTP (fake DCAP signer trusted through
 * TAS_TDX_EXTRA_TRUST_DIR, fake PCS), as the AMD CRL path does it:
 *  - closed (the default): a stale PCK CRL or an unobtainable root CA CRL is 503 + Retry-After with
 *    the nonce kept: the agent's retry with the same nonce succeeds once a fresh CRL is served;
 *  - open: the quote is released without that CRL and the audit record (details.notes) says which
 *    CRL was passed over and why; a CRL that IS fresh still counts (a revoked PCK is refused), and
 *    TCB Info is never passed over (no fresh TCB Info is still 503).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeIntel } from '../support/fake-intel';
import { FakePcs } from '../support/fake-pcs';
import { agentKeys, createLab, decryptReply, getNonce, getSecret, policyDoc, reportData, SECRET, storePolicy, type Lab } from '../support/lab';

const MR_TD = Buffer.alloc(48, 0x5b);
const DAY = 86_400_000;
const TDX_RULES = {
  tcb: { update: 'standard', platform_tcb: 'UpToDate', tdx_module_tcb: 'UpToDate', qe_tcb: 'UpToDate' },
  body: { mr_td: MR_TD.toString('hex') },
};

describe('attest: TAS_CRL_FAIL_MODE applies to Intel CRLs (fake PCS)', function () {
  this.timeout(120_000);
  let kit: FakeIntel;
  let trustDir: string;
  let pcs: FakePcs;
  let lab: Lab | undefined;

  const records = () => lab!.daemon.audit.records.filter((x) => x.event === 'get_secret');
  const stalePckCrl = () => kit.pckCrl({ thisUpdate: new Date(kit.now.getTime() - 40 * DAY), nextUpdate: new Date(Date.now() - 60_000) });
  const serve = (o: Parameters<FakeIntel['collateral']>[0] = {}) => pcs.serveCollateral({ fmspc: kit.sgx.fmspc, ...kit.collateral(o) });
  const labWith = async (env: Record<string, string>): Promise<Lab> => {
    lab = await createLab({ products: ['Genoa'], env: { TAS_PCS_BASE_URL: pcs.url, TAS_PCS_ROOT_CRL_URL: pcs.rootCrlUrl, TAS_TDX_EXTRA_TRUST_DIR: trustDir, ...env } });
    assert.equal((await storePolicy(lab, policyDoc('tdx-crl', TDX_RULES, { policy_type: 'TDX' }))).status, 201);
    return lab;
  };
  const ask = async (nonce?: string) => {
    const keys = agentKeys();
    const n = nonce ?? (await getNonce(lab!));
    const q = kit.quote({ reportData: reportData(n, keys.wire, true), mrTd: MR_TD });
    return { nonce: n, keys, q, r: await getSecret(lab!, { nonce: n, report: q, keys, policyId: 'tdx-crl', teeType: 'intel-tdx' }) };
  };

  before(() => {
    kit = FakeIntel.create();
    trustDir = mkdtempSync(join(tmpdir(), 'tas-tdx-crl-'));
    kit.writeTrustDir(trustDir);
  });
  beforeEach(async () => {
    pcs = await new FakePcs().start();
  });
  afterEach(async () => {
    await lab?.close();
    lab = undefined;
    await pcs.stop();
  });
  after(() => rmSync(trustDir, { recursive: true, force: true }));

  it('closed (default): a stale PCK CRL is 503 + Retry-After, the nonce survives, and a fresh CRL releases it', async () => {
    serve({ pckCrl: stalePckCrl() });
    await labWith({});
    const a = await ask();
    assert.equal(a.r.status, 503, JSON.stringify(a.r.body));
    assert.ok(Number(a.r.headers.get('retry-after')) >= 1);
    const rec = records().at(-1)!;
    assert.equal(rec.reason, 'PCS_COLLATERAL_INVALID');
    assert.match(JSON.stringify(rec.details), /pckCrl/);
    serve();
    const again = await getSecret(lab!, { nonce: a.nonce, report: a.q, keys: a.keys, policyId: 'tdx-crl', teeType: 'intel-tdx' });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(decryptReply(again.body, a.keys), SECRET);
  });

  it('closed (default): an unobtainable root CA CRL is 503 + Retry-After', async () => {
    serve();
    pcs.fault('/IntelSGXRootCA.der', { status: 503, retryAfter: '120' });
    await labWith({ TAS_CRL_FAIL_MODE: 'closed' });
    const a = await ask();
    assert.equal(a.r.status, 503, JSON.stringify(a.r.body));
    assert.ok(Number(a.r.headers.get('retry-after')) >= 1);
    assert.equal(records().at(-1)!.reason, 'PCS_UNAVAILABLE');
  });

  it('open: a stale PCK CRL and an unobtainable root CA CRL are passed over with a note in the audit record', async () => {
    serve({ pckCrl: stalePckCrl() });
    pcs.fault('/IntelSGXRootCA.der', { status: 503, retryAfter: '120' });
    await labWith({ TAS_CRL_FAIL_MODE: 'open' });
    const a = await ask();
    assert.equal(a.r.status, 200, JSON.stringify(a.r.body));
    assert.equal(decryptReply(a.r.body, a.keys), SECRET);
    const d = records().at(-1)!.details as Record<string, unknown>;
    const notes = d.notes as string[];
    assert.equal(notes.length, 2, JSON.stringify(notes));
    assert.match(notes.find((n) => /Root CA CRL/.test(n)) ?? '', /fail-open.*not checked/);
    assert.match(notes.find((n) => /PCK CRL \(ca=platform\)/.test(n)) ?? '', /fail-open.*not checked.*(nextUpdate|stale|CRL)/i);
    assert.deepEqual((d.collateral_source as Record<string, string>).rootCrl, 'none');
    assert.deepEqual((d.collateral_source as Record<string, string>).pckCrl, 'none');
  });

  it('open: a fresh CRL still counts (a revoked PCK is refused); TCB Info is never passed over (503)', async () => {
    serve({ pckCrl: kit.pckCrl({ revoked: [kit.pck.serialHex] }) });
    await labWith({ TAS_CRL_FAIL_MODE: 'open' });
    const a = await ask();
    assert.equal(a.r.status, 400, JSON.stringify(a.r.body));
    assert.equal(records().at(-1)!.reason, 'TDX_ERR_REVOKED');

    await lab!.close();
    lab = undefined;
    serve();
    pcs.fault('/tdx/certification/v4/tcb', { status: 503, retryAfter: '120' });
    await labWith({ TAS_CRL_FAIL_MODE: 'open' });
    const b = await ask();
    assert.equal(b.r.status, 503, JSON.stringify(b.r.body));
    assert.ok(Number(b.r.headers.get('retry-after')) >= 118, 'PCS Retry-After passed on');
    assert.equal(records().at(-1)!.reason, 'PCS_UNAVAILABLE');
  });
});
