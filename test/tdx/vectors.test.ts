/**
 * The TDX layer (src/tdx) on the genuine vectors: native verification + TCB appraisal + claims at
 * each vector's `verify_at` give every claim, the TCB status, the advisory IDs and the evaluation
 * number of expected.json; the same vectors today fail freshness; collateral for another FMSPC,
 * a time past nextUpdate, an SGX TCB Info and a re-serialised tcbInfo are refused precisely.
 */
import assert from 'node:assert/strict';
import { TasError } from '../../src/errors/index.js';
import { clearChainCache } from '../../src/native/index.js';
import { TdxVerifier, peekQuote } from '../../src/tdx/verify.js';
import { collateralOf, type ClaimsView } from '../support/tdx-claims.js';
import { TDX_VECTORS, INTEL_ROOT_DER, type TdxVector } from '../support/tdx-vectors.js';

const verifier = new TdxVerifier({ trustRoots: () => [INTEL_ROOT_DER] });

async function refused(p: Promise<unknown>, reasons: string[]): Promise<string> {
  let reason = '';
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof TasError, String(e));
    assert.ok(reasons.includes(e.reason), `${e.reason}: ${e.detail}`);
    assert.equal(e.status, 400);
    reason = e.reason;
    return true;
  });
  return reason;
}

