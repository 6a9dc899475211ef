/**
 * Long fuzzing run (not part of `npm test` or CI; CI runs ~60 s in test/native/fuzz.test.ts).
 * Builds the libFuzzer targets, then runs each one, one after the other, at the lowest CPU
 * priority (`nice -n 19`) until it has executed its quota of inputs or its time cap is reached,
 * and prints the executions, coverage and time of each. Any crash, sanitizer report or leak stops
 * the run with a non-zero exit; the input is kept under test/.tmp/fuzz-artifacts/<target>/.
 *
 * Leak detection is off here unless `--leaks` is given: with it on, libFuzzer runs LeakSanitizer
 * after every input whose mallocs and frees do not balance, which OpenSSL's lazily built tables
 * make frequent, and fuzz_cert drops from ~1,000 to ~130 executions per second. ASan and UBSan stay
 * on; the CI run (test/native/fuzz.test.ts) keeps leak detection on.
 *
 * Run: `npm run fuzz` or `node --import tsx test/bench/fuzz-long.ts [target=execs ...] [--max-minutes M] [--leaks]`
 * Defaults: report=10000000 cert=1000000 verify=1000000 crl=1000000 wrapkey=1000000, each capped at 60 minutes.
 * Example on a shared box: `node --import tsx test/bench/fuzz-long.ts report=10000000 cert=1000000 --max-minutes 10`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const OUT = join(ROOT, 'native', 'fuzz', 'out');
/** The targets `npm run fuzz` knows: input size bound and default quota of executions (listed order = run order). */
const TARGETS: Record<string, { maxLen: number; execs: number }> = {
  report: { maxLen: 2048, execs: 10_000_000 },
  cert: { maxLen: 4096, execs: 1_000_000 },
  verify: { maxLen: 2048, execs: 1_000_000 },
  crl: { maxLen: 4096, execs: 1_000_000 },
  wrapkey: { maxLen: 4096, execs: 1_000_000 },
};

const quotas = new Map<string, number>();
let maxMinutes = 60;
let leaks = false;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === '--leaks') {
    leaks = true;
    continue;
  }
  if (a === '--max-minutes') {
    maxMinutes = Number(args[++i]);
    continue;
  }
  const m = /^(\w+)=(\d+)$/.exec(a);
  if (!m || !Object.hasOwn(TARGETS, m[1]!)) {
    console.error(`unknown argument ${a}: expected target=execs (${Object.keys(TARGETS).join(', ')}) or --max-minutes M`);
    process.exit(2);
  }
  quotas.set(m[1]!, Number(m[2]));
}
if (quotas.size === 0) for (const [t, { execs }] of Object.entries(TARGETS)) quotas.set(t, execs);

const env = {
  ...process.env,
  TAS_FUZZ_ROOTS: join(ROOT, 'test', 'fixtures', 'amd-roots', 'milan'),
  TAS_FUZZ_VECTOR: join(ROOT, 'test', 'fixtures', 'snp-vectors', 'virtee-milan-v2'),
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
};

interface Result { target: string; execs: number; cov: number; ft: number; seconds: number; ok: boolean }

function runOne(target: string, runs: number): Promise<Result> {
  const artifacts = join(ROOT, 'test', '.tmp', 'fuzz-artifacts', target);
  mkdirSync(artifacts, { recursive: true });
  mkdirSync(join(ROOT, 'test', '.tmp'), { recursive: true });
  const work = mkdtempSync(join(ROOT, 'test', '.tmp', `fuzz-long-${target}-`));
  const started = Date.now();
  const child = spawn('nice', ['-n', '19', join(OUT, `fuzz_${target}`), `-detect_leaks=${leaks ? 1 : 0}`,
    `-runs=${runs}`, `-max_total_time=${Math.round(maxMinutes * 60)}`, `-max_len=${TARGETS[target]!.maxLen}`, '-timeout=20',
    '-rss_limit_mb=2048', '-print_final_stats=1', '-print_pcs=0', `-artifact_prefix=${artifacts}/`,
    work, join(ROOT, 'native', 'fuzz', 'corpus', target)], { env: { ...env, ASAN_OPTIONS: `detect_leaks=${leaks ? 1 : 0}:abort_on_error=0` }, stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    tail = (tail + d).slice(-20_000);
    const pulse = /#(\d+)\s+(?:pulse|REDUCE|NEW)\s+cov: (\d+)/g;
    let m: RegExpExecArray | null;
    let last: RegExpExecArray | null = null;
    while ((m = pulse.exec(d))) last = m;
    if (last && /pulse/.test(last[0])) process.stderr.write(`  fuzz_${target}: ${last[1]} execs, cov ${last[2]}\n`);
  });
  return new Promise((resolve) => {
    child.on('close', (code) => {
      rmSync(work, { recursive: true, force: true });
      const execs = Number(/stat::number_of_executed_units: (\d+)/.exec(tail)?.[1] ?? 0);
      const done = /#\d+\s+DONE\s+cov: (\d+) ft: (\d+)/.exec(tail);
      const clean = code === 0 && !/ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/.test(tail);
      if (!clean) console.error(`fuzz_${target} failed (input under ${artifacts}):\n${tail.slice(-6000)}`);
      resolve({ target, execs, cov: Number(done?.[1] ?? 0), ft: Number(done?.[2] ?? 0), seconds: Math.round((Date.now() - started) / 1000), ok: clean });
    });
  });
}

async function main(): Promise<void> {
  const b = spawnSync('bash', [join(ROOT, 'native', 'tools', 'build-fuzz.sh')], { cwd: ROOT, encoding: 'utf8' });
  if (b.status !== 0) {
    console.error(`fuzzer build failed:\n${b.stdout}\n${b.stderr}`);
    process.exit(1);
  }
  const results: Result[] = [];
  for (const [target, runs] of quotas) {
    const r = await runOne(target, runs);
    results.push(r);
    console.log(`fuzz_${r.target}: ${r.execs} executions in ${r.seconds} s (${Math.round(r.execs / Math.max(1, r.seconds))}/s), cov ${r.cov} ft ${r.ft}, ` +
      `${r.execs >= runs ? 'quota reached' : `quota ${runs} NOT reached (time cap)`}${r.ok ? '' : ', FAILED'}`);
    if (!r.ok) process.exit(1);
  }
  console.log(JSON.stringify({ fuzz: results, leaks }));
}

void main();
