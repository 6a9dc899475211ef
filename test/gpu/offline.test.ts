/**
 * Air-gapped host (TAS_NVIDIA_OFFLINE=true): with nothing imported a GPU policy answers 503 +
 * Retry-After and keeps the nonce (fail-closed), or — with TAS_CRL_FAIL_MODE=open and a policy that
 * accepts an unknown revocation status — releases; after `tas gpu import` of the RIMs and OCSP
 * answers (fetched on a "connected machine" from a real `openssl ocsp`), releases with NVIDIA
 * unreachable.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildOcspRequest } from '../../src/native/gpu';
import { tasInProcess } from '../support/cli-inproc';
import { componentEvidence, componentHashes } from '../support/gpu-evidence';
import { FakeNvidia, type FakeGpu } from '../support/fake-nvidia';
import { FakeOcsp } from '../support/fake-nvidia-services';
import { agentKeys, createLab, decryptReply, getNonce, getSecret, policyDoc, reportData, SECRET, storePolicy, type Lab } from '../support/lab';
import { GOLDEN, GPU_POLICY, goldenRims, writeGpuTrust } from '../support/gpu-lab';

describe('gpu: air-gapped host (TAS_NVIDIA_OFFLINE, tas gpu import)', function () {
  this.timeout(300_000);
  let nv: FakeNvidia;
  let gpu: FakeGpu;
  let lab: Lab;
  let trustDir: string;

  before(async () => {
    nv = FakeNvidia.create();
    gpu = nv.gpu(0);
    nv.listValid([nv.identity, nv.provisioner, gpu.brom]);
    trustDir = writeGpuTrust(nv.dir, nv);
    // NVIDIA is unreachable: both URLs point at a closed port.
    lab = await createLab({ products: ['Genoa'], env: { TAS_NVIDIA_OFFLINE: 'true', TAS_NVIDIA_EXTRA_TRUST_DIR: trustDir, TAS_NVIDIA_RIM_URL: 'http://127.0.0.1:9/', TAS_NVIDIA_OCSP_URL: 'http://127.0.0.1:9/' } });
    assert.equal((await storePolicy(lab, { ...policyDoc('p-gpu'), components: GPU_POLICY })).status, 201);
  });
  after(async () => {
    await lab?.close();
    nv?.close();
  });

  async function attempt(policyId = 'p-gpu', nonce?: string) {
    const keys = agentKeys();
    const n = nonce ?? (await getNonce(lab));
    const entry = gpu.entry({ nonce: n, measurements: GOLDEN, driverVersion: '550.144.03', vbiosVersion: '96.00.5E.00.01' });
    const report = lab.kits.Genoa.signReport({ reportData: reportData(n, keys.wire, true, componentHashes([entry])) });
    const r = await getSecret(lab, { nonce: n, report, keys, policyId, components: componentEvidence([entry]) });
    return { r, keys, nonce: n };
  }

  it('nothing imported: 503 + Retry-After naming what to import, and the nonce is kept', async () => {
    const a = await attempt();
    assert.equal(a.r.status, 503, JSON.stringify(a.r.body));
    assert.ok(a.r.headers.get('retry-after'));
    const rec = lab.daemon.audit.records.filter((x) => x.event === 'get_secret').at(-1)!;
    assert.equal(rec.reason, 'GPU_REVOCATION_UNAVAILABLE');
    assert.match(String(rec.details?.detail), /TAS_NVIDIA_OFFLINE=true.*tas gpu import/);
    const again = await attempt('p-gpu', a.nonce);
    assert.equal(again.r.status, 503, 'the same nonce is still usable');
  });

  it('after `tas gpu import` of RIMs and OCSP answers: released with NVIDIA unreachable', async () => {
    // On a connected machine: the RIMs and current OCSP answers for the chain's CA certificates.
    const bundle = join(nv.dir, 'bundle');
    mkdirSync(bundle);
    for (const [id, xml] of goldenRims(nv)) writeFileSync(join(bundle, `${id}.xml`), xml);
    const ocsp = await FakeOcsp.start(nv);
    try {
      const der = (p: string) => new X509Certificate(p).raw;
      for (const [c, i] of [[gpu.brom, nv.provisioner], [nv.provisioner, nv.identity], [nv.identity, nv.root]] as const) {
        const res = await fetch(ocsp.url, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: new Uint8Array(buildOcspRequest(der(c.pem), der(i.pem))) });
        assert.equal(res.status, 200);
        writeFileSync(join(bundle, `${c.serial.toLowerCase()}.der`), Buffer.from(await res.arrayBuffer()));
      }
    } finally {
      await ocsp.stop();
    }
    const env = { ...lab.env, TAS_NVIDIA_OFFLINE: 'true' };
    const imp = await tasInProcess(['gpu', 'import', bundle, '--format', 'json'], env);
    assert.equal(imp.code, 0, imp.out + imp.err);
    const out = JSON.parse(imp.out) as { ok: boolean; results: Array<{ ok: boolean }> };
    assert.equal(out.results.length, 5);
    const st = await tasInProcess(['gpu', 'status', '--format', 'json'], env);
    assert.equal((JSON.parse(st.out) as { rims: string[] }).rims.length, 2);

    const a = await attempt();
    assert.equal(a.r.status, 200, JSON.stringify(a.r.body));
    assert.equal(decryptReply(a.r.body, a.keys), SECRET);
  });

  it('a tampered RIM is refused by `tas gpu import` (xmlsec1 verdict)', async () => {
    const bad = join(nv.dir, 'bad');
    mkdirSync(bad);
    writeFileSync(join(bad, 'NV_GPU_DRIVER_GH100_999.1.xml'), nv.rim({ version: '999.1', measurements: [{ index: 0, values: [GOLDEN[0]!] }], tamper: true }));
    const imp = await tasInProcess(['gpu', 'import', bad], { ...lab.env });
    assert.equal(imp.code, 1, imp.out + imp.err);
    assert.match(imp.out, /FAIL .*signature does not verify/);
  });
});

describe('gpu: air-gapped host with TAS_CRL_FAIL_MODE=open (RIMs imported, no OCSP answer)', function () {
  this.timeout(300_000);
  let nv: FakeNvidia;
  let gpu: FakeGpu;
  let lab: Lab;
  const UNKNOWN_OK = {
    gpu: {
      'gpu-nvidia': {
        ...GPU_POLICY.gpu['gpu-nvidia'],
        'authorization-rules': {
          ...GPU_POLICY.gpu['gpu-nvidia']['authorization-rules'],
          'detached-claims': { ...GPU_POLICY.gpu['gpu-nvidia']['authorization-rules']['detached-claims'], 'x-nvidia-gpu-attestation-report-cert-chain': { 'x-nvidia-cert-status': 'valid' } },
        },
      },
    },
  };

  before(async () => {
    nv = FakeNvidia.create();
    gpu = nv.gpu(0);
    const trustDir = writeGpuTrust(nv.dir, nv);
    lab = await createLab({ products: ['Genoa'], env: { TAS_NVIDIA_OFFLINE: 'true', TAS_CRL_FAIL_MODE: 'open', TAS_NVIDIA_EXTRA_TRUST_DIR: trustDir, TAS_NVIDIA_RIM_URL: 'http://127.0.0.1:9/', TAS_NVIDIA_OCSP_URL: 'http://127.0.0.1:9/' } });
    assert.equal((await storePolicy(lab, { ...policyDoc('p-gpu'), components: GPU_POLICY })).status, 201);
    assert.equal((await storePolicy(lab, { ...policyDoc('p-unknown-ok'), components: UNKNOWN_OK })).status, 201);
    const bundle = join(nv.dir, 'rims-only');
    mkdirSync(bundle);
    for (const [id, xml] of goldenRims(nv)) writeFileSync(join(bundle, `${id}.xml`), xml);
    const imp = await tasInProcess(['gpu', 'import', bundle], { ...lab.env });
    assert.equal(imp.code, 0, imp.out + imp.err);
  });
  after(async () => {
    await lab?.close();
    nv?.close();
  });

  async function attempt(policyId: string, driverVersion = '550.144.03') {
    const keys = agentKeys();
    const n = await getNonce(lab);
    const entry = gpu.entry({ nonce: n, measurements: GOLDEN, driverVersion, vbiosVersion: '96.00.5E.00.01' });
    const report = lab.kits.Genoa.signReport({ reportData: reportData(n, keys.wire, true, componentHashes([entry])) });
    const r = await getSecret(lab, { nonce: n, report, keys, policyId, components: componentEvidence([entry]) });
    return { r, keys, rec: lab.daemon.audit.records.filter((x) => x.event === 'get_secret').at(-1)! };
  }

  it('a policy that accepts an unknown revocation status releases; the audit record says the status was unknown', async () => {
    const a = await attempt('p-unknown-ok');
    assert.equal(a.r.status, 200, `${JSON.stringify(a.r.body)} ${String(a.rec.details?.detail)}`);
    assert.equal(decryptReply(a.r.body, a.keys), SECRET);
    assert.deepEqual(a.rec.details?.gpu_ocsp, ['unknown']);
    assert.match(JSON.stringify(a.rec.details?.notes), /gpu\[0\]: revocation status unknown \(TAS_CRL_FAIL_MODE=open\)/);
  });

  it('a policy that requires OCSP "good" refuses (400), naming the claim', async () => {
    const a = await attempt('p-gpu');
    assert.equal(a.r.status, 400);
    assert.equal(a.rec.reason, 'GPU_POLICY_FAILED');
    assert.match(String(a.rec.details?.detail), /gpu\[0\]: .*x-nvidia-cert-ocsp-status/);
  });

  it('a RIM that is not imported is still 503 + Retry-After (fail mode is about revocation only)', async () => {
    const a = await attempt('p-unknown-ok', '550.999.01');
    assert.equal(a.r.status, 503, JSON.stringify(a.r.body));
    assert.ok(a.r.headers.get('retry-after'));
    assert.equal(a.rec.reason, 'GPU_RIM_UNAVAILABLE');
  });
});
