/**
 * Failure behaviour of tas_kbm_kmip against a real PyKMIP server: duplicate names fail closed, a
 * server stopped mid-run gives `unavailable` (503) and the same broker recovers when it returns,
 * rejected client certificates give a sticky `auth_failed` with a clear message, a distrusted
 * server certificate too, and the key material buffer is zeroed after wrapping.
 */
import assert from 'node:assert/strict';
import pino from 'pino';
import { clientKey, expectKind } from '../../kbm/contract';
import { agentDecrypt } from '../../kbm/agent-decrypt';
import { PyKmipServer, freePort } from '../../support/pykmip';
import { KmipClientError, openKmipBroker, plugin, toKbmError, type KmipBroker } from '../../../plugins/tas_kbm_kmip';
import { KbmError, isKbmError, toTasError } from '../../../src/kbm/types';

const log = pino({ level: 'silent' });
const manifest = plugin.manifest;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('tas_kbm_kmip failure modes (PyKMIP)', function () {
  this.timeout(120_000);
  let s: PyKmipServer;
  let aesHex: string;
  let uids: Record<string, string>;
  const brokers: KmipBroker[] = [];
  const client = clientKey(2048);

  const open = (name: string, extra: Record<string, string | number> = {}, id = undefined as undefined | { cert: string; key: string }, ca?: string): KmipBroker => {
    const b = openKmipBroker(manifest, s.writeClientConfig(name, id, { reconnect_initial_ms: 50, reconnect_max_ms: 200, connect_timeout_ms: 3000, ...extra }, ca), log);
    brokers.push(b);
    return b;
  };

  before(async () => {
    s = await PyKmipServer.create();
    await s.start();
    const out = s.admin([
      { op: 'create_aes', name: 'fail-aes' },
      { op: 'create_aes', name: 'fail-dup' },
      { op: 'create_aes', name: 'fail-dup' },
      { op: 'register_secret', name: 'fail-dup-mixed', hex: '01020304' },
      { op: 'create_aes', name: 'fail-dup-mixed' },
    ]);
    aesHex = out[0]!.hex!;
    uids = { aes: out[0]!.uid, dup1: out[1]!.uid, dup2: out[2]!.uid };
  });
  after(async () => {
    for (const b of brokers) await b.close();
    await s?.destroy();
  });

  it('duplicate names fail closed (no secret, error names the duplicates), also across object types', async () => {
    const b = open('dup.conf');
    for (const id of ['fail-dup', 'fail-dup-mixed']) {
      await assert.rejects(b.getSecret(id, client.wk), (e: unknown) => {
        assert.ok(isKbmError(e));
        assert.equal((e as KbmError).kind, 'config');
        assert.match((e as Error).message, /duplicate names: 2 Active objects/);
        assert.equal(toTasError(e).status, 503);
        return true;
      });
    }
    // The same broker still releases a uniquely named key.
    assert.equal(agentDecrypt(await b.getSecret('fail-aes', client.wk), client.privateKey).secret.toString('hex'), aesHex);
    // Default kmip_version=auto: DiscoverVersions picked PyKMIP's best common version, 2.0.
    assert.deepEqual(b.client.version, { major: 2, minor: 0 });
    assert.notEqual(uids.dup1, uids.dup2);
  });

  it('does not trust Locate: an object whose Name/State/type differ is refused and its material zeroed', async () => {
    const b = open('verify.conf');
    const [aesUid] = await b.client.locate('fail-aes');
    assert.ok(aesUid);
    // Ask for fail-aes's object as if it had been located for another name.
    await assert.rejects(b.client.getVerified(aesUid, 'fail-dup', [2]), /does not match \(name differs\)/);
    await assert.rejects(b.client.getVerified(aesUid, 'fail-aes', [7]), /object type 2 not allowed/);
    const ok = await b.client.getVerified(aesUid, 'fail-aes', [2]);
    assert.equal(ok.material.toString('hex'), aesHex);
    ok.material.fill(0);
  });

  it('zeroes the key material buffer after wrapping it', async () => {
    const seen: Buffer[] = [];
    const b = openKmipBroker(manifest, s.writeClientConfig('zero.conf'), log, { afterWrap: (m) => seen.push(m) });
    brokers.push(b);
    const reply = await b.getSecret('fail-aes', client.wk);
    assert.equal(agentDecrypt(reply, client.privateKey).secret.toString('hex'), aesHex);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.length, 32);
    assert.ok(seen[0]!.every((x) => x === 0), 'key material not zeroed');
    // The raw response buffers were wiped as well (one per round trip: Locate and Get).
    assert.ok(b.client.stats.buffersWiped >= 2);
    assert.equal(b.client.stats.buffersWiped, b.client.stats.requests);
  });

  it('server stopped mid-run: unavailable (503, retryable), then the same broker recovers', async () => {
    const b = open('restart.conf');
    assert.equal(agentDecrypt(await b.getSecret('fail-aes', client.wk), client.privateKey).secret.toString('hex'), aesHex);
    const connectsBefore = b.client.stats.connects;
    await s.stop();
    await expectKind(b.getSecret('fail-aes', client.wk), 'unavailable', 503);
    const h = await b.health();
    assert.equal(h.ok, false);
    assert.notEqual(h.authFailed, true);
    await expectKind(b.getSecret('fail-aes', client.wk), 'unavailable', 503);
    await s.start();
    // Recovery within a bounded number of attempts (backoff is at most 200 ms here).
    let attempts = 0;
    for (; attempts < 100; attempts++) {
      if ((await b.health()).ok) break;
      await sleep(100);
    }
    assert.ok(attempts < 100, 'broker did not recover');
    assert.equal(agentDecrypt(await b.getSecret('fail-aes', client.wk), client.privateKey).secret.toString('hex'), aesHex);
    assert.ok(b.client.stats.connects > connectsBefore);
    assert.ok(b.client.stats.connectFailures >= 1);
  });

  it('nothing listening at all: unavailable, and backoff limits connection attempts', async () => {
    const port = await freePort();
    const b = open('noserver.conf', { port, reconnect_initial_ms: 60_000, reconnect_max_ms: 60_000 });
    await expectKind(b.getSecret('fail-aes', client.wk), 'unavailable', 503);
    for (let i = 0; i < 5; i++) await expectKind(b.getSecret('fail-aes', client.wk), 'unavailable', 503);
    // Six calls, one connection attempt: the rest were refused by the backoff without dialling.
    assert.equal(b.client.stats.connectFailures, 1);
  });

  it('client certificate from another CA: auth_failed (sticky, clear message, not retried)', async () => {
    const b = open('foreign.conf', {}, s.certs.otherCa);
    await assert.rejects(b.getSecret('fail-aes', client.wk), (e: unknown) => {
      assert.ok(isKbmError(e));
      assert.equal((e as KbmError).kind, 'auth_failed');
      assert.match((e as Error).message, /TLS handshake .* failed: the server does not trust the CA of our client certificate/);
      assert.equal(toTasError(e).code, 'KBM_AUTH_FAILED');
      return true;
    });
    const h = await b.health();
    assert.equal(h.ok, false);
    assert.equal(h.authFailed, true);
    assert.match(h.detail ?? '', /certfile\/keyfile/);
    const attempts = b.client.stats.connects + b.client.stats.connectFailures;
    await expectKind(b.getSecret('fail-aes', client.wk), 'auth_failed', 503);
    assert.equal(b.client.stats.connects + b.client.stats.connectFailures, attempts, 'retried a rejected credential');
  });

  it('client certificate without EKU clientAuth: auth_failed (refused in the handshake)', async () => {
    const b = open('noeku.conf', {}, s.certs.noClientAuth);
    await expectKind(b.getSecret('fail-aes', client.wk), 'auth_failed', 503);
    const h = await b.health();
    assert.equal(h.authFailed, true);
    assert.match(h.detail ?? '', /needs extended key usage clientAuth/);
  });

  it('another valid identity: owner-only keys are not_found, a direct Get is PermissionDenied (denied: a per-request refusal, never the credential latch)', async () => {
    const b = open('tenant2.conf', {}, s.certs.otherTenant);
    await expectKind(b.getSecret('fail-aes', client.wk), 'not_found', 404);
    const err = await b.client.get(uids.aes!).then(
      () => assert.fail('Get of a foreign object succeeded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof KmipClientError && err.kind === 'operation' && err.resultReason === 0x0c, String(err));
    const k = toKbmError(err, 'fail-aes');
    assert.equal(k.kind, 'denied');
    assert.equal(toTasError(k).status, 404);
    assert.match(k.message, /denied access/);
    // One object's access list does not take the broker down.
    assert.equal((await b.health()).ok, true);
  });

  it('server certificate not trusted (wrong ca_certs): auth_failed, never talks KMIP to it', async () => {
    const b = open('distrust.conf', {}, undefined, s.certs.otherCaCert);
    await expectKind(b.getSecret('fail-aes', client.wk), 'auth_failed', 503);
    assert.match(b.client.authFailed ?? '', /server certificate is not trusted by ca_certs/);
    assert.equal(b.client.stats.requests, 0);
  });

  it('plugin.open does not fail when the server is down (the daemon stays not-ready)', async () => {
    const port = await freePort();
    const broker = await plugin.open(s.writeClientConfig('down.conf', undefined, { port }), { log });
    const h = await broker.health();
    assert.equal(h.ok, false);
    await broker.close();
  });

  it('config errors are KbmError config: missing file, unknown keys, weakened TLS', async () => {
    await assert.rejects(plugin.open(undefined, { log }), (e: unknown) => isKbmError(e) && e.kind === 'config');
    await assert.rejects(plugin.open('/nonexistent/kmip.conf', { log }), (e: unknown) => isKbmError(e) && e.kind === 'config' && /cannot read/.test(e.message));
    for (const [extra, re] of [
      [{ hots: 'x' }, /unknown setting 'hots'/],
      [{ cert_reqs: 'CERT_NONE' }, /CERT_REQUIRED/],
      [{ ssl_version: 'PROTOCOL_TLSv1' }, /TLS 1.2/],
      [{ kmip_version: '3.0' }, /kmip_version/],
      [{ object_types: 'PrivateKey' }, /object_types/],
      [{ password: 'x' }, /not supported/],
    ] as const) {
      await assert.rejects(plugin.open(s.writeClientConfig('bad.conf', undefined, extra), { log }), (e: unknown) => {
        assert.ok(isKbmError(e) && e.kind === 'config', String(e));
        assert.match((e as Error).message, re);
        return true;
      });
    }
  });
});
