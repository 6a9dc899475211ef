/** The pinned NVIDIA roots: embedded text = the .pem files = the fingerprints in PROVENANCE.md. */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NVIDIA_DEVICE_IDENTITY_ROOT, NVIDIA_RIM_ROOT } from '../../src/gpu/roots';

const DIR = join(__dirname, '..', '..', 'src', 'gpu', 'roots');

function derSha256(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

describe('gpu: pinned NVIDIA roots', () => {
  for (const [file, root, cn] of [
    ['nvidia_device_identity_ca.pem', NVIDIA_DEVICE_IDENTITY_ROOT, 'NVIDIA Device Identity CA'],
    ['nvidia_corim_signing_root_ca.pem', NVIDIA_RIM_ROOT, 'NVIDIA CoRIM signing Root CA'],
  ] as const) {
    it(`${cn}: embedded text, file and fingerprint agree`, () => {
      const pem = readFileSync(join(DIR, file), 'utf8');
      assert.equal(root.pem, pem);
      assert.equal(derSha256(pem), root.sha256);
      assert.match(readFileSync(join(DIR, 'PROVENANCE.md'), 'utf8'), new RegExp(root.sha256));
      const x = new X509Certificate(pem);
      assert.match(x.subject, new RegExp(`CN=${cn}`));
      assert.ok(x.verify(x.publicKey), 'self-signed');
      // The same root the genuine vectors were produced under.
      assert.equal(derSha256(readFileSync(join(__dirname, '..', 'fixtures', 'gpu-vectors', 'roots', file), 'utf8')), root.sha256);
    });
  }
});
