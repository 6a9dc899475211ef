/**
 * A ≤ 30 s smoke of the certify benchmark (test/bench/certify.ts): 1.5 s each of get_secret,
 * certify with tas_cert_local and certify with tas_cert_pkcs11 on SoftHSM2, at concurrency 4. It
 * prints the rates and their ratio to get_secret of this run; it asserts only that every request
 * succeeded and the figures exist, never a rate: CI machines differ.
 */
import assert from 'node:assert/strict';
import { formatResults, runCertifyBench } from './certify';

describe('bench: certify smoke (get_secret vs certify local vs certify SoftHSM)', function () {
  this.timeout(90_000);
  it('every request succeeds and the rates are printed', async () => {
    const rs = await runCertifyBench({ seconds: 1.5, concurrency: 4 });
    console.log(`      ${formatResults(rs).replace(/\n/g, '\n      ')}`);
    assert.deepEqual(rs.map((r) => r.name), ['get_secret (mock broker)', 'certify tas_cert_local', 'certify tas_cert_pkcs11 (SoftHSM)']);
    for (const r of rs) {
      assert.equal(r.errors, 0, `${r.name}: ${r.firstError}`);
      assert.ok(r.requests > 0 && Number.isFinite(r.perSecond), `${r.name}: some requests completed`);
    }
  });
});
