/**
 * The embedded store's packed consumed-by-owner markers against the plain Map they replace: the
 * same answers for every operation of long random runs (growth past the initial ring, wrap-around,
 * shrinking after a burst, nonces that share their 28-bit index prefix, deletes in the middle of a
 * chain), and the memory per marker measured on the heap.
 */
import { strict as assert } from 'node:assert';
import { randomBytes, randomUUID } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ConsumedMarkers, type ConsumedMarker } from '../../src/store/consumed-markers';

/** A seeded generator, so that a failing run can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/** The reference: a Map in insertion order, purged oldest first up to the first live marker. */
class MapModel {
  readonly m = new Map<string, ConsumedMarker>();
  set(n: string, v: ConsumedMarker): void {
    this.m.delete(n);
    this.m.set(n, v);
  }
  purge(now: number): void {
    for (const [k, v] of this.m) {
      if (v.keep > now) break;
      this.m.delete(k);
    }
  }
}

describe('store: packed consumed-by-owner markers', () => {
  for (const seed of [1, 7, 42]) {
    it(`answers as a Map over 60,000 random operations (seed ${seed})`, () => {
      const r = rng(seed);
      const packed = new ConsumedMarkers();
      const model = new MapModel();
      // Few prefixes, so that many nonces share an index slot and chains get long.
      const prefixes = Array.from({ length: 24 }, () => randomBytes(4).toString('hex').slice(0, 7));
      const nonce = (): string => prefixes[Math.floor(r() * prefixes.length)]! + randomBytes(32).toString('hex').slice(7);
      const known: string[] = [];
      let now = 0;
      let peak = 0;
      for (let i = 0; i < 60_000; i++) {
        const op = r();
        // A burst in the middle of the run grows the ring well past its first 1024 slots.
        const burst = i > 20_000 && i < 30_000;
        if (op < (burst ? 0.9 : 0.45)) {
          const n = r() < 0.05 && known.length ? known[Math.floor(r() * known.length)]! : nonce();
          // Owners as the pipeline makes them, a few beyond the inline 48 bytes.
          const v = { owner: r() < 0.1 ? `long-owner-${'x'.repeat(50)}-${Math.floor(r() * 4)}` : `o-${Math.floor(r() * 4)}`, exp: now + 1000, keep: now + (burst ? 60_000 : 50 + Math.floor(r() * 400)) };
          packed.set(n, v);
          model.set(n, v);
          known.push(n);
          if (known.length > 5000) known.splice(0, 1000);
        } else if (op < 0.6) {
          const n = known.length ? known[Math.floor(r() * known.length)]! : nonce();
          assert.equal(packed.delete(n), model.m.delete(n), `delete #${i}`);
        } else if (op < 0.85) {
          const n = r() < 0.8 && known.length ? known[Math.floor(r() * known.length)]! : nonce();
          assert.deepEqual(packed.get(n), model.m.get(n), `get #${i}`);
        } else {
          now += Math.floor(r() * 40);
          packed.purge(now);
          model.purge(now);
        }
        peak = Math.max(peak, packed.size);
      }
      // Every marker the model still holds is found, with its owner and times.
      for (const [n, v] of model.m) assert.deepEqual(packed.get(n), v);
      assert.ok(peak > 4096, `the burst grew the ring (peak ${peak})`);
      // After the burst has passed, the ring gave its capacity back.
      now += 120_000;
      packed.purge(now);
      model.purge(now);
      assert.equal(model.m.size, 0);
      assert.equal(packed.size, 0);
      assert.ok(packed.bytes <= 1024 * 64 * 2, `capacity returned (${packed.bytes} bytes)`);
    });
  }

  for (const seed of [3, 11]) {
    it(`answers as a Map when most markers are forgotten by their owner behind ones that stay: the ring is compacted (seed ${seed})`, () => {
      const r = rng(seed);
      const packed = new ConsumedMarkers();
      const model = new MapModel();
      const known: Array<[string, string]> = [];
      let now = 0;
      for (let i = 0; i < 40_000; i++) {
        const op = r();
        if (op < 0.5) {
          const n = randomBytes(32).toString('hex');
          const owner = r() < 0.05 ? `long-owner-${'y'.repeat(60)}` : randomUUID();
          // One in fifty stays for a long lease (an owner that never learned its answer).
          const v = { owner, exp: now + 90_000, keep: now + (r() < 0.02 ? 30_000 : 500) };
          packed.set(n, v);
          model.set(n, v);
          known.push([n, owner]);
          if (known.length > 3000) known.splice(0, 500);
          // Most owners have their answer at once and say so, as the pipeline does.
          if (r() < 0.85) {
            assert.equal(packed.forgetOwned(n, owner), true);
            model.m.delete(n);
          }
        } else if (op < 0.75 && known.length) {
          const [n, owner] = known[Math.floor(r() * known.length)]!;
          const who = r() < 0.5 ? owner : 'someone-else';
          const mine = model.m.get(n)?.owner === who;
          assert.equal(packed.forgetOwned(n, who), mine, `forgetOwned #${i}`);
          if (mine) model.m.delete(n);
        } else if (op < 0.95) {
          const n = known.length ? known[Math.floor(r() * known.length)]![0] : randomBytes(32).toString('hex');
          assert.deepEqual(packed.get(n), model.m.get(n), `get #${i}`);
        } else {
          now += Math.floor(r() * 20);
          packed.purge(now);
          model.purge(now);
          assert.equal(packed.live, model.m.size, `live count #${i}`);
        }
      }
      for (const [n, v] of model.m) assert.deepEqual(packed.get(n), v);
      assert.ok(packed.compactions > 0, 'the ring was compacted');
      assert.ok(packed.size <= Math.max(1024, 4 * packed.live + 64), `held ${packed.size} for ${packed.live} live`);
    });
  }

  it('a deleted marker is not found, and purging skips it whatever its keep time', () => {
    const p = new ConsumedMarkers();
    const a = 'abcdef0'.padEnd(64, '1');
    const b = 'abcdef0'.padEnd(64, '2'); // same 28-bit prefix: one chain
    p.set(a, { owner: 'x', exp: 10, keep: 100 });
    p.set(b, { owner: 'y', exp: 20, keep: 200 });
    assert.equal(p.delete(b), true);
    assert.equal(p.get(b), undefined);
    assert.deepEqual(p.get(a), { owner: 'x', exp: 10, keep: 100 }, 'found through the chain past a deleted marker');
    p.purge(150);
    assert.equal(p.get(a), undefined);
    assert.equal(p.size, 0, 'the deleted marker left with the purged one before it');
    p.set(a, { owner: 'z', exp: 1, keep: 5 });
    assert.equal(p.get(a)!.owner, 'z');
    p.clear();
    assert.equal(p.get(a), undefined);
  });

  it('holds 50,000 markers in under 250 bytes each, heap and typed arrays together (the Map of marker objects: ~580)', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // Everything is made inside fill and only what the structure keeps survives: the delta of the
    // collected heap is its cost (nonce and owner strings made per marker, as requests make them).
    const measure = (fill: (nonce: () => string, owner: () => string) => unknown): number => {
      gc();
      const before = process.memoryUsage();
      const held = fill(() => randomBytes(32).toString('hex'), () => randomUUID());
      gc();
      const after = process.memoryUsage();
      assert.ok(held);
      // The JavaScript heap and the typed arrays' memory outside it.
      return (after.heapUsed - before.heapUsed + after.external - before.external) / 50_000;
    };
    const packedPer = measure((nonce, owner) => {
      const p = new ConsumedMarkers();
      for (let i = 0; i < 50_000; i++) p.set(nonce(), { owner: owner(), exp: performance.now() + 120_000.5, keep: performance.now() + 30_000.5 });
      return p;
    });
    const mapPer = measure((nonce, owner) => {
      const m = new Map<string, ConsumedMarker>();
      // As the store kept them: the nonce a slice of its quoted JSON value, times as fractional ms.
      for (let i = 0; i < 50_000; i++) {
        m.set((JSON.parse(`"\\"${nonce()}\\""`) as string).slice(1, -1), { owner: owner(), exp: performance.now() + 120_000.5, keep: performance.now() + 30_000.5 });
      }
      return m;
    });
    console.log(`      packed ${packedPer.toFixed(0)} bytes per marker, Map of objects ${mapPer.toFixed(0)}`);
    assert.ok(packedPer < 250, `packed: ${packedPer.toFixed(0)} bytes per marker`);
    assert.ok(packedPer < mapPer / 2.5, `packed ${packedPer.toFixed(0)} vs map ${mapPer.toFixed(0)} bytes per marker`);
  });
});
