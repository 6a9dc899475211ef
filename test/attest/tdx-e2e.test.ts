/**
 * Intel TDX end to end over HTTP: fresh quotes of the fake DCAP signer (its root trusted only via
 * TAS_TDX_EXTRA_TRUST_DIR) with collateral from a fake PCS, through get_secret in both dialects on
 * the embedded store and on Redis. PCS down with nothing cached is 503 + Retry-After and the
 * agent's retry with the SAME nonce succeeds once PCS is back; PCS down with collateral cached
 * changes nothing; a SEV policy refuses a TDX quote and a TDX policy an SNP report; a debug TD is
 * refused by default; one audit record per request names TCB status, update and eval number.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeIntel } from '../support/fake-intel';
import { FakePcs } from '../support/fake-pcs';
import { startPlain } from '../support/redis';
import { agentKeys, createLab, decryptReply, getNonce, getSecret, KEY_ID, policyDoc, reportData, SECRET, storePolicy, type Lab } from '../support/lab';

const MR_TD = Buffer.alloc(48, 0x5a);
const TDX_RULES = {
  tcb: { update: 'standard', platform_tcb: 'UpToDate', tdx_module_tcb: 'UpToDate', qe_tcb: 'UpToDate' },
  body: { mr_td: MR_TD.toString('hex') },
  td: { sept_ve_disable: true },
};

for (const backend of ['embedded', 'redis'] as const) {
  describe(`attest: intel-tdx end to end (${backend} store, fake PCS)`, function () {
    this.timeout(120_000);
    let lab: Lab;
    let pcs: FakePcs;
    let kit: FakeIntel;
    let trustDir: string;
    let stopRedis: (() => Promise<void>) | undefined;
    const records = () => lab.daemon.audit.records.filter((x) => x.event === 'get_secret');
    const quote = (rd: Buffer, o: Parameters<FakeIntel['quote']>[0] = {}) => kit.quote({ reportData: rd, mrTd: MR_TD, ...o });

    before(async () => {
      kit = FakeIntel.create();
      trustDir = mkdtempSync(join(tmpdir(), 'tas-tdx-trust-'));
      kit.writeTrustDir(trustDir);
      pcs = await new FakePcs().start();
      pcs.serveCollateral({ fmspc: kit.sgx.fmspc, ...kit.collateral() });
      const env: Record<string, string> = { TAS_PCS_BASE_URL: pcs.url, TAS_PCS_ROOT_CRL_URL: pcs.rootCrlUrl, TAS_TDX_EXTRA_TRUST_DIR: trustDir };
      if (backend === 'redis') {
        const r = await startPlain();
        stopRedis = () => r.stop();
        Object.assign(env, { TAS_STORE: 'redis', TAS_REDIS_URL: r.url });
      }
      lab = await createLab({ products: ['Genoa'], env });
      assert.equal((await storePolicy(lab, policyDoc('tdx-1', TDX_RULES, { policy_type: 'TDX' }))).status, 201);
      assert.equal((await storePolicy(lab, policyDoc('sev-1'))).status, 201);
    });
    after(async () => {
      await lab?.close();
      await pcs?.stop();
      await stopRedis?.();
      rmSync(trustDir, { recursive: true, force: true });
    });

    it('PCS down with nothing cached: 503 + Retry-After, and the same nonce succeeds once PCS is back', async () => {
      const port = pcs.port;
      await pcs.stop();
      const keys = agentKeys();
      const nonce = await getNonce(lab);
      const q = quote(reportData(nonce, keys.wire, true));
      const r = await getSecret(lab, { nonce, report: q, keys, policyId: 'tdx-1', teeType: 'intel-tdx' });
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.deepEqual(r.body, { error: 'TEE verification unavailable' });
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
      assert.equal(records().at(-1)!.reason, 'PCS_UNAVAILABLE');
      await pcs.start(port);
      const again = await getSecret(lab, { nonce, report: q, keys, policyId: 'tdx-1', teeType: 'intel-tdx' });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(decryptReply(again.body, keys), SECRET);
    });

    it('policy-id dialect, v5 (TD 1.5) quote: released; one audit record naming TCB status, update and eval number', async () => {
      const keys = agentKeys();
      const nonce = await getNonce(lab);
      const before = records().length;
      const r = await getSecret(lab, { nonce, report: quote(reportData(nonce, keys.wire, true), { version: 5 }), keys, policyId: 'tdx-1', teeType: 'intel-tdx' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(decryptReply(r.body, keys), SECRET);
      assert.equal(records().length, before + 1);
      const d = records().at(-1)!.details as Record<string, unknown>;
      assert.equal(d.tcb_status, 'UpToDate');
      assert.equal(d.collateral_update, 'standard');
      assert.equal(typeof d.tcb_eval_data_number, 'number');
      assert.equal(d.quote_version, 5);
    });

    it('key-id dialect (REPORT_DATA = the nonce), v4 quote: released under the TDX policy binding the key', async () => {
      const keys = agentKeys();
      const nonce = await getNonce(lab);
      const r = await getSecret(lab, { nonce, report: quote(reportData(nonce, keys.wire, false), { version: 4 }), keys, keyId: KEY_ID, binding: false, teeType: 'intel-tdx' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(decryptReply(r.body, keys), SECRET);
      assert.equal((records().at(-1)!.details as Record<string, unknown>).policy_id, 'tdx-1');
    });

    it('PCS down with collateral cached changes nothing', async () => {
      const port = pcs.port;
      await pcs.stop();
      try {
        const keys = agentKeys();
        const nonce = await getNonce(lab);
        const r = await getSecret(lab, { nonce, report: quote(reportData(nonce, keys.wire, true)), keys, policyId: 'tdx-1', teeType: 'intel-tdx' });
        assert.equal(r.status, 200, JSON.stringify(r.body));
      } finally {
        await pcs.start(port);
      }
    });

    it('a SEV policy refuses a TDX quote, and a TDX policy an SNP report', async () => {
      const keys = agentKeys();
      const nonce = await getNonce(lab);
      const r = await getSecret(lab, { nonce, report: quote(reportData(nonce, keys.wire, true)), keys, policyId: 'sev-1', teeType: 'intel-tdx' });
      assert.equal(r.status, 400);
      assert.equal(records().at(-1)!.reason, 'POLICY_TYPE_MISMATCH');
      const n2 = await getNonce(lab);
      const snp = lab.kits.Genoa.signReport({ reportData: reportData(n2, keys.wire, true) });
      const s = await getSecret(lab, { nonce: n2, report: snp, keys, policyId: 'tdx-1' });
      assert.equal(s.status, 400);
      assert.equal(records().at(-1)!.reason, 'POLICY_TYPE_MISMATCH');
    });

    it('a debug TD is refused by default (no td.debug rule); a REPORT_DATA for another key is refused', async () => {
      const keys = agentKeys();
      const nonce = await getNonce(lab);
      const r = await getSecret(lab, { nonce, report: quote(reportData(nonce, keys.wire, true), { tdAttributes: (1n << 28n) | 1n }), keys, policyId: 'tdx-1', teeType: 'intel-tdx' });
      assert.equal(r.status, 400);
      const rec = records().at(-1)!;
      assert.equal(rec.reason, 'POLICY_RULES_FAILED');
      assert.match(JSON.stringify(rec.details), /td\.debug/);
      const n2 = await getNonce(lab);
      const other = agentKeys();
      const w = await getSecret(lab, { nonce: n2, report: quote(reportData(n2, other.wire, true)), keys, policyId: 'tdx-1', teeType: 'intel-tdx' });
      assert.equal(w.status, 400);
      assert.equal(records().at(-1)!.reason, 'REPORT_DATA_MISMATCH');
    });

    it('a quote with another MRTD fails the policy', async () => {
      const keys = agentKeys();
      const nonce = await getNonce(lab);
      const r = await getSecret(lab, { nonce, report: quote(reportData(nonce, keys.wire, true), { mrTd: Buffer.alloc(48, 1) }), keys, policyId: 'tdx-1', teeType: 'intel-tdx' });
      assert.equal(r.status, 400);
      assert.equal(records().at(-1)!.reason, 'POLICY_RULES_FAILED');
    });
  });
}
