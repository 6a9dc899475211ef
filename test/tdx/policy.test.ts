/**
 * TDX policies in the rule engine: the original TAS's tdx_example_policy.json shape (`tcb`, `body`,
 * `signature_data.qe_cert_data.qe_report`) loads and evaluates against genuine claims; the `tcb`
 * object's bare values are minimum statuses (PROTOCOL.md §3.4 order); `update: early` passes only
 * under early collateral; advisory-ID lists; a debug TD is refused unless a td.debug rule admits it.
 */
import assert from 'node:assert/strict';
import { claimSchemaFor, evaluate } from '../../src/policy';
import { compileRules } from '../../src/policy/rules';
import { STATUS_ORDER } from '../../src/tdx/tcb';
import { TdxVerifier, peekQuote } from '../../src/tdx/verify';
import { INTEL_ROOT_DER, TDX_VECTORS } from '../support/tdx-vectors';
import { collateralOf, type ClaimsView } from '../support/tdx-claims';

const compile = (rules: unknown) => compileRules(rules, claimSchemaFor('TDX'));
const verifier = new TdxVerifier({ trustRoots: () => [INTEL_ROOT_DER] });
const claimsOf = async (prefix: string) => {
  const v = TDX_VECTORS.find((x) => x.name.startsWith(prefix))!;
  return (await verifier.verify(v.quote, peekQuote(v.quote), collateralOf(v), new Date(v.at * 1000))).claims;
};

describe('tdx: policies', () => {
  it('the original example policy shape loads unchanged and evaluates (real values in place of its placeholders)', async () => {
    const c = await claimsOf('dcapqvl') as ClaimsView;
    const original = {
      tcb: { update: 'standard', platform_tcb: 'UpToDate', tdx_module_tcb: 'UpToDate', qe_tcb: 'UpToDate' },
      body: { rtmr0: { exact_match: c.body.rtmr0 }, rtmr1: { exact_match: c.body.rtmr1 }, rtmr2: { exact_match: c.body.rtmr2 }, mr_td: { exact_match: c.body.mr_td!.toUpperCase() } },
      signature_data: { qe_cert_data: { qe_report: { cpu_svn: { exact_match: c.signature_data.qe_cert_data.qe_report.cpu_svn } } } },
    };
    const ok = evaluate(compile(original), c);
    assert.equal(ok.ok, true, ok.failures.join('; '));
    const bad = evaluate(compile({ ...original, body: { ...original.body, mr_td: { exact_match: '00'.repeat(48) } } }), c);
    assert.equal(bad.ok, false);
    assert.match(bad.failures.join(), /body\.mr_td exact_match/);
  });

  it('tcb bare values are minimums in the PROTOCOL.md order; tcb_status bare value is exact', async () => {
    const c = await claimsOf('automata'); // platform OutOfDate, module and QE UpToDate
    assert.deepEqual(STATUS_ORDER.slice(0, 4), ['NotSupported', 'Revoked', 'OutOfDateConfigurationNeeded', 'OutOfDate']);
    assert.equal(evaluate(compile({ tcb: { platform_tcb: 'OutOfDate' } }), c).ok, true);
    assert.equal(evaluate(compile({ tcb: { platform_tcb: 'OutOfDateConfigurationNeeded' } }), c).ok, true);
    assert.equal(evaluate(compile({ tcb: { platform_tcb: 'TDRelaunchAdvisedConfigurationNeeded' } }), c).ok, false);
    assert.equal(evaluate(compile({ tcb: { platform_tcb: 'UpToDate' } }), c).ok, false);
    assert.equal(evaluate(compile({ tcb: { qe_tcb: 'UpToDate', tdx_module_tcb: 'UpToDate' } }), c).ok, true);
    assert.equal(evaluate(compile({ tcb_status: 'OutOfDate' }), c).ok, true);
    assert.equal(evaluate(compile({ tcb_status: 'OutOfDateConfigurationNeeded' }), c).ok, false, 'bare tcb_status is an exact match');
    assert.equal(evaluate(compile({ tcb_status: { min_value: 'SWHardeningNeeded' } }), c).ok, false);
    assert.equal(evaluate(compile({ tcb_status: { allow_list: ['UpToDate', 'OutOfDate'] } }), c).ok, true);
  });

  it('update: standard passes under standard collateral, early only under early', async () => {
    const c = await claimsOf('dcapqvl') as ClaimsView;
    assert.equal(evaluate(compile({ tcb: { update: 'standard' } }), c).ok, true);
    assert.equal(evaluate(compile({ tcb: { update: 'early' } }), c).ok, false);
    const early: ClaimsView = { ...c, tcb: { ...c.tcb, update: 'early' } };
    assert.equal(evaluate(compile({ tcb: { update: 'early' } }), early).ok, true);
    assert.equal(evaluate(compile({ tcb: { update: 'standard' } }), early).ok, true);
  });

  it('advisory IDs: deny_list refuses a listed advisory, allow_list needs every one listed', async () => {
    const c = await claimsOf('automata');
    assert.equal(evaluate(compile({ advisory_ids: { deny_list: ['INTEL-SA-00982'] } }), c).ok, false);
    assert.equal(evaluate(compile({ advisory_ids: { deny_list: ['INTEL-SA-01234'] } }), c).ok, true);
    assert.equal(evaluate(compile({ advisory_ids: { allow_list: ['INTEL-SA-00960', 'INTEL-SA-00982'] } }), c).ok, false);
    assert.equal(evaluate(compile({ advisory_ids: { allow_list: ['INTEL-SA-00960', 'INTEL-SA-00982', 'INTEL-SA-00986'] } }), c).ok, true);
  });

  it('a debug TD (genuine trustee quote) is refused by default and admitted only by a td.debug rule admitting true', async () => {
    const c = await claimsOf('trustee') as ClaimsView;
    assert.equal(c.td.debug, true);
    const plain = evaluate(compile({ tcb: { platform_tcb: 'UpToDate' } }), c);
    assert.equal(plain.ok, false);
    assert.match(plain.failures.join(), /debug TD/);
    assert.equal(evaluate(compile({ td: { debug: false } }), c).ok, false);
    assert.equal(evaluate(compile({ td: { debug: true } }), c).ok, true);
    assert.equal(evaluate(compile({ td: { debug: { allow_list: [true, false] } } }), c).ok, true);
    // A non-debug TD is not affected by the built-in rule.
    assert.equal(evaluate(compile({ tcb: { platform_tcb: 'UpToDate' } }), await claimsOf('dcapqvl')).ok, true);
  });

  it('TD 1.5 fields exist only on TD 1.5 bodies: a rule on them fails on TD 1.0', async () => {
    const v5 = await claimsOf('gotdx') as ClaimsView;
    const rule = { body: { mr_servicetd: v5.body.mr_servicetd } };
    assert.equal(evaluate(compile(rule), v5).ok, true);
    assert.equal(evaluate(compile(rule), await claimsOf('dcapqvl')).ok, false);
  });
});
