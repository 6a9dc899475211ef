/** A 20-second run of the soak (test/bench/soak.ts) in the suite: mixed traffic, no errors, figures printed. */
import assert from 'node:assert/strict';
import { soak } from './soak';

describe('bench: soak (20 s of mixed traffic against tas serve on Redis)', function () {
  this.timeout(120_000);
  it('serves every kind of request with its expected status, no transport errors, the daemon alive', async () => {
    const r = await soak({ seconds: 20, clients: 4, sampleS: 5 });
    console.log(`      soak: ${r.requests} requests in ${r.seconds} s (${r.throughputPerS}/s); ` +
      Object.entries(r.perKind).map(([k, v]) => `${k} ${v.count} p50 ${v.p50Ms} ms p99 ${v.p99Ms} ms`).join('; ') +
      `; RSS ${r.rssStartMiB} -> ${r.rssEndMiB} MiB; event-loop p99 ${r.samples.map((s) => s.eventLoopP99Ms).join('/')} ms; errors ${r.errors}`);
    assert.deepEqual(r.errorSamples, []);
    assert.equal(r.errors, 0);
    assert.ok(r.daemonAlive);
    for (const [k, v] of Object.entries(r.perKind)) assert.ok(v.count > 0, `${k} exercised`);
    assert.ok(r.samples.length >= 3);
    assert.ok(r.samples.every((s) => s.eventLoopP99Ms !== undefined), 'event-loop delay exported on /metrics');
  });
});
