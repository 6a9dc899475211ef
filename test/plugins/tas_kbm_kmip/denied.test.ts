/**
 * A key the KMIP user may not read (issue #14, finding 4), against a real PyKMIP server: another
 * identity owns the key under an operation policy that lets everyone Locate it but only its owner
 * Get it, so tas finds it and is refused with PermissionDenied. That is a refusal of that request
 * (404 KBM_KEY_DENIED, its own audit reason), never the credential latch: every other key keeps
 * being released and the daemon stays ready. A rejected client certificate still latches.
 */
import assert from 'node:assert/strict';
import pino from 'pino';
import { clientKey } from '../../kbm/contract';
import { agentDecrypt } from '../../kbm/agent-decrypt';
import { PyKmipServer } from '../../support/pykmip';
import { openKmipBroker, plugin } from '../../../plugins/tas_kbm_kmip';
import { KbmService } from '../../../src/kbm';
import { TasError } from '../../../src/errors';

const log = pino({ level: 'silent' });

describe('tas_kbm_kmip: a key the KMIP user may not read (PyKMIP)', function () {
  this.timeout(120_000);
  let s: PyKmipServer;
  let okHex: string;
  const services: KbmService[] = [];
  const client = clientKey(2048);

  before(async () => {
    s = await PyKmipServer.create();
    const ownerOnlyGet = { LOCATE: 'ALLOW_ALL', GET_ATTRIBUTES: 'ALLOW_ALL', GET_ATTRIBUTE_LIST: 'ALLOW_ALL', GET: 'ALLOW_OWNER', ACTIVATE: 'ALLOW_OWNER', REVOKE: 'ALLOW_OWNER', DESTROY: 'ALLOW_OWNER' };
    s.writePolicy('tas-test.json', { 'locate-all-get-owner': { preset: { SYMMETRIC_KEY: ownerOnlyGet } } });
    await s.start();
    okHex = s.admin([{ op: 'create_aes', name: 'readable-key' }])[0]!.hex!;
    s.admin([{ op: 'create_aes', name: 'foreign-key', policy: 'locate-all-get-owner' }], '1.2', s.certs.otherTenant);
  });
  after(async () => {
    for (const k of services) await k.close();
    await s?.destroy();
  });

  const service = (name: string, id = s.certs.client): KbmService => {
    const k = new KbmService(openKmipBroker(plugin.manifest, s.writeClientConfig(name, id, { reconnect_initial_ms: 50, reconnect_max_ms: 200 }), log), log);
    services.push(k);
    return k;
  };

  async function refusal(p: Promise<unknown>): Promise<TasError> {
    const e = await p.then(() => assert.fail('expected a refusal'), (x: unknown) => x);
    assert.ok(e instanceof TasError, String(e));
    return e;
  }

  it('PermissionDenied on one key refuses that request (404 KBM_KEY_DENIED); other keys, and readiness, are unaffected', async () => {
    const k = service('denied.conf');
    for (let i = 0; i < 3; i++) {
      const e = await refusal(k.getSecret('foreign-key', client.wk));
      assert.equal(e.code, 'KBM_KEY_DENIED', e.detail);
      assert.equal(e.status, 404);
      assert.equal(e.reason, 'KBM_DENIED');
      assert.match(e.detail ?? '', /denied access to "foreign-key".*PermissionDenied/);
      // The next release of another key still works: no latch.
      const reply = await k.getSecret('readable-key', client.wk);
      assert.equal(agentDecrypt(reply, client.privateKey).secret.toString('hex'), okHex);
    }
    assert.equal(k.authFailure, undefined, 'a per-key refusal never latches the broker');
    assert.equal(await k.readiness(), undefined, 'the daemon stays ready');
  });

  it('a rejected client certificate still latches (credential refusal, never retried)', async () => {
    const k = service('untrusted.conf', s.certs.otherCa);
    const e = await refusal(k.getSecret('readable-key', client.wk));
    assert.equal(e.code, 'KBM_AUTH_FAILED');
    assert.notEqual(k.authFailure, undefined);
    assert.match((await k.readiness()) ?? '', /authentication failed/);
  });
});
