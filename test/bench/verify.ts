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
import { verify, clearChainCache, opensslVersion, type VerifyInput } from '../../src/native/index.js';

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

function opensslVerifyRate(): number {
  const out = execFileSync('openssl', ['speed', '-seconds', String(seconds), 'ecdsap384'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const line = out.split('\n').find((l) => /nistp384/.test(l) && /ecdsa/.test(l));
  if (!line) throw new Error(`unexpected openssl speed output:\n${out}`);
  const nums = line.trim().split(/\s+/).map(Number).filter((n) => Number.isFinite(n));
  return nums[nums.length - 1]!; // ... sign verify sign/s verify/s
}

/** run keeps `depth` verifications outstanding for `seconds` and returns completions per second. */
async function run(depth: number, uncached: boolean): Promise<number> {
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
  await Promise.all(Array.from({ length: depth }, lane));
  if (!uncached && hits !== done) throw new Error('expected every verification to hit the chain cache');
  if (uncached && hits > done / 2) throw new Error(`expected mostly uncached chains, got ${hits}/${done} hits`);
  return done / ((performance.now() - t0) / 1000);
}

async function main(): Promise<void> {
  console.log(`node ${process.version}, addon on ${opensslVersion()}, ${seconds} s per measurement, 1 verification thread`);
  await verify(input); // warm up (loads the addon, fills the cache)
  const ossl = opensslVerifyRate();
  const seq = await run(1, false);
  const piped = await run(4, false);
  const uncached = await run(1, true);
  const fmt = (n: number): string => n.toFixed(0).padStart(6);
  console.log(`openssl speed ecdsap384 verify        ${fmt(ossl)} /s`);
  console.log(`addon, cached chain, sequential       ${fmt(seq)} /s  (${((100 * seq) / ossl).toFixed(1)}% of openssl)`);
  console.log(`addon, cached chain, 4 outstanding    ${fmt(piped)} /s  (${((100 * piped) / ossl).toFixed(1)}% of openssl)`);
  console.log(`addon, uncached chain, sequential     ${fmt(uncached)} /s  (${((100 * uncached) / ossl).toFixed(1)}% of openssl)`);
  console.log(`ratio (cached, pipelined / openssl): ${(piped / ossl).toFixed(3)} (target >= 0.90)`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
