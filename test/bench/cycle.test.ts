/**
 * A ≤ 30 s smoke of the cycle benchmark (test/bench/cycle.ts) in the suite: 2 s of full agent
 * cycles at concurrency 4 against `tas serve` on the embedded store and on Redis. It prints the
 * ratios to the ECDSA-P384 floor of this run; it asserts only that the benchmark works (every cycle
 * released the secret, every figure present), never a time or a ratio: CI machines differ.
 */
import assert from 'node:assert/strict';
import { formatLevel, HEADER, runBench, verifyCostMs, type StoreKind } from './cycle';

describe('bench: cycle smoke (2 s of agent cycles at c=4, embedded and Redis)', function () {
  this.timeout(60_000);
  const verifyMs = verifyCostMs(500);
  for (const store of ['embedded', 'redis'] as StoreKind[]) {
    it(`${store}: cycles succeed and the figures are printed`, async () => {
      const r = await runBench({ store, seconds: 2, levels: [4], verifyMs, quiet: true });
      console.log(`      floor ${(r.verifyMs * 1000).toFixed(0)} µs\n      ${HEADER}\n      ${r.results.map(formatLevel).join('\n      ')}`);
      assert.equal(r.store, store);
      assert.equal(r.results.length, 1);
      const l = r.results[0]!;
      assert.equal(l.concurrency, 4);
      assert.equal(l.errors, 0, l.firstError);
      assert.ok(l.cycles > 0, 'some cycles completed');
      for (const k of ['perSecond', 'p50', 'p99', 'secretP50', 'secretP99', 'cpuPerCycle', 'ratio', 'rssMiB', 'peakRssMiB'] as const) {
        assert.ok(Number.isFinite(l[k]) && l[k] >= 0, `${k} is a number: ${l[k]}`);
      }
      assert.ok(l.p99 >= l.p50 && l.secretP99 >= l.secretP50, 'percentiles ordered');
      assert.ok(l.rssMiB > 0 && l.peakRssMiB >= l.rssMiB, 'RSS read from /proc');
      assert.equal(l.redisCpuPerCycle !== undefined, store === 'redis', 'redis-server CPU reported exactly for Redis');
    });
  }
});
