/**
 * component-evidence binding (PROTOCOL.md §2.1): bounds and shapes, component_hashes in
 * device-index order, and over HTTP with the real daemon: a policy without `components` binds but
 * does not evaluate (audit says so), malformed component evidence is a 400 that keeps the nonce,
 * and a GPU dropped or reordered after binding breaks REPORT_DATA.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { bindingSuffix, gpuComponentHook, parseComponentEvidence, NOT_EVALUATED_NOTE } from '../../src/gpu';
import { isTasError } from '../../src/errors';
import { componentEvidence, componentHashes, genuineEntries, type SdkEntry } from '../support/gpu-evidence';
import { agentKeys, createLab, decryptReply, getNonce, getSecret, policyDoc, reportData, SECRET, storePolicy, type Lab } from '../support/lab';

const one = genuineEntries('sdk-h100-590-ppcie');
const eight = genuineEntries('nvtrust-h100-ppcie8');

function refusedWith(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isTasError(e), String(e));
    assert.equal(e.status, 400);
    assert.equal(e.reason, 'GPU_EVIDENCE_MALFORMED');
    assert.match(e.detail, re);
    return true;
  });
}

describe('gpu: component-evidence parsing and bounds', () => {
  it('parses both SDK entry shapes and orders GPUs by device-index', () => {
    const ce = componentEvidence(eight.slice(0, 3));
    ce.gpu.reverse();
    const parsed = parseComponentEvidence(ce)!;
    assert.deepEqual(parsed.gpus.map((g) => g.deviceIndex), [0, 1, 2]);
    assert.deepEqual(parsed.gpus[0]!.spdm, Buffer.from(eight[0]!.evidence, 'base64'));
    assert.equal(parsed.gpus[0]!.arch, 'HOPPER');
    const four = parseComponentEvidence(componentEvidence(one))!;
    assert.equal(four.gpus.length, 1);
    assert.equal(Object.keys(one[0]!).length, 4, 'the C++ SDK shape');
  });

  it('component_hashes are SHA-512 of each decoded SPDM evidence, in device-index order', () => {
    const parsed = parseComponentEvidence(componentEvidence(eight))!;
    assert.deepEqual(bindingSuffix(parsed), componentHashes(eight));
    assert.equal(bindingSuffix(parsed).length, 8 * 64);
    const first = createHash('sha512').update(Buffer.from(eight[0]!.evidence, 'base64')).digest();
    assert.deepEqual(bindingSuffix(parsed).subarray(0, 64), first);
  });

  it('an absent or empty gpu list binds nothing', () => {
    assert.equal(parseComponentEvidence({}), undefined);
    assert.equal(parseComponentEvidence({ gpu: [] }), undefined);
  });

  it('refuses more than 16 GPUs, gaps, duplicates, wrong types and indexes', () => {
    const e = one[0]!;
    const many = componentEvidence(Array.from({ length: 17 }, () => e));
    refusedWith(() => parseComponentEvidence(many), /17 GPUs \(at most 16\)/);
    assert.equal(parseComponentEvidence(componentEvidence(Array.from({ length: 16 }, () => e)))!.gpus.length, 16);
    const gap = componentEvidence([e, e]);
    gap.gpu[1]!['device-index'] = 2;
    refusedWith(() => parseComponentEvidence(gap), /device-index must be an integer 0\.\.1/);
    const dup = componentEvidence([e, e]);
    dup.gpu[1]!['device-index'] = 0;
    refusedWith(() => parseComponentEvidence(dup), /gpu\[0\]: device-index appears twice/);
    const frac = componentEvidence([e]);
    (frac.gpu[0] as Record<string, unknown>)['device-index'] = 0.5;
    refusedWith(() => parseComponentEvidence(frac), /device-index/);
    const str = componentEvidence([e]);
    (str.gpu[0] as Record<string, unknown>)['device-index'] = '0';
    refusedWith(() => parseComponentEvidence(str), /device-index/);
    const typ = componentEvidence([e]);
    typ.gpu[0]!.type = 'nvidia-hopper';
    refusedWith(() => parseComponentEvidence(typ), /gpu\[0\]: type must be 'gpu-nvidia'/);
    refusedWith(() => parseComponentEvidence([]), /must be a JSON object/);
    refusedWith(() => parseComponentEvidence({ gpu: {} }), /gpu must be an array/);
    refusedWith(() => parseComponentEvidence({ gpu: [], nic: [] }), /unknown component class 'nic'/);
    refusedWith(() => parseComponentEvidence({ gpu: [null] }), /JSON object/);
  });

  it('strict base64 on both layers, and size caps', () => {
    const e = one[0]!;
    const ws = componentEvidence([e]);
    ws.gpu[0]!.evidence = ws.gpu[0]!.evidence.slice(0, 40) + '\n' + ws.gpu[0]!.evidence.slice(40);
    refusedWith(() => parseComponentEvidence(ws), /gpu\[0\]: evidence is not standard base64/);
    const url = componentEvidence([{ ...e, evidence: e.evidence.replace(/\+/g, '-').replace(/\//g, '_') }]);
    refusedWith(() => parseComponentEvidence(url), /gpu\[0\]: evidence is not standard base64/);
    const bits = componentEvidence([{ ...e, evidence: 'QR==' }]);
    refusedWith(() => parseComponentEvidence(bits), /non-zero trailing bits/);
    const nopad = componentEvidence([{ ...e, certificate: e.certificate.replace(/=+$/, '') }]);
    if (nopad.gpu[0]!.evidence !== componentEvidence([e]).gpu[0]!.evidence) refusedWith(() => parseComponentEvidence(nopad), /certificate is not standard base64/);
    const big = componentEvidence([{ ...e, evidence: Buffer.alloc(16 * 1024 + 1).toString('base64') }]);
    refusedWith(() => parseComponentEvidence(big), /evidence is larger than/);
    const notJson = { gpu: [{ type: 'gpu-nvidia', 'device-index': 0, evidence: Buffer.from('{nope').toString('base64') }] };
    refusedWith(() => parseComponentEvidence(notJson), /not base64 of a JSON document/);
    const huge = { gpu: [{ type: 'gpu-nvidia', 'device-index': 0, evidence: 'A'.repeat(40 * 1024) }] };
    refusedWith(() => parseComponentEvidence(huge), /larger than/);
    refusedWith(() => parseComponentEvidence(componentEvidence([{ ...e, arch: 'AMPERE' }])), /arch "AMPERE"/);
    refusedWith(() => parseComponentEvidence(componentEvidence([{ ...e, nonce: 'xyz' }])), /nonce must be 64 hex/);
    const { certificate: _c, ...noCert } = e;
    refusedWith(() => parseComponentEvidence(componentEvidence([noCert as SdkEntry])), /certificate must be a base64 string/);
  });

  it('the hook: no components section binds but does not evaluate; a GPU policy refuses a request without GPUs', async () => {
    const hook = gpuComponentHook(undefined);
    const parsed = hook.parse(componentEvidence(one))!;
    const a = await hook.appraise(parsed, { id: 'p', components: undefined }, 'ab'.repeat(32));
    assert.deepEqual(a.notes, [NOT_EVALUATED_NOTE]);
    assert.equal(a.audit?.components_evaluated, false);
    const gpuPolicy = { gpu: { 'gpu-nvidia': { 'authorization-rules': {} } } };
    await assert.rejects(hook.appraise(undefined, { id: 'p', components: gpuPolicy }, 'ab'.repeat(32)), (e: unknown) => isTasError(e) && e.status === 400 && e.reason === 'GPU_REQUIRED');
    await assert.rejects(hook.appraise(parsed, { id: 'p', components: gpuPolicy }, 'ab'.repeat(32)), (e: unknown) => isTasError(e) && e.status === 400 && e.reason === 'GPU_UNSUPPORTED');
  });
});

describe('gpu: component-evidence bound into REPORT_DATA over HTTP (real daemon, SNP)', function () {
  this.timeout(120_000);
  let lab: Lab;
  before(async () => {
    lab = await createLab({ products: ['Genoa'] });
    assert.equal((await storePolicy(lab, policyDoc('p-nogpu'))).status, 201);
  });
  after(async () => {
    await lab?.close();
  });

  const records = () => lab.daemon.audit.records.filter((r) => r.event === 'get_secret');

  for (const n of [1, 2, 8]) {
    it(`${n} GPU(s) in the agent's exact shape: released under a policy without components, audit says not evaluated`, async () => {
      const entries = eight.slice(0, n);
      const keys = agentKeys();
      const nonce = await getNonce(lab);
      const report = lab.kits.Genoa.signReport({ reportData: reportData(nonce, keys.wire, true, componentHashes(entries)) });
      const before = records().length;
      const r = await getSecret(lab, { nonce, report, keys, policyId: 'p-nogpu', components: componentEvidence(entries) });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(decryptReply(r.body, keys), SECRET);
      const rec = records().slice(before);
      assert.equal(rec.length, 1);
      assert.equal(rec[0]!.details!.components, 'bound');
      assert.equal(rec[0]!.details!.components_evaluated, false);
      assert.deepEqual(rec[0]!.details!.notes, [NOT_EVALUATED_NOTE]);
    });
  }

  it('GPU dropped or reordered after binding: 400 REPORT_DATA_MISMATCH', async () => {
    const entries = eight.slice(0, 3);
    for (const sent of [componentEvidence(entries.slice(0, 2)), componentEvidence([entries[1]!, entries[0]!, entries[2]!])]) {
      const keys = agentKeys();
      const nonce = await getNonce(lab);
      const report = lab.kits.Genoa.signReport({ reportData: reportData(nonce, keys.wire, true, componentHashes(entries)) });
      const before = records().length;
      const r = await getSecret(lab, { nonce, report, keys, policyId: 'p-nogpu', components: sent });
      assert.equal(r.status, 400);
      assert.deepEqual(r.body, { error: 'TEE verification failed' });
      assert.equal(records().slice(before)[0]!.reason, 'REPORT_DATA_MISMATCH');
    }
  });

  it('GPUs bound but not sent: 400 REPORT_DATA_MISMATCH; sent but not bound: likewise', async () => {
    const keys = agentKeys();
    let nonce = await getNonce(lab);
    let report = lab.kits.Genoa.signReport({ reportData: reportData(nonce, keys.wire, true, componentHashes(one)) });
    let r = await getSecret(lab, { nonce, report, keys, policyId: 'p-nogpu' });
    assert.equal(r.status, 400);
    nonce = await getNonce(lab);
    report = lab.kits.Genoa.signReport({ reportData: reportData(nonce, keys.wire, true) });
    r = await getSecret(lab, { nonce, report, keys, policyId: 'p-nogpu', components: componentEvidence(one) });
    assert.equal(r.status, 400);
  });

  it('malformed component evidence: 400 that keeps the nonce (the corrected retry succeeds)', async () => {
    const keys = agentKeys();
    const nonce = await getNonce(lab);
    const report = lab.kits.Genoa.signReport({ reportData: reportData(nonce, keys.wire, true, componentHashes(one)) });
    const bad = componentEvidence(one);
    bad.gpu[0]!['device-index'] = 1;
    const before = records().length;
    const r = await getSecret(lab, { nonce, report, keys, policyId: 'p-nogpu', components: bad });
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, { error: "Invalid or missing field 'component-evidence'" });
    assert.equal(records().slice(before)[0]!.reason, 'GPU_EVIDENCE_MALFORMED');
    const ok = await getSecret(lab, { nonce, report, keys, policyId: 'p-nogpu', components: componentEvidence(one) });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });
});
