/**
 * TCB appraisal comparators at their boundaries, on synthetic collateral (the genuine vectors cover
 * the common paths): components 0–1 skipped only for TDX 1.5 modules, the module identity id as
 * two uppercase hex digits matched case-insensitively (TDX_0A), module OutOfDate convergence,
 * the TD 1.5 relaunch rule, QE convergence, terminal statuses, unknown status strings, PCESVN and
 * per-component boundaries, advisory-ID union.
 */
import assert from 'node:assert/strict';
import { appraiseTcb, parseQeIdentity, parseTcbInfo, TcbError, type QuoteTcbInput } from '../../src/tdx/tcb';

const AT = new Date('2026-01-10T00:00:00Z');
const comps = (v: number[]) => v.map((svn) => ({ svn }));
const z16 = (head: number[]) => [...head, ...Array(16 - head.length).fill(0)];
const level = (sgx: number[], pce: number, tdx: number[], status: string, adv?: string[]) => ({
  tcb: { sgxtcbcomponents: comps(z16(sgx)), pcesvn: pce, tdxtcbcomponents: comps(z16(tdx)) }, tcbDate: '2025-01-01T00:00:00Z', tcbStatus: status, ...(adv ? { advisoryIDs: adv } : {}),
});
const Z48 = '0'.repeat(96);
function info(o: { levels?: object[]; modules?: object[] } = {}) {
  return parseTcbInfo({
    id: 'TDX', version: 3, issueDate: '2026-01-01T00:00:00Z', nextUpdate: '2026-01-31T00:00:00Z', fmspc: 'B0C06F000000', pceId: '0000', tcbType: 0, tcbEvaluationDataNumber: 17,
    tdxModule: { mrsigner: Z48, attributes: '0000000000000000', attributesMask: 'FFFFFFFFFFFFFFFF' },
    tdxModuleIdentities: o.modules ?? [
      { id: 'TDX_01', mrsigner: Z48, attributes: '0000000000000000', attributesMask: 'FFFFFFFFFFFFFFFF', tcbLevels: [{ tcb: { isvsvn: 4 }, tcbDate: '2025-01-01T00:00:00Z', tcbStatus: 'UpToDate' }, { tcb: { isvsvn: 2 }, tcbDate: '2024-01-01T00:00:00Z', tcbStatus: 'OutOfDate', advisoryIDs: ['INTEL-SA-MOD'] }] },
      { id: 'tdx_0a', mrsigner: Z48, attributes: '0000000000000000', attributesMask: 'FFFFFFFFFFFFFFFF', tcbLevels: [{ tcb: { isvsvn: 1 }, tcbDate: '2025-01-01T00:00:00Z', tcbStatus: 'UpToDate' }] },
    ],
    tcbLevels: o.levels ?? [
      level([2, 2], 13, [5, 0, 3], 'UpToDate'),
      level([2, 2], 13, [3, 0, 2], 'OutOfDate', ['INTEL-SA-LVL']),
      level([1, 1], 11, [0, 0, 0], 'OutOfDate', ['INTEL-SA-OLD']),
    ],
  });
}
const qeId = (levels = [{ tcb: { isvsvn: 4 }, tcbDate: '2025-01-01T00:00:00Z', tcbStatus: 'UpToDate' }]) => parseQeIdentity({
  id: 'TD_QE', version: 2, issueDate: '2026-01-01T00:00:00Z', nextUpdate: '2026-01-31T00:00:00Z', tcbEvaluationDataNumber: 17, miscselect: '00000000', miscselectMask: 'FFFFFFFF',
  attributes: '11000000000000000000000000000000', attributesMask: 'FBFFFFFFFFFFFFFF0000000000000000', mrsigner: 'DC'.repeat(32), isvprodid: 2, tcbLevels: levels,
});
function q(o: { svn?: number[]; svn2?: number[]; sgx?: number[]; pce?: number; qeSvn?: number; bodyType?: number } = {}): QuoteTcbInput {
  return {
    teeTcbSvn: Buffer.from(z16(o.svn ?? [5, 0, 3])), ...(o.svn2 ? { teeTcbSvn2: Buffer.from(z16(o.svn2)) } : {}),
    mrSignerSeam: Buffer.alloc(48), seamAttributes: Buffer.alloc(8), bodyType: o.bodyType ?? 2,
    qe: { miscSelect: 0, attributes: Buffer.from('11000000000000000000000000000000', 'hex'), mrSigner: Buffer.alloc(32, 0xdc), isvProdId: 2, isvSvn: o.qeSvn ?? 4 },
    pck: { tcbComponents: z16(o.sgx ?? [2, 2]), pceSvn: o.pce ?? 13, fmspc: Buffer.from('b0c06f000000', 'hex'), pceId: Buffer.alloc(2) },
  };
}
const reason = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof TcbError, String(e));
    return e.reason;
  }
  return 'passed';
};

