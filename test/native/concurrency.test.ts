/**
 * The addon is context-aware (loads and verifies in worker_threads, each with its own chain cache)
 * and keeps CPU work off the event loop: while 500 verifications are queued, the loop keeps
 * turning and keeps answering HTTP requests. Counted, never clocked.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { addonPath, verify, clearChainCache, chainCacheSize, defaultNativeConcurrency, nativeQueueDepth } from '../../src/native/index.js';
import { VECTORS, vector, input } from './vectors.js';

// Worker body: plain JS (no TypeScript loader inside workers), loading the same .node file.
const WORKER_SRC = `
const { parentPort, workerData } = require('node:worker_threads');
const addon = require(workerData.addon);
(async () => {
  const out = [];
  for (const job of workerData.jobs) {
    const toBuf = (u) => Buffer.from(u);
    const inp = { ...job, report: toBuf(job.report), leaf: toBuf(job.leaf), intermediate: toBuf(job.intermediate), anchors: job.anchors.map(toBuf) };
    const a = await addon.verify(inp);
    const b = await addon.verify(inp);
    let bad = 'none';
    try { await addon.verify({ ...inp, report: inp.report.subarray(0, 1183) }); } catch (e) { bad = e.code; }
    out.push({ version: a.report.version, kind: a.vek.kind, first: a.chainCached, second: b.chainCached, bad });
  }
  parentPort.postMessage({ out, cacheSize: addon.cacheSize() });
})().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
`;

function runWorker(jobs: object[]): Promise<{ out: Array<Record<string, unknown>>; cacheSize: number }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER_SRC, { eval: true, workerData: { addon: addonPath(), jobs } });
    w.once('message', (m: { error?: string; out: Array<Record<string, unknown>>; cacheSize: number }) => {
      if (m.error) reject(new Error(m.error));
      else resolve(m);
      void w.terminate();
    });
    w.once('error', reject);
  });
}

describe('native addon concurrency', function () {
  this.timeout(120_000);

  it('loads and verifies in two worker_threads at once, each with its own cache', async () => {
    clearChainCache();
    await verify(input(vector('mstav-milan-v3'))); // main thread's cache now holds one chain
    const jobs = VECTORS.map((v) => input(v));
    const [a, b] = await Promise.all([runWorker(jobs), runWorker(jobs)]);
    for (const r of [a, b]) {
      assert.equal(r.out.length, VECTORS.length);
      for (const [i, o] of r.out.entries()) {
        assert.equal(o['version'], VECTORS[i]!.expected['report_version']);
        assert.equal(o['kind'], VECTORS[i]!.kind);
        assert.equal(o['first'], false, 'a worker never sees the main thread cache');
        assert.equal(o['second'], true);
        assert.equal(o['bad'], 'SNP_ERR_REPORT_SIZE');
      }
      assert.equal(r.cacheSize, VECTORS.length);
    }
    assert.equal(chainCacheSize(), 1);
  });

  it('terminating workers with verifications in flight does not crash the process', () => {
    const v = vector('mstav-turin-v5');
    // In a child process, so that an abort would fail this test instead of killing the suite.
    const script = `
      const { Worker } = require('node:worker_threads');
      const src = \`
        const { parentPort, workerData } = require('node:worker_threads');
        const a = require(workerData.addon);
        const inp = { ...workerData.inp, report: Buffer.from(workerData.inp.report), leaf: Buffer.from(workerData.inp.leaf),
          intermediate: Buffer.from(workerData.inp.intermediate), anchors: workerData.inp.anchors.map((x) => Buffer.from(x)) };
        for (let i = 0; i < 100; i++) a.verify(inp).catch(() => {});
        parentPort.postMessage('queued');
      \`;
      (async () => {
        let n = 0;
        for (let k = 0; k < 8; k++) {
          const w = new Worker(src, { eval: true, workerData: JSON.parse(process.argv[1]) });
          await new Promise((r) => w.once('message', r));
          await w.terminate();
          n++;
        }
        console.log('terminated ' + n);
      })();`;
    const data = JSON.stringify({ addon: addonPath(), inp: { ...input(v), report: [...v.report], leaf: [...v.leaf], intermediate: [...v.intermediate], anchors: [[...v.ark]] } });
    const r = spawnSync(process.execPath, ['-e', script, data], { encoding: 'utf8' });
    assert.equal(r.status, 0, `child exited ${r.status} (${r.signal}): ${r.stderr.slice(-2000)}`);
    assert.match(r.stdout, /terminated 8/);
  });

  it('while 500 verifications are queued the event loop keeps turning and answering requests', async () => {
    clearChainCache();
    const v = vector('mstav-turin-v5');
    const server = createServer((_req, res) => res.end('pong'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    let done = 0;
    let ticks = 0;
    let ticksWhilePending = 0;
    let answered = 0;
    let answeredWhilePending = 0;
    let running = true;
    const spin = (): void => {
      if (!running) return;
      ticks++;
      if (done > 0 && done < 500) ticksWhilePending++;
      setImmediate(spin);
    };
    setImmediate(spin);
    let pingErrors = 0;
    const ping = (): void => {
      if (!running) return;
      const req = request({ port, host: '127.0.0.1', path: '/', agent: false }, (res) => {
        res.resume();
        res.on('end', () => {
          answered++;
          if (done < 500) answeredWhilePending++;
          ping();
        });
      });
      // A request cut off by server.close() after the run is expected; during the run it is not.
      req.on('error', () => {
        if (running) pingErrors++;
      });
      req.end();
    };
    ping();
    const jobs = Array.from({ length: 500 }, () => verify(input(v)).then((r) => {
      done++;
      return r;
    }));
    const results = await Promise.all(jobs);
    running = false;
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    assert.equal(pingErrors, 0);
    assert.equal(results.length, 500);
    assert.ok(results.every((r) => r.report.version === 5));
    assert.ok(results.filter((r) => r.chainCached).length >= 490, 'the chain is verified once and then cached');
    console.log(`      500 verifications: ${ticks} loop turns (${ticksWhilePending} between first and last result), ${answered} HTTP answers (${answeredWhilePending} while verifications were pending)`);
    assert.ok(ticksWhilePending >= 50, `event loop turned only ${ticksWhilePending} times while verifications were pending`);
    assert.ok(answeredWhilePending >= 10, `only ${answeredWhilePending} HTTP requests answered while verifications were pending`);
  });

  it('hands the pool CPU count - 1 jobs at once, two on two cores, one on one; the rest wait here', async () => {
    assert.deepEqual([1, 2, 3, 4, 8, 64].map(defaultNativeConcurrency), [1, 2, 2, 3, 7, 63]);
    const v = vector('mstav-milan-v3');
    await verify(input(v)); // chain cached: every job below is one signature check
    const n = defaultNativeConcurrency(availableParallelism());
    const jobs = Array.from({ length: n + 5 }, () => verify(input(v)));
    // Started synchronously: the first n went to the pool, the others queue here.
    assert.equal(nativeQueueDepth(), 5, `${n} jobs in the pool on ${availableParallelism()} cores`);
    assert.equal((await Promise.all(jobs)).length, n + 5);
    assert.equal(nativeQueueDepth(), 0);
  });
});
