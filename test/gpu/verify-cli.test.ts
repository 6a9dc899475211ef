/**
 * `tas verify --gpu-evidence FILE [--nonce HEX] [--at TIME] [--rim PATH] [--ocsp PATH]` offline:
 * fake GPUs with xmlsec1-signed RIMs and `openssl ocsp` answers are valid (exit 0) with the
 * NRAS-named claims the pipeline produces, in every accepted file shape; a genuine sample verifies
 * its device checks and a tampered copy fails the signature; a wrong --nonce, a revoked device and
 * a measurement no RIM allows are invalid (exit 1) naming the GPU and the check; usage errors exit 2.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildOcspRequest } from '../../src/native/gpu';
import type { GpuVerifyEnvelope } from '../../src/gpu/verify-cli';
import { tasInProcess } from '../support/cli-inproc';
import { FakeNvidia, type FakeGpu } from '../support/fake-nvidia';
import { FakeOcsp } from '../support/fake-nvidia-services';
import { componentEvidence, type SdkEntry } from '../support/gpu-evidence';
import { DRIVER, GOLDEN, VBIOS, goldenRims, writeGpuTrust } from '../support/gpu-lab';
import { GENUINE_AT, genuineGpus } from '../support/gpu-vectors';

const NONCE = 'ab'.repeat(32);

describe('tas verify --gpu-evidence', function () {
  this.timeout(120_000);
  let nv: FakeNvidia;
  let gpus: FakeGpu[];
  let revoked: FakeGpu;
  let env: Record<string, string>;
  let rimDir: string;
  let ocspDir: string;
  let n = 0;

  before(async () => {
    nv = FakeNvidia.create();
    gpus = [nv.gpu(0), nv.gpu(1)];
    revoked = nv.gpu(2);
    nv.listValid([nv.identity, nv.provisioner, ...gpus.map((g) => g.brom)]);
    nv.revoke(revoked);
    env = { TAS_NVIDIA_EXTRA_TRUST_DIR: writeGpuTrust(nv.dir, nv), TAS_CACHE_DIR: join(nv.dir, 'cache') };
    rimDir = join(nv.dir, 'rims');
    mkdirSync(rimDir);
    for (const [id, xml] of goldenRims(nv)) writeFileSync(join(rimDir, `${id}.xml`), xml);
    // OCSP answers for every CA certificate of the three chains, fetched from `openssl ocsp`.
    ocspDir = join(nv.dir, 'ocsp-answers');
    mkdirSync(ocspDir);
    const ocsp = await FakeOcsp.start(nv);
    try {
      const der = (p: string) => new X509Certificate(p).raw;
      for (const [c, i] of [...[...gpus, revoked].map((g) => [g.brom, nv.provisioner] as const), [nv.provisioner, nv.identity] as const, [nv.identity, nv.root] as const]) {
        const res = await fetch(ocsp.url, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: new Uint8Array(buildOcspRequest(der(c.pem), der(i.pem))) });
        assert.equal(res.status, 200);
        writeFileSync(join(ocspDir, `${c.serial.toLowerCase()}.der`), Buffer.from(await res.arrayBuffer()));
      }
    } finally {
      await ocsp.stop();
    }
  });
  after(() => nv?.close());

  function file(content: unknown): string {
    const f = join(nv.dir, `ev${n++}.json`);
    writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content));
    return f;
  }
  const good = (g: FakeGpu, o: { nonce?: string; measurements?: Buffer[] } = {}): SdkEntry => g.entry({ nonce: o.nonce ?? NONCE, measurements: o.measurements ?? GOLDEN, driverVersion: DRIVER, vbiosVersion: VBIOS });

  async function run(args: string[], e: Record<string, string> = env): Promise<{ code: number; env: GpuVerifyEnvelope; out: string; err: string }> {
    const r = await tasInProcess(['verify', ...args], e);
    let parsed: GpuVerifyEnvelope = undefined as never;
    if (r.code !== 2 && !args.includes('text')) parsed = JSON.parse(r.out) as GpuVerifyEnvelope;
    return { ...r, env: parsed };
  }

  it('two fake GPUs as a JSON array, with RIMs and OCSP answers: valid (exit 0), NRAS-named claims per GPU', async () => {
    const r = await run(['--gpu-evidence', file([good(gpus[0]!), good(gpus[1]!)]), '--nonce', NONCE, '--rim', rimDir, '--ocsp', ocspDir]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.equal(r.env.valid, true);
    assert.equal(r.env.tee, 'nvidia-gpu');
    assert.deepEqual(r.env.claims, { iss: 'tas', 'x-nvidia-ver': '3.0', 'x-nvidia-overall-att-result': true, 'x-nvidia-gpu-count': 2 });
    assert.deepEqual(r.env.gpus.map((g) => g['device-index']), [0, 1]);
    for (const g of r.env.gpus) {
      assert.equal(g.claims.measres, 'success');
      assert.equal(g.claims.secboot, true);
      assert.equal(g.claims.dbgstat, 'disabled');
      assert.equal(g.claims['x-nvidia-gpu-attestation-report-nonce-match'], true);
      assert.deepEqual(g.claims['x-nvidia-gpu-attestation-report-cert-chain'], { 'x-nvidia-cert-status': 'valid', 'x-nvidia-cert-ocsp-status': 'good', 'x-nvidia-cert-expiration-date': (g.claims['x-nvidia-gpu-attestation-report-cert-chain'] as Record<string, string>)['x-nvidia-cert-expiration-date'] });
      assert.equal(g.claims['x-nvidia-gpu-driver-rim-signature-verified'], true);
      assert.equal(g.claims['x-nvidia-gpu-vbios-rim-signature-verified'], true);
    }
    assert.ok(r.env.checks.some((c) => c.name === 'gpu[1] measurements.vbios' && c.ok));
    assert.ok(r.env.checks.every((c) => c.ok));
  });

  it("the agent's component-evidence object and the single-entry shapes are read too; --format text", async () => {
    const ce = await run(['--gpu-evidence', file(componentEvidence([good(gpus[0]!), good(gpus[1]!)], [1, 0])), '--nonce', NONCE, '--rim', rimDir]);
    assert.equal(ce.code, 0, ce.out);
    assert.equal(ce.env.gpus.length, 2);
    assert.equal(ce.env.gpus[0]!.claims['x-nvidia-gpu-attestation-report-cert-chain'] !== undefined, true);
    const one = await run(['--gpu-evidence', file(gpus[0]!.entry({ nonce: NONCE, measurements: GOLDEN, driverVersion: DRIVER, vbiosVersion: VBIOS, shape: 7 })), '--rim', rimDir, '--format', 'text']);
    assert.equal(one.code, 0, one.out);
    assert.match(one.out, /^NVIDIA GPU evidence \(1 GPU\): VALID/);
    assert.match(one.out, /ok {4}nonce {2}SPDM request nonce equals the entry's own nonce/);
    assert.match(one.out, /measres {2}success/);
  });

  it('a wrong --nonce: invalid (exit 1), gpu[0] nonce', async () => {
    const r = await run(['--gpu-evidence', file([good(gpus[0]!)]), '--nonce', 'cd'.repeat(32), '--rim', rimDir]);
    assert.equal(r.code, 1);
    assert.equal(r.env.valid, false);
    assert.match(r.env.reason!, /^gpu\[0\] nonce: SPDM request nonce differs from the --nonce/);
    assert.equal(r.env.gpus[0]!.claims['x-nvidia-gpu-attestation-report-nonce-match'], false);
  });

  it('a revoked device certificate (imported OCSP answer): invalid, gpu[0] revocation', async () => {
    const r = await run(['--gpu-evidence', file([good(revoked)]), '--rim', rimDir, '--ocsp', ocspDir]);
    assert.equal(r.code, 1);
    assert.match(r.env.reason!, /^gpu\[0\] revocation: revoked: keyCompromise/);
    assert.equal((r.env.gpus[0]!.claims['x-nvidia-gpu-attestation-report-cert-chain'] as Record<string, unknown>)['x-nvidia-cert-ocsp-status'], 'revoked');
  });

  it('a measurement no RIM allows: invalid, the index and its RIM named; no RIM at hand: rim checks fail', async () => {
    const m = GOLDEN.map((b, i) => (i === 7 ? Buffer.alloc(48, 0x77) : b));
    const r = await run(['--gpu-evidence', file([good(gpus[1]!, { measurements: m })]), '--rim', rimDir]);
    assert.equal(r.code, 1);
    assert.match(r.env.reason!, /gpu\[0\] measurements\.vbios: measurement 7 \(vbios\) matches no RIM value/);
    assert.deepEqual(r.env.gpus[0]!.claims['x-nvidia-mismatch-measurement-records'], [{ index: 7, source: 'vbios' }]);
    const none = await run(['--gpu-evidence', file([good(gpus[1]!)])]);
    assert.equal(none.code, 1);
    assert.deepEqual(none.env.gpus[0]!.checks.filter((c) => !c.ok).map((c) => c.name), ['rim.driver', 'rim.vbios']);
    assert.equal(none.env.gpus[0]!.claims.measres, 'failure');
  });

  it('a genuine sample: device checks pass at --at; a byte flipped in its signed measurements fails the signature', async () => {
    const g = genuineGpus().find((x) => x.name === 'sdk-h100-590-ppcie[0]')!;
    const at = new Date(GENUINE_AT * 1000).toISOString();
    const entry = { arch: 'HOPPER', certificate: g.chain.toString('base64'), evidence: g.evidence.toString('base64'), nonce: g.nonce };
    const ok = await run(['--gpu-evidence', file(entry), '--nonce', g.nonce, '--at', at], {});
    assert.equal(ok.code, 1, 'no public RIM for this driver: invalid, but only for that');
    assert.deepEqual(ok.env.checks.filter((c) => !c.ok).map((c) => c.name), ['gpu[0] rim.driver', 'gpu[0] rim.vbios']);
    assert.ok(['chain', 'signature', 'fwid', 'nonce', 'arch'].every((n) => ok.env.gpus[0]!.checks.find((c) => c.name === n)?.ok));
    const t = Buffer.from(g.evidence);
    t[37 + 8 + 7] ^= 1;
    const bad = await run(['--gpu-evidence', file({ ...entry, evidence: t.toString('base64') }), '--nonce', g.nonce, '--at', at], {});
    assert.equal(bad.code, 1);
    assert.match(bad.env.reason!, /^gpu\[0\] signature: /);
    assert.equal(bad.env.gpus[0]!.claims['x-nvidia-gpu-attestation-report-signature-verified'], false);
    // The pinned root only (no extra trust dir): the fake GPU's chain is foreign.
    const foreign = await run(['--gpu-evidence', file([good(gpus[0]!)]), '--rim', rimDir], {});
    assert.equal(foreign.code, 1);
    assert.match(foreign.env.reason!, /^gpu\[0\] chain: /);
  });

  it('malformed evidence is invalid (exit 1); usage errors exit 2', async () => {
    const e = good(gpus[0]!);
    const mal = await run(['--gpu-evidence', file({ ...e, evidence: `${e.evidence}!` })]);
    assert.equal(mal.code, 1);
    assert.match(mal.env.reason!, /not standard base64/);
    for (const args of [
      ['--gpu-evidence', file('not json')],
      ['--gpu-evidence', file([e]), '--nonce', 'xyz'],
      ['--gpu-evidence', join(nv.dir, 'missing.json')],
      ['--gpu-evidence', file([])],
      ['--gpu-evidence', file([e]), '--rim', join(nv.dir, 'nope')],
      ['--report', file('x'), '--cert', file('y'), '--nonce', NONCE],
      ['--gpu-evidence', file([e]), '--quote', file('q')],
    ]) {
      const r = await tasInProcess(['verify', ...args], env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.out} ${r.err}`);
    }
  });
});
