/**
 * The SoftHSM-backed sessions of tas_kbm_pkcs11 killed under a steady attestation load: every
 * PKCS#11 session of the daemon is closed behind its pool's back (C_CloseAllSessions from a second
 * handle on the same library in the same process — what a token reset or an HSM restart does to a
 * client). Expected: the pool notices, reopens and logs in again once; no request fails with a
 * 5xx other than 503 + Retry-After, the same nonce succeeds on retry, nothing is released twice,
 * every reply decrypts to the secret the token holds.
 */
import assert from 'node:assert/strict';
import * as pkcs11js from 'pkcs11js';
import { createLab, KEY_ID, policyDoc, SECRET, storePolicy, type Lab } from '../support/lab';
import { softHsm } from '../support/softhsm';
import { load, sleep, Tally } from '../support/fleet';
import { until } from '../support/redis';

describe('faults under load: SoftHSM (PKCS#11) sessions killed', function () {
  this.timeout(180_000);
  let lab: Lab;
  let p11: pkcs11js.PKCS11;
  let slot: Buffer;

  before(async () => {
    const hsm = softHsm();
    const token = hsm.createToken('faults-token', '1234', [{ label: KEY_ID, value: Buffer.from(SECRET), keyType: 'generic' }]);
    const conf = hsm.writeFile('kbm-faults.yaml', `module: ${hsm.module}\ntoken_label: ${token.label}\npin_file: ${token.pinFile}\nmode: hybrid\npool_size: 2\n`);
    lab = await createLab({ products: ['Genoa'], env: { TAS_KBM_PLUGIN: 'tas_kbm_pkcs11', TAS_KBM_CONFIG_FILE: conf } });
    assert.equal((await storePolicy(lab, policyDoc('hsm-p'))).status, 201);
    // A second handle on the same library: SoftHSM's state is per process, so this reaches the
    // daemon's sessions (the plugin initialised the library first).
    p11 = new pkcs11js.PKCS11();
    p11.load(hsm.module);
    try {
      p11.C_Initialize();
    } catch (e) {
      if (!/CKR_CRYPTOKI_ALREADY_INITIALIZED/.test(String(e))) throw e;
    }
    slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === token.label)!;
    assert.ok(slot, 'the test token is visible');
  });
  after(async () => lab?.close());

  it('sessions killed twice mid-load: the pool reopens them, every agent gets its secret, nothing twice', async () => {
    const t = new Tally();
    const agents = load(lab, t, { policyId: 'hsm-p', clients: 3, cycles: 30, retries: 40, retryDelayMs: 200 });
    await until(async () => t.okPerNonce.size >= 5, 'releases before the fault', 60_000);
    const reopenedBefore = lab.daemon.logLines.filter((l) => l.msg === 'PKCS#11 sessions lost: reopening').length;
    p11.C_CloseAllSessions(slot);
    await until(async () => t.okPerNonce.size >= 15, 'releases after the first kill', 60_000);
    p11.C_CloseAllSessions(slot);
    await sleep(200);
    await agents;
    const reopened = lab.daemon.logLines.filter((l) => l.msg === 'PKCS#11 sessions lost: reopening').length - reopenedBefore;
    console.log(`      2 session kills under load: ${JSON.stringify(t.summary())}, pool reopened ${reopened} times`);
    assert.ok(reopened >= 1, 'the pool noticed the killed sessions');
    assert.deepEqual(t.unexpected, []);
    assert.equal(t.doubles(), 0);
    assert.equal(t.wrongSecret, 0);
    assert.equal(t.gaveUp, 0);
    assert.equal(t.missingRetryAfter, 0);
    assert.equal(t.okPerNonce.size, 30);
  });
});
