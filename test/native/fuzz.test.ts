/**
 * libFuzzer targets over the native parsing core (SNP: report, certificate + AMD extensions +
 * chain, CRL, and the whole verification of a report against a fixed genuine VCEK; TDX: quote
 * parser + full verification against a genuine vector's collateral, SGX extension decoder + PEM
 * chain splitter, PCS signed-body path; NVIDIA GPU: SPDM GET_MEASUREMENTS + device check, FWID extensions; the VM's wrapping key), built with clang under ASan+UBSan. Replays every file in native/fuzz/regressions/, then
 * fuzzes each target for a bounded time (15-25 s each, about 180 s in total) from the committed seed corpus,
 * printing executions and coverage. Any crash, sanitizer report or leak fails the test; the
 * crashing input is kept under test/.tmp/fuzz-artifacts/ for copying into regressions/.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { INTEL_ROOT_DER, TDX_VECTORS, signedJson } from '../support/tdx-vectors.js';

const ROOT = join(__dirname, '..', '..');
const OUT = join(ROOT, 'native', 'fuzz', 'out');
const TARGETS: Array<{ name: string; seconds: number; maxLen: number }> = [
  { name: 'report', seconds: 15, maxLen: 2048 },
  { name: 'cert', seconds: 25, maxLen: 4096 },
  { name: 'crl', seconds: 20, maxLen: 4096 },
  // Full verification (parse, signer kind, cached chain, report signature) against a fixed genuine VCEK.
  { name: 'verify', seconds: 15, maxLen: 2048 },
  { name: 'tdx_quote', seconds: 25, maxLen: 8192 },
  { name: 'sgx_ext', seconds: 15, maxLen: 4096 },
  { name: 'pcs', seconds: 15, maxLen: 8192 },
  // NVIDIA GPU evidence: SPDM GET_MEASUREMENTS (genuine H100/B100 seeds, ~4.1 KiB) and the FWID extensions.
  { name: 'spdm', seconds: 20, maxLen: 8192 },
  { name: 'fwid', seconds: 15, maxLen: 2048 },
  // The VM's wrapping key (RSAPublicKey DER from get_secret): canonical check, size/exponent bounds, RSA-OAEP + AES-GCM.
  { name: 'wrapkey', seconds: 15, maxLen: 4096 },
];
/** TDX_DIR holds one genuine vector's collateral in the shapes the TDX fuzz targets read. */
const TDX_DIR = join(ROOT, 'test', '.tmp', 'fuzz-tdx');
const TDX_VECTOR = TDX_VECTORS.find((v) => v.name === 'dcapqvl-b0c06f-v4-uptodate')!;
const env = {
  ...process.env,
  TAS_FUZZ_ROOTS: join(ROOT, 'test', 'fixtures', 'amd-roots', 'milan'),
  TAS_FUZZ_VECTOR: join(ROOT, 'test', 'fixtures', 'snp-vectors', 'virtee-milan-v2'),
  TAS_FUZZ_TDX_DIR: TDX_DIR,
  TAS_FUZZ_TDX_AT: String(TDX_VECTOR.at),
  TAS_FUZZ_GPU: join(ROOT, 'test', 'fixtures', 'gpu-fuzz'),
  ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0',
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
};

describe('native fuzzing (libFuzzer, ASan+UBSan)', function () {
  this.timeout(900_000); // explicit budget: clang build (~1-2 min on a busy 2-core box) + ~115 s of fuzzing (each target <= 60 s)

  before(() => {
    mkdirSync(TDX_DIR, { recursive: true });
    const w = (n: string, b: Buffer): void => writeFileSync(join(TDX_DIR, n), b);
    const tcb = signedJson(TDX_VECTOR.tcbInfoJson, 'tcbInfo', TDX_VECTOR.tcbInfoChain);
    const qe = signedJson(TDX_VECTOR.qeIdentityJson, 'enclaveIdentity', TDX_VECTOR.qeIdentityChain);
    w('root.der', INTEL_ROOT_DER);
    w('root_ca_crl.der', TDX_VECTOR.rootCrl);
    w('pck_crl.der', TDX_VECTOR.pckCrl);
    w('tcb_info.body', tcb.bodyBytes);
    w('tcb_info.sig', tcb.signature);
    w('tcb_info_issuer_chain.pem', tcb.chain);
    w('qe_identity.body', qe.bodyBytes);
    w('qe_identity.sig', qe.signature);
    w('qe_identity_issuer_chain.pem', qe.chain);
    const b = spawnSync('bash', [join(ROOT, 'native', 'tools', 'build-fuzz.sh')], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(b.status, 0, `fuzzer build failed:\n${b.stdout}\n${b.stderr}`);
  });

  for (const t of TARGETS) {
    it(`fuzz_${t.name}: regressions replay clean, then ${t.seconds} s of fuzzing finds no crash`, () => {
      const bin = join(OUT, `fuzz_${t.name}`);
      const regDir = join(ROOT, 'native', 'fuzz', 'regressions', t.name);
      const regs = readdirSync(regDir).map((f) => join(regDir, f));
      assert.ok(regs.length > 0, `no regression inputs in ${regDir}`);
      const replay = spawnSync(bin, regs, { env, encoding: 'utf8' });
      assert.equal(replay.status, 0, `regression replay failed:\n${replay.stderr.slice(-4000)}`);
      assert.match(replay.stderr, new RegExp(`Executed .*${regs.length} inputs|Running: `));

      const artifacts = join(ROOT, 'test', '.tmp', 'fuzz-artifacts', t.name);
      mkdirSync(artifacts, { recursive: true });
      const work = mkdtempSync(join(ROOT, 'test', '.tmp', `fuzz-${t.name}-`));
      try {
        const r = spawnSync(bin, [
          `-max_total_time=${t.seconds}`, `-max_len=${t.maxLen}`, '-timeout=20', '-rss_limit_mb=2048', '-print_final_stats=1',
          `-artifact_prefix=${artifacts}/`, work, join(ROOT, 'native', 'fuzz', 'corpus', t.name),
        ], { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
        const done = /#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+)/.exec(r.stderr);
        const execs = /stat::number_of_executed_units: (\d+)/.exec(r.stderr);
        console.log(`      fuzz_${t.name}: ${execs?.[1] ?? '?'} executions, cov: ${done?.[2] ?? '?'} ft: ${done?.[3] ?? '?'}`);
        assert.equal(r.status, 0, `fuzz_${t.name} failed (input saved under ${artifacts}):\n${r.stderr.slice(-6000)}`);
        // Sanitizer reports, not libFuzzer's INFO line that mentions LeakSanitizer when it stops leak checks.
        assert.doesNotMatch(r.stderr, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
        assert.ok(done, 'libFuzzer did not report DONE');
        assert.ok(Number(execs?.[1]) > 100, 'the fuzzer barely ran');
        assert.ok(Number(done[2]) > 10, 'no coverage feedback (is the target instrumented?)');
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    });
  }
});
