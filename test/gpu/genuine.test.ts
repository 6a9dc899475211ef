/**
 * Every genuine NVIDIA sample of test/fixtures/gpu-vectors through `tas verify --gpu-evidence` at
 * the pinned time with its own chain and the public RIMs: the claims and the failed checks EQUAL
 * what the samples' reference verifier recorded (expected.json), and the per-measurement verdicts
 * equal reference.json (which RIMs, which measurement indexes differ); the SDK's bad-signature
 * negative fails exactly as its reference says; the one report with Trustee's own claims parses to
 * the same versions, FWID and 64 measurements.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSpdm } from '../../src/native/gpu';
import { tasInProcess } from '../support/cli-inproc';
import { GPU_VECTORS } from '../support/gpu-evidence';
import { genuineGpus, type GenuineGpu } from '../support/gpu-vectors';
import type { GpuVerifyEnvelope } from '../../src/gpu/verify-cli';

interface Reference {
  verify_at: string;
  vectors: Record<string, { rims?: Record<string, string>; mismatched?: Record<string, number[]>; vbios_measurements_matched?: number; device_failed?: string[]; trustee_claims?: string }>;
}
const reference = JSON.parse(readFileSync(join(GPU_VECTORS, 'reference.json'), 'utf8')) as Reference;
const expectedAt = (JSON.parse(readFileSync(join(GPU_VECTORS, 'expected.json'), 'utf8')) as { verify_at: string }).verify_at;
const RIMS = join(GPU_VECTORS, 'rims');
const DEVICE = new Set(['chain', 'signature', 'fwid', 'nonce', 'arch', 'revocation', 'evidence']);
/** The reference harness's name for a tas check, where they differ. */
const HARNESS: Record<string, string> = { fwid: 'fwid.match' };

const work = mkdtempSync(join(tmpdir(), 'tas-gpu-genuine-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** entryFile writes the SDK entry the sample came as (entries.json) or the C++ SDK's 4-key entry around a raw report. */
function entryFile(g: GenuineGpu): string {
  const f = join(work, `${g.name.replace(/[^\w-]/g, '_')}.json`);
  writeFileSync(f, JSON.stringify({ arch: g.arch, certificate: g.chain.toString('base64'), evidence: g.evidence.toString('base64'), nonce: g.nonce }));
  return f;
}

async function verify(g: GenuineGpu, rims: string[]): Promise<{ code: number; env: GpuVerifyEnvelope }> {
  const r = await tasInProcess(['verify', '--gpu-evidence', entryFile(g), '--nonce', g.nonce, '--at', expectedAt, ...rims.flatMap((x) => ['--rim', x])]);
  assert.ok(r.code === 0 || r.code === 1, `exit ${r.code}: ${r.err}`);
  return { code: r.code, env: JSON.parse(r.out) as GpuVerifyEnvelope };
}

describe('gpu: genuine samples verify as their reference verifier reported (tas verify --gpu-evidence)', function () {
  this.timeout(120_000);
  const gpus = genuineGpus();

  it('the reference was taken at the time tas pins', () => {
    assert.equal(reference.verify_at, expectedAt);
    assert.ok(gpus.length >= 21);
  });

  for (const g of gpus) {
    const ref = reference.vectors[g.name];
    it(`${g.name}: claims and failed checks equal expected.json${ref ? ' and reference.json' : ''}`, async () => {
      const rims = ref?.rims ? Object.values(ref.rims).map((f) => join(RIMS, f)) : [RIMS];
      const { code, env } = await verify(g, rims);
      assert.equal(env.tee, 'nvidia-gpu');
      assert.equal(env.gpus.length, 1);
      const gpu = env.gpus[0]!;
      assert.equal(env.valid, g.expected.valid);
      assert.equal(code, g.expected.valid ? 0 : 1);
      for (const [k, v] of Object.entries(g.expected.claims)) assert.deepEqual(gpu.claims[k], v, `claim ${k}`);
      for (const k of ['oemid', 'secboot', 'dbgstat']) if (!(k in g.expected.claims)) assert.equal(gpu.claims[k], undefined, `claim ${k} is absent in the reference`);
      const failed = gpu.checks.filter((c) => !c.ok).map((c) => HARNESS[c.name] ?? c.name);
      const deviceFailed = failed.some((n) => DEVICE.has(n) || n === 'fwid.match');
      if (deviceFailed) {
        // A device that fails its own checks is refused before any RIM is looked up (get_secret
        // refuses it outright), so only the reference's device checks are compared, and tas shows no RIM verdict.
        assert.deepEqual(failed, g.expected.failed.filter((n) => !/^(rim|measurements)\b/.test(n)));
        assert.ok(!gpu.checks.some((c) => /^(rim|measurements)\b/.test(c.name)));
        assert.deepEqual(failed, ref?.device_failed ?? failed);
      } else {
        assert.deepEqual([...failed].sort(), [...g.expected.failed].sort());
      }
      const records = (gpu.claims['x-nvidia-mismatch-measurement-records'] ?? []) as Array<{ index: number; source: string }>;
      for (const [kind, idx] of Object.entries(ref?.mismatched ?? {})) {
        assert.deepEqual(records.filter((r) => r.source === kind).map((r) => r.index), idx, `${kind} measurement indexes that differ`);
      }
      if (ref?.vbios_measurements_matched !== undefined) {
        const c = gpu.checks.find((x) => x.name === 'measurements.vbios')!;
        assert.equal(c.ok, true);
        assert.match(c.detail, new RegExp(`^${ref.vbios_measurements_matched} reference measurements`));
      }
    });
  }

  it('sdk-h100-sample-badsig: fails exactly signature and FWID (exit 1), as the SDK meant', async () => {
    const g = gpus.find((x) => x.name === 'sdk-h100-sample-badsig')!;
    const { code, env } = await verify(g, [RIMS]);
    assert.equal(code, 1);
    assert.deepEqual(env.gpus[0]!.checks.filter((c) => !c.ok).map((c) => HARNESS[c.name] ?? c.name), reference.vectors['sdk-h100-sample-badsig']!.device_failed);
    assert.match(env.reason!, /^gpu\[0\] signature: /);
  });

  it("nvtrust-h100-lgv: versions, FWID and all 64 measurements equal Trustee's own claims for it", async () => {
    const g = gpus.find((x) => x.name === 'nvtrust-h100-lgv')!;
    const t = JSON.parse(readFileSync(join(GPU_VECTORS, reference.vectors['nvtrust-h100-lgv']!.trustee_claims!), 'utf8')) as { config: { driver_version: string; vbios_version: string; fwid: string }; measurements: Record<string, string> };
    const { env } = await verify(g, []);
    const c = env.gpus[0]!.claims;
    assert.equal(c['x-nvidia-gpu-driver-version'], t.config.driver_version);
    assert.equal(String(c['x-nvidia-gpu-vbios-version']).toLowerCase(), t.config.vbios_version);
    const s = parseSpdm(g.evidence);
    assert.equal(s.fwid!.toString('hex'), t.config.fwid);
    assert.equal(Object.keys(t.measurements).length, 64);
    const ours = new Map(s.blocks.map((b) => [String(b.index), b.value.toString('hex')]));
    for (const [i, v] of Object.entries(t.measurements)) assert.equal(ours.get(i) ?? '0'.repeat(96), v, `measurement block ${i}`);
  });
});
