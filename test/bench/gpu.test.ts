/**
 * A ≤ 30 s smoke of the GPU benchmark (test/bench/gpu.ts): 0.3 s per measurement, one round. It
 * prints the figures and the GPU/SNP ratios; it asserts only that every row measured something and
 * where the chain verdicts came from (cached rows all from the cache, uncached rows never), never a
 * time: CI machines differ.
 */
import assert from 'node:assert/strict';
import { formatGpuBench, runGpuBench } from './gpu';

describe('bench: GPU verify vs SNP verify smoke (genuine vectors, cold and warm chain)', function () {
  this.timeout(60_000);
  it('every row measures; cached rows hit the chain cache, uncached rows never do', async () => {
    const rows = await runGpuBench({ seconds: 0.3, rounds: 1 });
    console.log(`      ${formatGpuBench(rows).replace(/\n/g, '\n      ')}`);
    assert.equal(rows.length, 6);
    for (const r of rows) {
      assert.ok(r.n > 0 && Number.isFinite(r.msPerOp), r.name);
      if (r.chainCached < 0) continue;
      assert.equal(r.chainCached, / cached$/.test(r.name) ? r.n : 0, r.name);
    }
  });
});
