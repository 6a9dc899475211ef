/**
 * The pinned AMD roots: the embedded text equals the shipped files, which equal the reference
 * fixtures; every SPKI SHA-256 (computed by the native addon) equals amd-roots/PROVENANCE.md; the
 * startup self-test passes.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { certInfo } from '../../src/native';
import { PINNED_ROOTS, PRODUCTS, SELF_TEST_VECTOR, selfTest } from '../../src/snp';

const SRC_ROOTS = join(__dirname, '../../src/snp/roots');
const FIX_ROOTS = join(__dirname, '../fixtures/amd-roots');
const ROLES = ['ark', 'ask', 'asvk'] as const;

/** provenance parses the pinning table of amd-roots/PROVENANCE.md: file → {cn, certSha, spkiSha}. */
function provenance(): Map<string, { cn: string; certSha: string; spkiSha: string }> {
  const m = new Map<string, { cn: string; certSha: string; spkiSha: string }>();
  for (const line of readFileSync(join(FIX_ROOTS, 'PROVENANCE.md'), 'utf8').split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length >= 8 && /^(milan|genoa|turin)\/(ark|ask|asvk)\.pem$/.test(cells[1]!)) {
      m.set(cells[1]!, { cn: cells[2]!, certSha: cells[5]!, spkiSha: cells[6]! });
    }
  }
  return m;
}

describe('snp: pinned AMD roots', () => {
  const prov = provenance();

  it('PROVENANCE.md lists all nine certificates', () => assert.equal(prov.size, 9));

  for (const p of PRODUCTS) {
    for (const role of ROLES) {
      const file = `${p.toLowerCase()}/${role}.pem`;
      it(`${file}: embedded == shipped file == fixture, SPKI/cert SHA-256 == PROVENANCE.md`, () => {
        const shipped = readFileSync(join(SRC_ROOTS, file), 'utf8');
        assert.equal(PINNED_ROOTS[p][role].pem, shipped);
        assert.equal(shipped, readFileSync(join(FIX_ROOTS, file), 'utf8'));
        const info = certInfo(Buffer.from(shipped));
        const want = prov.get(file)!;
        assert.equal(info.subjectCN, want.cn);
        assert.equal(info.sha256.toString('hex'), want.certSha);
        assert.equal(info.spkiSha256.toString('hex'), want.spkiSha);
        assert.equal(PINNED_ROOTS[p][role].spkiSha256, want.spkiSha);
      });
    }
  }

  it('the self-test vector is the genuine mstav-genoa-v3 report and VCEK', () => {
    const d = join(__dirname, '../fixtures/snp-vectors/mstav-genoa-v3');
    assert.ok(Buffer.from(SELF_TEST_VECTOR.reportBase64, 'base64').equals(readFileSync(join(d, 'report.bin'))));
    assert.equal(SELF_TEST_VECTOR.vcekPem, readFileSync(join(d, 'vcek.pem'), 'utf8'));
  });

  it('selfTest() passes: pins and a genuine report verified against them', async () => {
    const r = await selfTest();
    assert.equal(r.ok, true, JSON.stringify(r.checks));
    assert.equal(r.checks.length, 10);
    assert.ok(r.checks.some((c) => c.name === 'genuine_report' && c.ok));
  });
});
