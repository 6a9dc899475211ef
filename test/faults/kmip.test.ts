/**
 * The KMIP server (real PyKMIP) killed and restarted under a steady attestation load against a
 * `tas serve` child using tas_kbm_kmip: while it is down clients get 503 + Retry-After and nothing
 * is released, the nonce is put back (the agent's retry with the SAME nonce succeeds), the same
 * broker reconnects by itself once the server is back, no nonce releases twice, no crash.
 */
import assert from 'node:assert/strict';
import { createLab, KEY_ID, policyDoc, SECRET, storePolicy, type Lab } from '../support/lab';
import { PyKmipServer } from '../support/pykmip';
import { startPlain, until, type RedisNode } from '../support/redis';
import { at, load, sleep, spawnServe, Tally, type ServeChild } from '../support/fleet';

describe('faults under load: the KMIP server (PyKMIP) killed and restarted', function () {
  this.timeout(180_000);
  let kmip: PyKmipServer;
  let redis: RedisNode & { url: string };
  let lab: Lab;
  let tas: ServeChild;

  before(async () => {
    kmip = await PyKmipServer.create();
    await kmip.start();
    kmip.admin([{ op: 'register_secret', name: KEY_ID, hex: Buffer.from(SECRET).toString('hex') }]);
    const conf = kmip.writeClientConfig('tas-kmip.conf', undefined, { kmip_version: 'auto', connect_timeout_ms: 2000, request_timeout_ms: 4000, reconnect_initial_ms: 200, reconnect_max_ms: 1000 });
    redis = await startPlain();
    lab = await createLab({ env: { TAS_STORE: 'redis', TAS_REDIS_URL: redis.url, TAS_KBM_PLUGIN: 'tas_kbm_kmip', TAS_KBM_CONFIG_FILE: conf }, products: ['Genoa'] });
    assert.equal((await storePolicy(lab, policyDoc('kmip-p'))).status, 201);
    tas = await spawnServe(lab.env);
  });
  after(async () => {
    await tas?.stop();
    await lab?.close();
    await redis?.stop();
    await kmip?.destroy();
  });

  it('503 + Retry-After while down, recovery without a restart, same nonces succeed, nothing released twice', async () => {
    const view = at(lab, tas.url);
    const t = new Tally();
    const agents = load(view, t, { policyId: 'kmip-p', clients: 3, cycles: 30, retries: 160, retryDelayMs: 250 });
    await until(async () => t.okPerNonce.size >= 6, 'releases before the fault', 60_000);
    await kmip.stop();
    const before = t.okPerNonce.size;
    const s503 = t.get(503);
    await sleep(2500);
    const during = t.okPerNonce.size - before;
    const refused = t.get(503) - s503;
    const back = Date.now();
    await kmip.start();
    let recovered = 0;
    await until(async () => {
      if (t.okPerNonce.size > before + during) recovered = Date.now() - back;
      return recovered > 0;
    }, 'a release after the KMIP server returned', 60_000);
    await agents;
    console.log(`      KMIP down 2.5 s: ${refused} x 503 meanwhile, ${during} released meanwhile (in flight), first release ${recovered} ms after the server was back; ${JSON.stringify(t.summary())}`);
    assert.deepEqual(t.unexpected, []);
    assert.equal(t.doubles(), 0);
    assert.equal(t.wrongSecret, 0);
    assert.equal(t.gaveUp, 0, JSON.stringify(t.summary()));
    assert.equal(t.transport, 0, t.transportErrors.join(' | '));
    assert.equal(t.missingRetryAfter, 0);
    assert.ok(refused > 0, 'clients saw 503s while the KMIP server was down');
    assert.ok(during <= 3, 'at most the requests already past the broker call were released');
    assert.equal(t.okPerNonce.size, 30);
    assert.equal(tas.child.exitCode, null);
  });
});
