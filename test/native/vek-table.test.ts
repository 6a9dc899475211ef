/**
 * Report signatures checked with a VEK's precomputed multiples (native/core/signature.h,
 * VekVerifier, #16): from a key's second report on, u1·G + u2·Q come from two fixed-base tables
 * instead of ECDSA_do_verify. The verdict must be the generic one for every input — genuine AMD
 * reports, fresh fake-AMD signatures, and r/s at and around the range edges — and the number of
 * tables must stay within the process-wide cap however many keys a fleet brings.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { FakeAmd } from '../support/fake-amd/index.js';
import { verify, clearChainCache, vekTables, type VerifyInput } from '../../src/native/index.js';
import { VECTORS, input } from './vectors.js';

const AT = Math.floor(Date.parse('2026-06-01T00:00:00Z') / 1000);
/** The order n of P-384 (SEC 2 §2.5.1), big-endian. */
const N = BigInt('0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973');

const le72 = (v: bigint): Buffer => {
  const b = Buffer.alloc(72);
  for (let i = 0; i < 72 && v > 0n; i++, v >>= 8n) b[i] = Number(v & 0xffn);
  return b;
};
const fromLe = (b: Buffer): bigint => {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  return v;
};
const withRs = (report: Buffer, r: bigint | null, s: bigint | null): Buffer => {
  const out = Buffer.from(report);
  if (r !== null) le72(r).copy(out, 0x2a0);
  if (s !== null) le72(s).copy(out, 0x2e8);
  return out;
};

/** verdict runs one verification and returns 'ok', or the failure's code. */
async function verdict(inp: VerifyInput): Promise<{ v: string; table: boolean | undefined }> {
  try {
    const r = await verify(inp);
    return { v: 'ok', table: r.vekTable };
  } catch (e) {
    return { v: String((e as { code?: string }).code), table: undefined };
  }
}

