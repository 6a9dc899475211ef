/**
 * Benchmark (not part of `npm test`): SEV-SNP report verifications per second through the addon,
 * single verification thread (UV_THREADPOOL_SIZE=1), with the chain cached and uncached, against
 * `openssl speed -seconds 3 ecdsap384` measured in the same run. A cached-chain verification is
 * one ECDSA P-384 verify plus parsing and N-API glue, so OpenSSL's single-core verify rate is
 * the ceiling. Run: `node --import tsx test/bench/verify.ts [seconds]`.
 */
process.env['UV_THREADPOOL_SIZE'] = '1'; // before the first pool job: one verification thread

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { verify, clearChainCache, opensslVersion, setNativeConcurrency, type VerifyInput } from '../../src/native/index.js';

const seconds = Number(process.argv[2] ?? 3);
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

function opensslVerifyRate(elapsed: boolean): number {
  const out = execFileSync('openssl', ['speed', ...(elapsed ? ['-elapsed'] : []), '-seconds', String(seconds), 'ecdsap384'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const line = out.split('\n').find((l) => /nistp384/.test(l) && /ecdsa/.test(l));
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

async function main(): Promise<void> {
  console.log(`node ${process.version}, addon on ${opensslVersion()}, ${seconds} s per measurement, 1 verification thread`);
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
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