describe('tdx: genuine vectors through src/tdx', () => {
  beforeEach(() => clearChainCache());

  for (const v of TDX_VECTORS) {
    describe(v.name, () => {
      it('verifies at verify_at with every claim, TCB status, advisory IDs and eval number of expected.json', async () => {
        const peek = peekQuote(v.quote);
        const e = v.expected as TdxVector['expected'] & { tcb_status: string; tcb_detail: Record<string, unknown>; tcb_info_tcbEvaluationDataNumber: number };
        assert.equal(peek.fmspc, e.pck.ext.fmspc);
        assert.equal(peek.ca, 'platform');
        const r = await verifier.verify(v.quote, peek, collateralOf(v), new Date(v.at * 1000));
        const c = r.claims as ClaimsView;
        const names: Record<string, string> = {
          tee_tcb_svn: 'tee_tcb_svn', mrseam: 'mr_seam', mrsignerseam: 'mr_signer_seam', seam_attributes: 'seam_attributes',
          td_attributes: 'td_attributes', xfam: 'xfam', mrtd: 'mr_td', mrconfigid: 'mr_config_id', mrowner: 'mr_owner',
          mrownerconfig: 'mr_owner_config', rtmr0: 'rtmr0', rtmr1: 'rtmr1', rtmr2: 'rtmr2', rtmr3: 'rtmr3', report_data: 'report_data',
          tee_tcb_svn2: 'tee_tcb_svn2', mrservicetd: 'mr_servicetd',
        };
        for (const [k, want] of Object.entries(e.td)) assert.equal(c.body[names[k]!], want.toLowerCase(), `body.${names[k]}`);
        assert.equal(Object.keys(c.body).length, Object.keys(e.td).length);
        assert.equal(c.signature_data.qe_cert_data.qe_report.mr_signer, e.qe.mrsigner);
        assert.equal(c.signature_data.qe_cert_data.qe_report.isv_svn, e.qe.isvsvn);
        assert.equal(c.fmspc, e.pck.ext.fmspc);
        assert.equal(c.quote_version, e.quote.version);
        assert.equal(c.header.version, e.quote.version);
        assert.equal(c.header.tee_type, 0x81);
        assert.equal(c.header.qe_vendor_id, '939a7233f79c4ca9940a0db3957f0607');
        assert.equal(c.tcb_status, e.tcb_status);
        assert.deepEqual(c.advisory_ids, e.tcb_detail.advisory_ids);
        assert.equal(c.tcb_eval_data_number, e.tcb_info_tcbEvaluationDataNumber);
        assert.deepEqual(c.tcb, { update: 'standard', platform_tcb: e.tcb_detail.tdx_level_status, tdx_module_tcb: e.tcb_detail.module_status, qe_tcb: e.tcb_detail.qe_status });
        assert.equal(r.tcb.sgx, e.tcb_detail.sgx_level_status);
        assert.equal(r.tcb.tcbDate, e.tcb_detail.tdx_level_date);
        assert.equal(c.td.debug, v.name.includes('debug'));
        assert.equal(c.td.sept_ve_disable, true);
        assert.deepEqual(r.reportData, Buffer.from(e.td.report_data!, 'hex'));
      });

      it('fails freshness at today\'s date', async () => {
        await refused(verifier.verify(v.quote, peekQuote(v.quote), collateralOf(v), new Date()),
          ['TDX_ERR_CRL_STALE', 'TDX_ERR_CERT_EXPIRED', 'TDX_COLLATERAL_EXPIRED']);
      });
    });
  }

  const [a, b] = [TDX_VECTORS.find((v) => v.name.startsWith('dcapqvl'))!, TDX_VECTORS.find((v) => v.name.startsWith('automata'))!];

  it('refuses TCB Info for another FMSPC (genuine, Intel-signed, valid at the time)', async () => {
    // b's tcbInfo (FMSPC 00806f050000) with a's quote (b0c06f000000), at a time inside both windows is
    // not available, so the content check must fire before any freshness or signature question.
    const c = collateralOf(a, { tcbInfo: { body: b.tcbInfoJson, chain: b.tcbInfoChain } });
    await refused(verifier.verify(a.quote, peekQuote(a.quote), c, new Date(a.at * 1000)), ['TDX_TCB_INFO_MISMATCH']);
  });

  it('refuses a time past tcbInfo nextUpdate (one second after the vector window closes)', async () => {
    const info = JSON.parse(a.tcbInfoJson.toString()).tcbInfo as { nextUpdate: string };
    const after = new Date(Date.parse(info.nextUpdate) + 1000);
    await refused(verifier.verify(a.quote, peekQuote(a.quote), collateralOf(a), after), ['TDX_COLLATERAL_EXPIRED', 'TDX_ERR_CRL_STALE']);
  });

  it('refuses a re-serialised tcbInfo (same content, other bytes) and an edited one', async () => {
    const doc = JSON.parse(a.tcbInfoJson.toString());
    const reser = Buffer.from(JSON.stringify(doc, null, 1));
    await refused(verifier.verify(a.quote, peekQuote(a.quote), collateralOf(a, { tcbInfo: { body: reser, chain: a.tcbInfoChain } }), new Date(a.at * 1000)), ['TDX_ERR_TCB_INFO_SIGNATURE']);
    const edited = Buffer.from(a.tcbInfoJson.toString().replace('"UpToDate"', '"OutOfDate"'));
    await refused(verifier.verify(a.quote, peekQuote(a.quote), collateralOf(a, { tcbInfo: { body: edited, chain: a.tcbInfoChain } }), new Date(a.at * 1000)), ['TDX_ERR_TCB_INFO_SIGNATURE']);
  });

  it('refuses an SGX TCB Info (id SGX) and an SGX QE identity (id QE) before anything else', async () => {
    const sgx = Buffer.from(a.tcbInfoJson.toString().replace('"id":"TDX"', '"id":"SGX"'));
    assert.notDeepEqual(sgx, a.tcbInfoJson);
    await refused(verifier.verify(a.quote, peekQuote(a.quote), collateralOf(a, { tcbInfo: { body: sgx, chain: a.tcbInfoChain } }), new Date(a.at * 1000)), ['TDX_TCB_INFO_MISMATCH']);
    const qe = Buffer.from(a.qeIdentityJson.toString().replace('"id":"TD_QE"', '"id":"QE"'));
    assert.notDeepEqual(qe, a.qeIdentityJson);
    await refused(verifier.verify(a.quote, peekQuote(a.quote), collateralOf(a, { qeIdentity: { body: qe, chain: a.qeIdentityChain } }), new Date(a.at * 1000)), ['TDX_QE_IDENTITY_MISMATCH']);
  });

  it('refuses collateral below TAS_TDX_MIN_TCB_EVAL_NUMBER', async () => {
    const strict = new TdxVerifier({ trustRoots: () => [INTEL_ROOT_DER], minEvalNumber: () => 18 });
    await refused(strict.verify(a.quote, peekQuote(a.quote), collateralOf(a), new Date(a.at * 1000)), ['TDX_COLLATERAL_EVAL_NUMBER']);
  });

  it('peek refuses a malformed quote with a 400 before any I/O', () => {
    assert.throws(() => peekQuote(a.quote.subarray(0, 100)), (e: unknown) => e instanceof TasError && e.status === 400);
  });
});
