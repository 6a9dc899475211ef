/**
 * The pinned Intel root: the embedded text equals the shipped file, which equals the reference
 * fixture; its certificate and SPKI SHA-256 (computed by the native addon) equal the pins of
 * src/tdx/roots/PROVENANCE.md and test/fixtures/intel-roots/PROVENANCE.md.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { certInfo } from '../../src/native';
import { INTEL_SGX_ROOT_CA, intelRootDer } from '../../src/tdx/roots';

const SHIPPED = join(__dirname, '../../src/tdx/roots');
const FIXTURES = join(__dirname, '../fixtures/intel-roots');

/** pins reads `| file | ... | cert SHA-256 | SPKI SHA-256 |` rows naming Intel_SGX_Root_CA.pem. */
function pins(file: string): { cert: string; spki: string } {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const cells = line.split('|').map((c) => c.trim()).filter((c) => c !== '');
    if (cells[0] === 'Intel_SGX_Root_CA.pem') return { cert: cells[cells.length - 2]!, spki: cells[cells.length - 1]! };
  }
  throw new Error(`no pin row in ${file}`);
}

describe('tdx: pinned Intel SGX Root CA', () => {
  it('embedded PEM == shipped file == reference fixture (PEM and DER)', () => {
    const shipped = readFileSync(join(SHIPPED, 'Intel_SGX_Root_CA.pem'), 'utf8');
    assert.equal(INTEL_SGX_ROOT_CA.pem, shipped);
    assert.equal(shipped, readFileSync(join(FIXTURES, 'Intel_SGX_Root_CA.pem'), 'utf8'));
    assert.ok(intelRootDer().equals(readFileSync(join(FIXTURES, 'Intel_SGX_Root_CA.der'))));
  });

  it('certificate and SPKI SHA-256 equal the pins (both PROVENANCE files)', () => {
    const info = certInfo(Buffer.from(INTEL_SGX_ROOT_CA.pem));
    assert.equal(info.subjectCN, INTEL_SGX_ROOT_CA.subjectCN);
    assert.equal(info.issuerCN, 'Intel SGX Root CA');
    for (const file of [join(SHIPPED, 'PROVENANCE.md'), join(FIXTURES, 'PROVENANCE.md')]) {
      const p = pins(file);
      assert.equal(info.sha256.toString('hex'), p.cert, file);
      assert.equal(info.spkiSha256.toString('hex'), p.spki, file);
    }
    assert.equal(INTEL_SGX_ROOT_CA.sha256, info.sha256.toString('hex'));
    assert.equal(INTEL_SGX_ROOT_CA.spkiSha256, info.spkiSha256.toString('hex'));
  });
});