describe('report signatures with the VEK table (precomputed multiples)', function () {
  this.timeout(300_000);
  let genoa: FakeAmd;

  before(async () => {
    genoa = await FakeAmd.create({ product: 'Genoa' });
  });
  beforeEach(() => clearChainCache());
  after(() => clearChainCache());

  const fakeInput = (report: Buffer, leaf: Buffer): VerifyInput => ({
    report, leaf, intermediate: genoa.askDer, anchors: [genoa.arkDer], product: 'Genoa', kind: 'VCEK', atSeconds: AT,
  });

  it('every genuine AMD report verifies the generic way first, then with its VEK table, and a changed byte fails both ways', async () => {
    for (const v of VECTORS) {
      const first = await verify(input(v));
      assert.equal(first.vekTable, false, v.name);
      for (let i = 0; i < 3; i++) assert.equal((await verify(input(v))).vekTable, true, v.name);
      for (const at of [0x50, 0x90, 0x2a0, 0x2e8 + 47]) {
        const bad = Buffer.from(v.report);
        bad[at]! ^= 0x01;
        await assert.rejects(verify({ ...input(v), report: bad }), { code: 'SNP_ERR_REPORT_SIGNATURE' }, `${v.name} byte 0x${at.toString(16)}`);
      }
    }
  });

  it('fresh signatures: the table and the generic verify agree on 40 reports and 6 forgeries of each', async () => {
    const leaf = genoa.vcekDer();
    let agreed = 0;
    for (let i = 0; i < 40; i++) {
      const good = genoa.signReport({ reportData: randomBytes(64) });
      const r = fromLe(good.subarray(0x2a0, 0x2e8));
      const s = fromLe(good.subarray(0x2e8, 0x330));
      const cases: Array<[string, Buffer, string]> = [
        ['valid', good, 'ok'],
        // ECDSA is malleable: (r, n - s) verifies as well, on both paths.
        ['(r, n-s)', withRs(good, null, N - s), 'ok'],
        ['r+1', withRs(good, r + 1n, null), 'SNP_ERR_REPORT_SIGNATURE'],
        ['s xor 1', withRs(good, null, s ^ 1n), 'SNP_ERR_REPORT_SIGNATURE'],
        ['r+1 and s', withRs(good, r + 1n, (s * 3n) % N), 'SNP_ERR_REPORT_SIGNATURE'],
        ['(s, r)', withRs(good, s, r), 'SNP_ERR_REPORT_SIGNATURE'],
        ['report data', Buffer.concat([good.subarray(0, 0x50), randomBytes(64), good.subarray(0x90)]), 'SNP_ERR_REPORT_SIGNATURE'],
      ];
      for (const [what, rep, want] of cases) {
        clearChainCache(); // a new VekVerifier: its first verification is the generic one
        const generic = await verdict(fakeInput(rep, leaf));
        const table = await verdict(fakeInput(rep, leaf));
        assert.equal(generic.v, want, `${what} (generic)`);
        assert.equal(table.v, want, `${what} (table)`);
        if (want === 'ok') {
          assert.equal(generic.table, false);
          assert.equal(table.table, true);
        }
        agreed++;
      }
    }
    assert.equal(agreed, 280);
  });

  it('r and s at the range edges are refused with a table as without one', async () => {
    const good = genoa.signReport({});
    const leaf = genoa.vcekDer();
    assert.equal((await verify(fakeInput(good, leaf))).vekTable, false);
    assert.equal((await verify(fakeInput(good, leaf))).vekTable, true);
    const r = fromLe(good.subarray(0x2a0, 0x2e8));
    const s = fromLe(good.subarray(0x2e8, 0x330));
    const top = (1n << 384n) - 1n; // the largest value 48 bytes hold
    for (const [what, rep] of [
      ['r=0', withRs(good, 0n, null)], ['s=0', withRs(good, null, 0n)], ['r=n', withRs(good, N, null)], ['s=n', withRs(good, null, N)],
      ['r=n+r', withRs(good, N + (r % (top - N)), null)], ['r=2^384-1', withRs(good, top, null)], ['s=2^384-1', withRs(good, null, top)],
      ['r=n-1', withRs(good, N - 1n, null)], ['s=n-1', withRs(good, null, N - 1n)], ['r=1', withRs(good, 1n, null)], ['s=1', withRs(good, null, 1n)],
      ['r=s', withRs(good, s, null)], ['s=r', withRs(good, null, r)],
    ] as Array<[string, Buffer]>) {
      await assert.rejects(verify(fakeInput(rep, leaf)), { code: 'SNP_ERR_REPORT_SIGNATURE' }, what);
    }
    // Bytes past the 48 a P-384 integer fills are refused before any signature arithmetic.
    await assert.rejects(verify(fakeInput(withRs(good, r + (1n << 384n), null), leaf)), { code: 'SNP_ERR_MBZ' });
    assert.equal((await verify(fakeInput(good, leaf))).vekTable, true, 'the table still serves the good report');
  });

  it('tables stay within the process-wide cap; past it keys verify the generic way, and a cache wipe frees them', async () => {
    const base = vekTables().count; // other addon instances (worker threads) may hold some
    const { limit } = vekTables();
    assert.ok(limit >= 16 && limit <= 1024, `cap ${limit}`);
    const keys = limit - base + 3;
    let withTable = 0;
    let without = 0;
    for (let i = 0; i < keys; i++) {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
      const chipId = randomBytes(64);
      const leaf = genoa.vcekDer({ key: privateKey, chipId });
      const rep = genoa.signReport({ chipId }, privateKey);
      assert.equal((await verify(fakeInput(rep, leaf))).vekTable, false);
      const second = await verify(fakeInput(rep, leaf));
      if (second.vekTable) withTable++;
      else without++;
    }
    assert.equal(vekTables().count, limit);
    assert.equal(withTable, limit - base);
    assert.equal(without, 3);
    clearChainCache();
    assert.equal(vekTables().count, base, 'the wiped entries released their tables');
    // The budget is free again: the next key that is used twice gets a table.
    const rep = genoa.signReport({});
    const leaf = genoa.vcekDer(); // minted once: RSA-PSS salts make every minting's bytes differ
    await verify(fakeInput(rep, leaf));
    assert.equal((await verify(fakeInput(rep, leaf))).vekTable, true);
    assert.equal(vekTables().count, base + 1);
  });
});
