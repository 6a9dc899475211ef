/**
 * certify with `gpu-evidence` (PROTOCOL.md §2.2): the same pipeline as get_secret binds every GPU
 * into REPORT_DATA (SHA-512(nonce ‖ CSR key ‖ component_hashes)) and, under a policy with
 * `components.gpu.gpu-nvidia`, verifies and judges each GPU exactly as get_secret does — fake
 * NVIDIA GPUs, xmlsec1-signed RIMs from a fake RIM service, `openssl ocsp` answers. Released: a
 * certificate; refused: 403 with the same audit reasons as get_secret; malformed GPU evidence: 400
 * that keeps the nonce; a policy without `components`: bound, not evaluated.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alphaNonce, bindingReportData, makeCsr, newKey, postCertify, workDir, type AgentCsr } from '../support/certify';
import { FakeNvidia, type FakeGpu } from '../support/fake-nvidia';
import { FakeOcsp, FakeRimService } from '../support/fake-nvidia-services';
import { componentEvidence, componentHashes, type SdkEntry } from '../support/gpu-evidence';
import { DRIVER, GOLDEN, GPU_POLICY, VBIOS, goldenRims, writeGpuTrust } from '../support/gpu-lab';
import { createLab, policyDoc, storePolicy, type Lab } from '../support/lab';

const CERT_DIR = join(workDir(), 'ca-gpu');

describe('certify: gpu-evidence bound and judged as for get_secret (SNP, fake NVIDIA)', function () {
  this.timeout(300_000);
  let lab: Lab;
  let base: string;
  let nv: FakeNvidia;
  let gpus: FakeGpu[];
  let rims: FakeRimService;
  let ocsp: FakeOcsp;

  before(async () => {
    nv = FakeNvidia.create();
    gpus = [nv.gpu(0), nv.gpu(1)];
    nv.listValid([nv.identity, nv.provisioner, ...gpus.map((g) => g.brom)]);
    rims = await FakeRimService.start();
    for (const [id, xml] of goldenRims(nv)) rims.rims.set(id, xml);
    ocsp = await FakeOcsp.start(nv);
    mkdirSync(CERT_DIR, { recursive: true, mode: 0o700 });
    const cfg = join(CERT_DIR, 'cert.yaml');
    writeFileSync(cfg, ['key_type: EC', `root_key_file: ${join(CERT_DIR, 'root.key')}`, `root_cert_file: ${join(CERT_DIR, 'root.pem')}`, `ca_key_file: ${join(CERT_DIR, 'ca.key')}`, `ca_cert_file: ${join(CERT_DIR, 'ca.pem')}`, ''].join('\n'));
    lab = await createLab({
      products: ['Genoa'],
      env: {
        TAS_CERT_ENABLED: 'true', TAS_CERT_CONFIG_FILE: cfg, TAS_CERT_TRUST_DOMAIN: 'tas.test',
        TAS_NVIDIA_EXTRA_TRUST_DIR: writeGpuTrust(nv.dir, nv), TAS_NVIDIA_RIM_URL: rims.url, TAS_NVIDIA_OCSP_URL: ocsp.url,
      },
    });
    base = lab.daemon.urls.main;
    assert.equal((await storePolicy(lab, { ...policyDoc('gpu-web'), components: GPU_POLICY })).status, 201);
    assert.equal((await storePolicy(lab, policyDoc('plain-web'))).status, 201);
  });
  after(async () => {
    await lab?.close();
    await rims?.stop();
    await ocsp?.stop();
    nv?.close();
  });

  const records = () => lab.daemon.audit.records.filter((r) => r.event === 'certify');
  const good = (g: FakeGpu, nonce: string): SdkEntry => g.entry({ nonce, measurements: GOLDEN, driverVersion: DRIVER, vbiosVersion: VBIOS });

  /** certify sends one request: `bound` GPUs in REPORT_DATA, `sent` GPUs in gpu-evidence (default: the same). */
  async function certify(domain: string, make: (nonce: string) => SdkEntry[], o: { sent?: (e: SdkEntry[]) => unknown; nonce?: string; csr?: AgentCsr } = {}) {
    const csr = o.csr ?? makeCsr(newKey('ec-p256'));
    const nonce = o.nonce ?? (await alphaNonce(base));
    const entries = make(nonce);
    const rd = entries.length
      ? createHash('sha512').update(Buffer.from(nonce, 'ascii')).update(csr.bindingKey).update(componentHashes(entries)).digest()
      : bindingReportData(nonce, csr.bindingKey);
    const gpu = o.sent ? o.sent(entries) : entries.length ? componentEvidence(entries).gpu : undefined;
    const before = records().length;
    const r = await postCertify(base, { nonce, evidence: lab.kits.Genoa.signReport({ reportData: rd }), csr: csr.pem, domain, ...(gpu !== undefined ? { extra: { 'gpu-evidence': gpu } } : {}) });
    const rec = records().slice(before);
    assert.equal(rec.length, 1, 'exactly one audit record');
    return { r, rec: rec[0]!, nonce, csr, entries };
  }

  it('two GPUs under a GPU policy: a certificate, and the audit record shows both GPUs evaluated (measres, OCSP)', async () => {
    const { r, rec } = await certify('gpu-web', (n) => gpus.map((g) => good(g, n)));
    assert.equal(r.status, 200, `${JSON.stringify(r.body)} ${String(rec.details?.detail)}`);
    assert.match(String(r.body.certificate), /^-----BEGIN CERTIFICATE-----/);
    assert.equal(rec.details?.components, 'bound');
    assert.equal(rec.details?.components_evaluated, true);
    assert.deepEqual(rec.details?.gpu_measres, ['success', 'success']);
    assert.deepEqual(rec.details?.gpu_ocsp, ['good', 'good']);
  });

  it('refusals are get_secret\'s, with certify\'s 403: tampered GPU, wrong GPU nonce, GPU dropped after binding, policy requiring GPUs without any', async () => {
    const tampered = await certify('gpu-web', (n) => {
      const e = gpus.map((g) => good(g, n));
      const spdm = Buffer.from(e[1]!.evidence, 'base64');
      spdm[37 + 8 + 7] ^= 1;
      e[1]!.evidence = spdm.toString('base64');
      return e;
    });
    assert.equal(tampered.r.status, 403, JSON.stringify(tampered.r.body));
    assert.equal(tampered.rec.reason, 'GPU_SIGNATURE_INVALID');
    assert.match(String(tampered.rec.details?.detail), /gpu\[1\] signature/);

    const foreign = await certify('gpu-web', () => [good(gpus[0]!, 'ee'.repeat(32))]);
    assert.equal(foreign.r.status, 403);
    assert.equal(foreign.rec.reason, 'GPU_NONCE_MISMATCH');

    const dropped = await certify('gpu-web', (n) => gpus.map((g) => good(g, n)), { sent: (e) => componentEvidence([e[0]!]).gpu });
    assert.equal(dropped.r.status, 403);
    assert.equal(dropped.rec.reason, 'REPORT_DATA_MISMATCH');

    const none = await certify('gpu-web', () => []);
    assert.equal(none.r.status, 403);
    assert.equal(none.rec.reason, 'GPU_REQUIRED');
  });

  it('malformed gpu-evidence is a 400 that keeps the nonce: the corrected request with the same nonce is issued', async () => {
    const csr = makeCsr(newKey('ec-p256'));
    const nonce = await alphaNonce(base);
    const bad = await certify('gpu-web', (n) => [good(gpus[0]!, n)], { nonce, csr, sent: (e) => [{ type: 'gpu-nvidia', 'device-index': 0, evidence: Buffer.from(JSON.stringify({ ...e[0]!, evidence: `${e[0]!.evidence}=` })).toString('base64') }] });
    assert.equal(bad.r.status, 400, JSON.stringify(bad.r.body));
    assert.equal(bad.rec.reason, 'GPU_EVIDENCE_MALFORMED');
    const ok = await certify('gpu-web', () => bad.entries, { nonce, csr });
    assert.equal(ok.r.status, 200, `${JSON.stringify(ok.r.body)} ${String(ok.rec.details?.detail)}`);
  });

  it('a policy without components: the GPUs are bound (a dropped one is a mismatch) but not evaluated', async () => {
    const { r, rec } = await certify('plain-web', (n) => [good(gpus[0]!, n)]);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(rec.details?.components, 'bound');
    assert.equal(rec.details?.components_evaluated, false);
    const dropped = await certify('plain-web', (n) => gpus.map((g) => good(g, n)), { sent: (e) => componentEvidence([e[1]!]).gpu });
    assert.equal(dropped.r.status, 403);
    assert.equal(dropped.rec.reason, 'REPORT_DATA_MISMATCH');
  });
});
