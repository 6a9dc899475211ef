/**
 * Benchmark (not part of `npm test`): native verifications per second through the addon, single
 * verification thread (UV_THREADPOOL_SIZE=1), against `openssl speed` measured in the same run.
 * - SEV-SNP: a report with the chain cached and uncached vs `openssl speed ecdsap384`. A cached
 *   verification is one ECDSA P-384 verify plus parsing and N-API glue: target >= 90 %.
 * - Intel TDX: a genuine quote with its collateral cached (PCK chain, both CRLs, tcbInfo and QE
 *   identity signatures verified once, then re-checked against the time on every call) vs
 *   `openssl speed ecdsap256`. A cached verification needs two P-256 verifies (QE report, quote),
 *   so the floor is verify/s / 2: target >= 80 % of it (DESIGN.md, Benchmarks).
 * Run: `node --import tsx test/bench/verify.ts [seconds] [snp|tdx|all]`.
 */
process.env['UV_THREADPOOL_SIZE'] = '1'; // before the first pool job: one verification thread

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { verify, verifyTdxQuote, verifyTdxQuoteLean, clearChainCache, opensslVersion, setNativeConcurrency, type VerifyInput, type TdxVerifyInput } from '../../src/native/index.js';
import { TDX_VECTORS, tdxInput } from '../support/tdx-vectors.js';

const seconds = Number(process.argv[2] ?? 3);
const which = process.argv[3] ?? 'all';
const dir = join(__dirname, '..', 'fixtures', 'snp-vectors', 'mstav-turin-v5');
const input: VerifyInput = {
  report: readFileSync(join(dir, 'report.bin')),
  leaf: readFileSync(join(dir, 'vcek.pem')),
  intermediate: readFileSync(join(dir, 'ask.pem')),
  anchors: [readFileSync(join(dir, 'ark.pem'))],
  product: 'Turin',
  kind: 'VCEK',
  atSeconds: Math.floor(Date.parse('2026-06-01T00:00:00Z') / 1000),
};

