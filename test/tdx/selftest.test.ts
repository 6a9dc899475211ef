/** The TDX startup self-test passes, and its embedded vector is byte-equal to the fixture it was made from. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tdxSelfTest } from '../../src/tdx/selftest';
import { TDX_SELF_TEST_VECTOR as V } from '../../src/tdx/selftest-vector';
import { TDX_VECTORS_DIR } from '../support/tdx-vectors';

describe('tdx: startup self-test', () => {
  it('passes: pinned root, genuine quote at the pinned time, re-serialised tcbInfo refused', async () => {
    const r = await tdxSelfTest();
    assert.equal(r.ok, true, JSON.stringify(r.checks));
    assert.deepEqual(r.checks.map((c) => c.name), ['pin_intel_sgx_root', 'genuine_tdx_quote', 'reserialised_tcb_info_refused']);
  });
  it('embeds the fixture byte for byte', () => {
    const d = join(TDX_VECTORS_DIR, V.name);
    const files: Record<string, string> = {
      quote: 'quote.bin', tcbInfo: 'tcb_info.json', tcbInfoChain: 'tcb_info_issuer_chain.pem', qeIdentity: 'qe_identity.json',
      qeIdentityChain: 'qe_identity_issuer_chain.pem', pckCrl: 'pck_crl.der', pckCrlChain: 'pck_crl_issuer_chain.pem', rootCrl: 'root_ca_crl.der',
    };
    for (const [k, f] of Object.entries(files)) assert.deepEqual(Buffer.from((V as unknown as Record<string, string>)[k]!, 'base64'), readFileSync(join(d, f)), k);
  });
});