describe('tdx: TCB appraisal boundaries', () => {
  it('TDX 1.0 module: all 16 TDX components compared, boundary inclusive', () => {
    assert.equal(appraiseTcb(info(), qeId(), q({ svn: [5, 0, 3] }), { at: AT }).status, 'UpToDate');
    assert.equal(appraiseTcb(info(), qeId(), q({ svn: [4, 0, 3] }), { at: AT }).status, 'OutOfDate');
    assert.equal(appraiseTcb(info(), qeId(), q({ svn: [5, 0, 2] }), { at: AT }).status, 'OutOfDate');
    assert.deepEqual(appraiseTcb(info(), qeId(), q({ svn: [2, 0, 1] }), { at: AT }).advisoryIds, ['INTEL-SA-OLD'], 'falls through to the lowest level');
  });
  it('SGX components and PCESVN: one below the level moves down; below every level is NotSupported', () => {
    assert.equal(appraiseTcb(info(), qeId(), q({ pce: 12 }), { at: AT }).status, 'OutOfDate');
    assert.deepEqual(appraiseTcb(info(), qeId(), q({ pce: 12 }), { at: AT }).advisoryIds, ['INTEL-SA-OLD']);
    assert.equal(reason(() => appraiseTcb(info(), qeId(), q({ sgx: [1, 0] }), { at: AT })), 'TDX_TCB_NOT_SUPPORTED');
  });
  it('TDX 1.5 module (TEE_TCB_SVN[1] > 0): components 0-1 skipped, module judged by TDX_01', () => {
    // svn[0]=1 < level's 5 but skipped; svn[2]=3 matches the top level; module ISVSVN 4 = UpToDate.
    assert.equal(appraiseTcb(info(), qeId(), q({ svn: [4, 1, 3] }), { at: AT }).status, 'UpToDate');
    const v = appraiseTcb(info(), qeId(), q({ svn: [3, 1, 3] }), { at: AT });
    assert.equal(v.module, 'OutOfDate');
    assert.equal(v.status, 'OutOfDate');
    assert.deepEqual(v.advisoryIds, ['INTEL-SA-MOD']);
    assert.equal(reason(() => appraiseTcb(info(), qeId(), q({ svn: [1, 1, 3] }), { at: AT })), 'TDX_TCB_NOT_SUPPORTED');
  });
  it('module identity ids are TDX_ + two uppercase hex digits, matched case-insensitively (10 = TDX_0A, not TDX_10)', () => {
    assert.equal(appraiseTcb(info(), qeId(), q({ svn: [1, 10, 3] }), { at: AT }).moduleId, 'tdx_0a');
    assert.equal(reason(() => appraiseTcb(info(), qeId(), q({ svn: [1, 2, 3] }), { at: AT })), 'TDX_MODULE_MISMATCH');
  });
  it('TD 1.5 relaunch: running module OutOfDate but launched on a current one → TDRelaunchAdvised', () => {
    assert.equal(appraiseTcb(info(), qeId(), q({ svn: [3, 1, 3], svn2: [4, 1, 3], bodyType: 3 }), { at: AT }).status, 'TDRelaunchAdvised');
    assert.equal(appraiseTcb(info(), qeId(), q({ svn: [3, 1, 3], svn2: [3, 1, 3], bodyType: 3 }), { at: AT }).status, 'OutOfDate');
    assert.equal(appraiseTcb(info(), qeId(), q({ svn: [3, 1, 3], svn2: [4, 1, 3], bodyType: 2 }), { at: AT }).status, 'OutOfDate', 'TD 1.0 bodies never relaunch');
  });
  it('QE convergence: QE OutOfDate lowers UpToDate to OutOfDate; no QE level is NotSupported; Revoked is terminal', () => {
    const qe = qeId([{ tcb: { isvsvn: 6 }, tcbDate: '2025-01-01T00:00:00Z', tcbStatus: 'UpToDate' }, { tcb: { isvsvn: 4 }, tcbDate: '2024-01-01T00:00:00Z', tcbStatus: 'OutOfDate', advisoryIDs: ['INTEL-SA-QE'] } as never]);
    const v = appraiseTcb(info(), qe, q({ qeSvn: 5 }), { at: AT });
    assert.equal(v.status, 'OutOfDate');
    assert.deepEqual(v.advisoryIds, ['INTEL-SA-QE']);
    assert.equal(reason(() => appraiseTcb(info(), qeId(), q({ qeSvn: 3 }), { at: AT })), 'TDX_TCB_NOT_SUPPORTED');
    const rev = qeId([{ tcb: { isvsvn: 4 }, tcbDate: '2025-01-01T00:00:00Z', tcbStatus: 'Revoked' }]);
    assert.equal(reason(() => appraiseTcb(info(), rev, q(), { at: AT })), 'TDX_TCB_REVOKED');
  });
  it('ConfigurationNeeded levels converge with an OutOfDate module to OutOfDateConfigurationNeeded', () => {
    const i = info({ levels: [level([2, 2], 13, [0, 0, 3], 'ConfigurationNeeded')] });
    assert.equal(appraiseTcb(i, qeId(), q({ svn: [3, 1, 3] }), { at: AT }).status, 'OutOfDateConfigurationNeeded');
  });
  it('unknown status strings and short component lists are refused when the collateral is read', () => {
    assert.equal(reason(() => info({ levels: [level([2, 2], 13, [5], 'Fine')] })), 'TDX_UNRECOGNIZED_STATUS');
    assert.equal(reason(() => info({ levels: [{ ...level([2], 13, [5], 'UpToDate'), tcb: { sgxtcbcomponents: comps([2, 2]), pcesvn: 13, tdxtcbcomponents: comps(z16([5])) } }] })), 'TDX_COLLATERAL_FORMAT');
  });
  it('freshness and the minimum evaluation number', () => {
    assert.equal(reason(() => appraiseTcb(info(), qeId(), q(), { at: new Date('2026-01-31T00:00:01Z') })), 'TDX_COLLATERAL_EXPIRED');
    assert.equal(reason(() => appraiseTcb(info(), qeId(), q(), { at: new Date('2025-12-31T23:59:59Z') })), 'TDX_COLLATERAL_EXPIRED');
    assert.equal(reason(() => appraiseTcb(info(), qeId(), q(), { at: AT, minEvalNumber: 18 })), 'TDX_COLLATERAL_EVAL_NUMBER');
    assert.equal(appraiseTcb(info(), qeId(), q(), { at: AT, minEvalNumber: 17 }).status, 'UpToDate');
  });
});