function opensslVerifyRate(elapsed: boolean, curve: 'p384' | 'p256' = 'p384'): number {
  const out = execFileSync('openssl', ['speed', ...(elapsed ? ['-elapsed'] : []), '-seconds', String(seconds), `ecdsa${curve}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const line = out.split('\n').find((l) => new RegExp(`nist${curve}`).test(l) && /ecdsa/.test(l));
  if (!line) throw new Error(`unexpected openssl speed output:\n${out}`);
  const nums = line.trim().split(/\s+/).map(Number).filter((n) => Number.isFinite(n));
  return nums[nums.length - 1]!; // ... sign verify sign/s verify/s
}

interface Rate { wall: number; cpu: number }

/**
 * run keeps `depth` verifications outstanding for `seconds`. Returns completions per wall-clock
 * second and per CPU-second of this process (all threads: event loop + verification thread).
 * `openssl speed` divides by CPU user time by default, so the CPU figure is the like-for-like one
 * on a shared machine; `openssl speed -elapsed` is the wall-clock counterpart.
 */
async function run(depth: number, uncached: boolean): Promise<Rate> {
  const end = performance.now() + seconds * 1000;
  let done = 0;
  let hits = 0;
  const lane = async (): Promise<void> => {
    while (performance.now() < end) {
      if (uncached) clearChainCache();
      const r = await verify(input);
      if (r.chainCached) hits++;
      done++;
    }
  };
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await Promise.all(Array.from({ length: depth }, lane));
  const c = process.cpuUsage(c0);
  if (!uncached && hits !== done) throw new Error('expected every verification to hit the chain cache');
  if (uncached && hits > done / 2) throw new Error(`expected mostly uncached chains, got ${hits}/${done} hits`);
  return { wall: done / ((performance.now() - t0) / 1000), cpu: done / ((c.user + c.system) / 1e6) };
}

/** runTdx is `run` for TDX quotes: `depth` verifications outstanding, collateral cached. */
async function runTdx(depth: number, tdx: Omit<TdxVerifyInput, 'omitQuote'>): Promise<Rate> {
  const end = performance.now() + seconds * 1000;
  let done = 0;
  let hits = 0;
  const lane = async (): Promise<void> => {
    while (performance.now() < end) {
      const r = await verifyTdxQuoteLean(tdx);
      if (r.pckChainCached) hits++;
      done++;
    }
  };
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await Promise.all(Array.from({ length: depth }, lane));
  const c = process.cpuUsage(c0);
  if (hits !== done) throw new Error('expected every TDX verification to hit the PCK chain cache');
  return { wall: done / ((performance.now() - t0) / 1000), cpu: done / ((c.user + c.system) / 1e6) };
}

async function tdxMain(): Promise<void> {
  const v = TDX_VECTORS.find((x) => x.name === 'dcapqvl-b0c06f-v4-uptodate')!;
  // The request path: the caller peeked the quote (parse + which collateral), verification comes
  // back lean. Collateral is cached, as it is between PCS refreshes.
  const tdx = tdxInput(v);
  const first = await verifyTdxQuote(tdx); // fills the caches
  if (first.pckChainCached || first.qeReportCached) throw new Error('expected a cold first verification');
  setNativeConcurrency(2);
  // On a shared machine one run can lose half its CPU time to contention (context switches are
  // charged to the process with the most threads): each figure is the best of three runs, taken
  // alternately so both sides see the same load.
  const best = (rs: Rate[]): Rate => ({ wall: Math.max(...rs.map((r) => r.wall)), cpu: Math.max(...rs.map((r) => r.cpu)) });
  const osslRuns: number[] = [];
  const osslWallRuns: number[] = [];
  const seqRuns: Rate[] = [];
  const pipedRuns: Rate[] = [];
  for (let i = 0; i < 3; i++) {
    osslRuns.push(opensslVerifyRate(false, 'p256'));
    osslWallRuns.push(opensslVerifyRate(true, 'p256'));
    seqRuns.push(await runTdx(1, tdx));
    pipedRuns.push(await runTdx(4, tdx));
  }
  const ossl = Math.max(...osslRuns);
  const osslWall = Math.max(...osslWallRuns);
  const seq = best(seqRuns);
  const piped = best(pipedRuns);
  console.log(`runs (CPU-s): openssl ${osslRuns.map((n) => n.toFixed(0)).join(' ')}; TDX 4 outstanding ${pipedRuns.map((r) => r.cpu.toFixed(0)).join(' ')}`);
  const floor = ossl / 2;
  const floorWall = osslWall / 2;
  const fmt = (n: number): string => n.toFixed(0).padStart(6);
  const pct = (r: Rate): string => `${((100 * r.cpu) / floor).toFixed(1)}% of floor per CPU-s, ${((100 * r.wall) / floorWall).toFixed(1)}% wall`;
  console.log(`openssl speed ecdsap256 verify         ${fmt(ossl)} /CPU-s   ${fmt(osslWall)} /s wall (-elapsed); floor (2 verifies) ${fmt(floor)} /CPU-s`);
  console.log(`TDX quote, cached collateral, seq      ${fmt(seq.cpu)} /CPU-s   ${fmt(seq.wall)} /s wall  (${pct(seq)})`);
  console.log(`TDX quote, cached collateral, 4 out    ${fmt(piped.cpu)} /CPU-s   ${fmt(piped.wall)} /s wall  (${pct(piped)})`);
  console.log(`TDX ratio cached/(openssl/2): ${(piped.cpu / floor).toFixed(3)} per CPU-second, ${(piped.wall / floorWall).toFixed(3)} wall-clock (target >= 0.80)`);
}

async function main(): Promise<void> {
  console.log(`node ${process.version}, addon on ${opensslVersion()}, ${seconds} s per measurement, 1 verification thread`);
  if (which === 'tdx') return tdxMain();
  await verify(input); // warm up (loads the addon, fills the cache)
  // Two jobs handed to libuv over its single thread: the next job is already queued when one
  // finishes, so the verification thread does not wait for the event loop round trip.
  setNativeConcurrency(2);
  const ossl = opensslVerifyRate(false);
  const osslWall = opensslVerifyRate(true);
  const seq = await run(1, false);
  const piped = await run(4, false);
  const uncached = await run(1, true);
  const fmt = (n: number): string => n.toFixed(0).padStart(6);
  const pct = (r: Rate): string => `${((100 * r.cpu) / ossl).toFixed(1)}% per CPU-s, ${((100 * r.wall) / osslWall).toFixed(1)}% wall`;
  console.log(`openssl speed ecdsap384 verify         ${fmt(ossl)} /CPU-s   ${fmt(osslWall)} /s wall (-elapsed)`);
  console.log(`addon, cached chain, sequential        ${fmt(seq.cpu)} /CPU-s   ${fmt(seq.wall)} /s wall  (${pct(seq)})`);
  console.log(`addon, cached chain, 4 outstanding     ${fmt(piped.cpu)} /CPU-s   ${fmt(piped.wall)} /s wall  (${pct(piped)})`);
  console.log(`addon, uncached chain, sequential      ${fmt(uncached.cpu)} /CPU-s   ${fmt(uncached.wall)} /s wall  (${pct(uncached)})`);
  console.log(`ratio cached/openssl: ${(piped.cpu / ossl).toFixed(3)} per CPU-second, ${(piped.wall / osslWall).toFixed(3)} wall-clock (target >= 0.90)`);
  setNativeConcurrency(1);
  if (which === 'all') await tdxMain();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
