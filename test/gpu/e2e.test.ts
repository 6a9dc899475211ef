/**
 * GPUs attested with their CVM, end to end over HTTP (real daemon, SNP reports from the fake AMD
 * signer and TDX quotes from the fake DCAP signer with collateral from a fake PCS — every case runs
 * on both — GPUs from the fake NVIDIA signer, RIMs signed with xmlsec1 and served by a fake RIM
 * service, OCSP from real `openssl ocsp` responders): the agent's exact request shape with 1, 2
 * and 8 GPUs is released under a GPU policy, and every kind of bad GPU is refused with a reason
 * that names the GPU index and the check.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeIntel } from '../support/fake-intel';
import { FakePcs } from '../support/fake-pcs';
import { componentEvidence, componentHashes, type SdkEntry } from '../support/gpu-evidence';
import { FakeNvidia, type FakeGpu } from '../support/fake-nvidia';
import { FakeOcsp, FakeRimService } from '../support/fake-nvidia-services';
import { DRIVER, GOLDEN, GPU_POLICY, VBIOS, goldenRims, writeGpuTrust } from '../support/gpu-lab';
import { agentKeys, createLab, decryptReply, getNonce, getSecret, policyDoc, reportData, SECRET, storePolicy, type Lab } from '../support/lab';

const MR_TD = Buffer.alloc(48, 0x5a);
const TDX_RULES = { tcb: { update: 'standard', platform_tcb: 'UpToDate', tdx_module_tcb: 'UpToDate', qe_tcb: 'UpToDate' }, body: { mr_td: MR_TD.toString('hex') }, td: { sept_ve_disable: true } };

for (const tee of ['amd-sev-snp', 'intel-tdx'] as const) describe(`gpu: GPUs attested with their CVM, end to end (${tee === 'intel-tdx' ? 'TDX' : 'SNP'}, fake NVIDIA, xmlsec1 RIMs, openssl ocsp)`, function () {
  this.timeout(300_000);
  let lab: Lab;
  let intel: FakeIntel | undefined;
  let pcs: FakePcs | undefined;
  let tdxTrust: string | undefined;
  /** sign makes the CVM's evidence (SNP report or TDX quote) with this REPORT_DATA. */
  const sign = (rd: Buffer): Buffer => (tee === 'intel-tdx' ? intel!.quote({ reportData: rd, mrTd: MR_TD }) : lab.kits.Genoa.signReport({ reportData: rd }));
  const doc = (id: string): Record<string, unknown> => (tee === 'intel-tdx' ? policyDoc(id, TDX_RULES, { policy_type: 'TDX' }) : policyDoc(id));
  let nv: FakeNvidia;
  let other: FakeNvidia;
  let gpus: FakeGpu[];
  let revoked: FakeGpu;
  let late: FakeGpu;
  let rims: FakeRimService;
  let ocsp: FakeOcsp;

  before(async () => {
    nv = FakeNvidia.create();
    other = FakeNvidia.create('Other');
    gpus = Array.from({ length: 8 }, (_, i) => nv.gpu(i));
    revoked = nv.gpu(20);
    late = nv.gpu(30);
    // The responders' database: every CA and device certificate valid, one device revoked.
    nv.listValid([nv.identity, nv.provisioner, late.brom, ...gpus.map((g) => g.brom)]);
    nv.revoke(revoked);
    rims = await FakeRimService.start();
    for (const [id, xml] of goldenRims(nv)) rims.rims.set(id, xml);
    ocsp = await FakeOcsp.start(nv);
    const trustDir = writeGpuTrust(nv.dir, nv);
    const env: Record<string, string> = { TAS_NVIDIA_EXTRA_TRUST_DIR: trustDir, TAS_NVIDIA_RIM_URL: rims.url, TAS_NVIDIA_OCSP_URL: ocsp.url };
    if (tee === 'intel-tdx') {
      intel = FakeIntel.create();
      tdxTrust = mkdtempSync(join(tmpdir(), 'tas-tdx-trust-'));
      intel.writeTrustDir(tdxTrust);
      pcs = await new FakePcs().start();
      pcs.serveCollateral({ fmspc: intel.sgx.fmspc, ...intel.collateral() });
      Object.assign(env, { TAS_PCS_BASE_URL: pcs.url, TAS_PCS_ROOT_CRL_URL: pcs.rootCrlUrl, TAS_TDX_EXTRA_TRUST_DIR: tdxTrust });
    }
    lab = await createLab({ products: ['Genoa'], env });
    assert.equal((await storePolicy(lab, { ...doc('p-gpu'), components: GPU_POLICY })).status, 201);
    assert.equal((await storePolicy(lab, { ...doc('p-gpu2'), components: { gpu: { 'gpu-nvidia': { ...GPU_POLICY.gpu['gpu-nvidia'], count: 2 } } } })).status, 201);
  });
  after(async () => {
    await lab?.close();
    await rims?.stop();
    await ocsp?.stop();
    nv?.close();
    other?.close();
    await pcs?.stop();
    if (tdxTrust) rmSync(tdxTrust, { recursive: true, force: true });
  });

  const records = () => lab.daemon.audit.records.filter((r) => r.event === 'get_secret');

  /** send builds the agent's request for these SDK entries (or entries made from the nonce) and sends it. */
  async function send(make: (nonce: string) => SdkEntry[], opts: { policyId?: string; bindOverride?: SdkEntry[]; sent?: (e: SdkEntry[]) => unknown } = {}) {
    const keys = agentKeys();
    const nonce = await getNonce(lab);
    const entries = make(nonce);
    const bound = opts.bindOverride ?? entries;
    const report = sign(reportData(nonce, keys.wire, true, bound.length ? componentHashes(bound) : undefined));
    const before = records().length;
    const components = opts.sent ? opts.sent(entries) : entries.length ? componentEvidence(entries) : undefined;
    const r = await getSecret(lab, { nonce, report, keys, teeType: tee, policyId: opts.policyId ?? 'p-gpu', ...(components !== undefined ? { components } : {}) });
    const rec = records().slice(before);
    assert.equal(rec.length, 1, 'exactly one audit record');
    return { r, keys, rec: rec[0]!, nonce, report, entries };
  }

  const good = (g: FakeGpu, nonce: string, shape: 4 | 7 = 4) => g.entry({ nonce, measurements: GOLDEN, driverVersion: DRIVER, vbiosVersion: VBIOS, shape });

  async function refused(p: ReturnType<typeof send>, reason: string, detail: RegExp): Promise<void> {
    const { r, rec } = await p;
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.deepEqual(r.body, { error: 'TEE verification failed' });
    assert.equal(rec.reason, reason, String(rec.details?.detail));
    assert.match(String(rec.details?.detail), detail);
  }

  for (const n of [1, 2, 8]) {
    it(`${n} GPU(s), the agent's exact request shape: released under a GPU policy`, async () => {
      const { r, keys, rec } = await send((nonce) => gpus.slice(0, n).map((g, i) => good(g, nonce, i % 2 ? 7 : 4)));
      assert.equal(r.status, 200, `${JSON.stringify(r.body)} ${String(rec.details?.detail)}`);
      assert.equal(decryptReply(r.body, keys), SECRET);
      assert.equal(rec.details?.components_evaluated, true);
      assert.equal(rec.details?.tee_type, tee);
      assert.deepEqual(rec.details?.gpu_measres, Array(n).fill('success'));
      assert.deepEqual(rec.details?.gpu_ocsp, Array(n).fill('good'));
    });
  }

  it('tampered measurement (a byte flipped after signing): 400, gpu[1] signature', async () => {
    await refused(send((nonce) => {
      const e = [good(gpus[0]!, nonce), good(gpus[1]!, nonce)];
      const spdm = Buffer.from(e[1]!.evidence, 'base64');
      spdm[37 + 8 + 7] ^= 0x01;
      e[1]!.evidence = spdm.toString('base64');
      return e;
    }), 'GPU_SIGNATURE_INVALID', /gpu\[1\] signature/);
  });

  it('wrong nonce in the GPU evidence: 400, gpu[0] nonce', async () => {
    await refused(send(() => [good(gpus[0]!, randomBytes(32).toString('hex'))]), 'GPU_NONCE_MISMATCH', /gpu\[0\] nonce/);
  });

  it('a GPU dropped or reordered after binding: 400 REPORT_DATA_MISMATCH', async () => {
    await refused(send((nonce) => [good(gpus[0]!, nonce), good(gpus[1]!, nonce)], { sent: (e) => componentEvidence([e[0]!]) }), 'REPORT_DATA_MISMATCH', /component/);
    await refused(send((nonce) => [good(gpus[0]!, nonce), good(gpus[1]!, nonce)], { sent: (e) => componentEvidence([e[1]!, e[0]!]) }), 'REPORT_DATA_MISMATCH', /component/);
  });

  it('a chain to another root: 400, gpu[0] chain', async () => {
    const stranger = other.gpu(0);
    await refused(send((nonce) => [good(stranger, nonce)]), 'GPU_CHAIN_INVALID', /gpu\[0\] chain/);
  });

  it('FWID mismatch (certificate vs signed opaque FWID): 400, gpu[1] fwid', async () => {
    await refused(send((nonce) => [good(gpus[0]!, nonce), gpus[1]!.entry({ nonce, measurements: GOLDEN, driverVersion: DRIVER, vbiosVersion: VBIOS, fwid: randomBytes(48) })]), 'GPU_FWID_MISMATCH', /gpu\[1\] fwid/);
  });

  it('a measurement no RIM allows: 400, gpu[0] measres with the index', async () => {
    const m = GOLDEN.map((b, i) => (i === 3 ? randomBytes(48) : b));
    await refused(send((nonce) => [gpus[0]!.entry({ nonce, measurements: m, driverVersion: DRIVER, vbiosVersion: VBIOS })]), 'GPU_MEASUREMENT_MISMATCH', /gpu\[0\]: measres: "failure".*measurement 3 \(driver\) matches no RIM value/);
  });

  it('debug mode (the VBIOS debug measurement differs): 400, dbgstat not disabled', async () => {
    const m = GOLDEN.map((b, i) => (i === 9 ? Buffer.alloc(48, 0xdb) : b));
    await refused(send((nonce) => [gpus[0]!.entry({ nonce, measurements: m, driverVersion: DRIVER, vbiosVersion: VBIOS })]), 'GPU_MEASUREMENT_MISMATCH', /gpu\[0\]: .*dbgstat: absent, policy requires "disabled".*measurement 9 \(vbios\)/);
  });

  it('a revoked device certificate (OCSP): 400, gpu[1] revocation', async () => {
    await refused(send((nonce) => [good(gpus[0]!, nonce), good(revoked, nonce)]), 'GPU_CERT_REVOKED', /gpu\[1\] revocation: revoked: keyCompromise/);
  });

  it('a GPU policy refuses a request without GPUs; count is enforced', async () => {
    await refused(send(() => []), 'GPU_REQUIRED', /requires NVIDIA GPUs/);
    await refused(send((nonce) => [good(gpus[0]!, nonce)], { policyId: 'p-gpu2' }), 'GPU_COUNT_MISMATCH', /exactly 2 GPUs; the request carries 1/);
    const ok = await send((nonce) => [good(gpus[0]!, nonce), good(gpus[1]!, nonce)], { policyId: 'p-gpu2' });
    assert.equal(ok.r.status, 200);
  });

  it('OCSP responder down with nothing fresh cached (fail-closed): 503 + Retry-After, the nonce is kept', async () => {
    const g = late; // no OCSP answer for its BROM certificate is cached yet
    ocsp.up = false;
    try {
      const first = await send((nonce) => [good(g, nonce)]);
      assert.equal(first.r.status, 503, JSON.stringify(first.r.body));
      assert.ok(first.r.headers.get('retry-after'));
      assert.equal(first.rec.reason, 'GPU_REVOCATION_UNAVAILABLE');
      ocsp.up = true;
      const retry = await getSecret(lab, { nonce: first.nonce, report: first.report, keys: first.keys, teeType: tee, policyId: 'p-gpu', components: componentEvidence(first.entries) });
      assert.equal(retry.status, 200, JSON.stringify(retry.body));
    } finally {
      ocsp.up = true;
    }
  });

  it('the policy section is checked at store time: unknown claims and rules-only signatures are refused', async () => {
    const bad = await storePolicy(lab, { ...doc('p-bad'), components: { gpu: { 'gpu-nvidia': { 'authorization-rules': { 'detached-claims': { 'x-nvidia-no-such-claim': true } } } } } });
    assert.equal(bad.status, 400);
    const bad2 = await storePolicy(lab, { ...doc('p-bad2'), components: { gpu: { 'gpu-nvidia': { 'authorization-rules': { 'detached-claims': { measres: true } } } } } });
    assert.equal(bad2.status, 400);
  });
});
