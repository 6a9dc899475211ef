/**
 * Robustness: seeded random corruptions of valid evidence are always refused with a 4xx TasError
 * (never a crash, never INTERNAL, never accepted). Counts, not clocks.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnpVerifier, loadSnpTrust } from '../../src/snp';
import { TasError } from '../../src/errors';
import { FakeAmd, type Product } from '../support/fake-amd';

/** mulberry32: a tiny seeded PRNG so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('snp: robustness against corrupted evidence', function () {
  this.timeout(120_000);
  let dir: string;
  let kits: Record<Product, FakeAmd>;
  let v: SnpVerifier;
  before(async () => {
    kits = await FakeAmd.all();
    dir = mkdtempSync(join(tmpdir(), 'snp-rob-'));
    for (const k of Object.values(kits)) await k.writeTrustDir(dir, { intermediates: true });
    v = new SnpVerifier({ trust: loadSnpTrust({ extraTrustDir: dir }), v2Product: 'Milan' });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const p of ['Milan', 'Genoa', 'Turin'] as const) {
    it(`${p}: 300 single/multi-byte corruptions of report or VCEK are all refused with 400`, async () => {
      const rnd = prng(0x5eed + p.length);
      const k = kits[p];
      const report = k.signReport({ reportData: Buffer.alloc(64, 3) });
      const vek = k.vcekDer();
      const at = new Date('2026-06-01T00:00:00Z');
      await v.verify({ report, vek, at }); // the uncorrupted evidence verifies
      const seen = new Map<string, number>();
      for (let i = 0; i < 300; i++) {
        const r = Buffer.from(report);
        const c = Buffer.from(vek);
        const target = rnd() < 0.75 ? r : c;
        const n = 1 + Math.floor(rnd() * 3);
        for (let j = 0; j < n; j++) {
          const off = Math.floor(rnd() * target.length);
          target[off] = target[off]! ^ (1 + Math.floor(rnd() * 255));
        }
        let input = { report: r, vek: c };
        if (rnd() < 0.05) input = { report: r.subarray(0, Math.floor(rnd() * r.length)), vek: c };
        try {
          await v.verify({ ...input, at });
          assert.fail(`corruption ${i} was accepted`);
        } catch (e) {
          assert.ok(e instanceof TasError, `corruption ${i}: ${String(e)}`);
          assert.equal(e.status, 400, `corruption ${i}: ${e.code} ${e.reason} ${e.detail}`);
          seen.set(e.reason, (seen.get(e.reason) ?? 0) + 1);
        }
      }
      // The corruptions exercised several distinct refusal paths.
      assert.ok(seen.size >= 3, JSON.stringify([...seen]));
    });
  }
});
