/**
 * tas_kbm_pkcs11 against a real SoftHSM2 token (test/support/softhsm.ts): the contract in both
 * modes, then what only an HSM plugin has to prove: keys stay sensitive, the session pool bounds
 * and recovers, a wrong PIN is tried exactly once, the open-time self-test refuses tokens whose
 * replies the agent could not read.
 *
 * SoftHSM 2.6.1 limitation: its C_WrapKey does RSA-OAEP with SHA-1 only, so the in-hsm contract
 * runs with oaep_hash sha1 (NOT the agent's format; only the KWP variant of the contract applies),
 * and its KWP zero-pads keys to 8-byte multiples, so secrets here are 32 or 64 bytes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import * as pkcs11js from 'pkcs11js';
import { Config } from '../../../src/config';
import '../../../src/kbm/settings';
import { isKbmError, KbmService, openKeyBroker } from '../../../src/kbm';
import { isTasError } from '../../../src/errors';
import plugin, { acquireModule, openPkcs11, parsePkcs11Config, readPin, releaseModule, type Pkcs11Broker } from '../../../plugins/tas_kbm_pkcs11';
import { agentDecrypt } from '../../kbm/agent-decrypt';
import { clientKey, expectKind, kbmContract } from '../../kbm/contract';
import { softHsm, type HsmKey } from '../../support/softhsm';

const log = pino({ level: 'silent' });

function keys(): { specs: HsmKey[]; secrets: Record<string, Buffer> } {
  const aes = randomBytes(32);
  const generic = randomBytes(64);
  return {
    specs: [
      { label: 'tenant-a-dek', id: 'a001', value: aes, keyType: 'aes' },
      { label: 'tenant-b/secret:64', id: 'b001', value: generic, keyType: 'generic' },
    ],
    secrets: { 'tenant-a-dek': Buffer.from(aes), 'tenant-b/secret:64': Buffer.from(generic) },
  };
}

function config(token: string, pinFile: string, extra: Record<string, unknown> = {}): ReturnType<typeof parsePkcs11Config> {
  return parsePkcs11Config(JSON.stringify({ module: softHsm().module, token_label: token, pin_file: pinFile, ...extra }), 'kbm-pkcs11.json');
}

kbmContract('tas_kbm_pkcs11 in-hsm (SoftHSM: OAEP-SHA1, not the agent format)', async () => {
  const k = keys();
  const t = softHsm().createToken('contract-inhsm', '1234', k.specs);
  return { broker: await openPkcs11(config(t.label, t.pinFile, { mode: 'in-hsm', oaep_hash: 'sha1', pool_size: 4 }), log), secrets: k.secrets, form: 'aes-kwp', oaepHash: 'sha1' };
});

kbmContract('tas_kbm_pkcs11 hybrid (OAEP-SHA256, the agent format)', async () => {
  const k = keys();
  const t = softHsm().createToken('contract-hybrid', '1234', k.specs);
  return { broker: await openPkcs11(config(t.label, t.pinFile, { mode: 'hybrid', pool_size: 4 }), log), secrets: k.secrets, form: 'aes-kwp' };
});

describe('tas_kbm_pkcs11 on SoftHSM', function () {
  this.timeout(60_000);
  const k = keys();
  const sensitiveOff = randomBytes(32);
  let token: ReturnType<ReturnType<typeof softHsm>['createToken']>;
  let b: Pkcs11Broker;
  const client = clientKey();

  before(async () => {
    token = softHsm().createToken('specific', '1234', [
      ...k.specs,
      { label: 'readable', value: sensitiveOff, sensitive: false },
      { label: 'stuck', value: randomBytes(32), extractable: false },
      { label: 'odd-43', value: randomBytes(43), keyType: 'generic' },
      { label: 'twin', value: randomBytes(32) },
      { label: 'twin', value: randomBytes(32) },
    ]);
    b = await openPkcs11(config(token.label, token.pinFile, { mode: 'hybrid', pool_size: 4 }), log);
  });
  after(async () => {
    await b?.close();
  });

  it('keeps token keys sensitive: CKA_VALUE cannot be read (CKR_ATTRIBUTE_SENSITIVE)', () => {
    const p11 = b.p11;
    const s = p11.C_OpenSession(b.slotId!, pkcs11js.CKF_SERIAL_SESSION);
    try {
      p11.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_LABEL, value: 'tenant-a-dek' }]);
      const [h] = p11.C_FindObjects(s, 2);
      p11.C_FindObjectsFinal(s);
      assert.ok(h, 'key found (the token is logged in for this process)');
      assert.throws(() => p11.C_GetAttributeValue(s, h, [{ type: pkcs11js.CKA_VALUE }]),
        (e: unknown) => e instanceof pkcs11js.Pkcs11Error && e.code === pkcs11js.CKR_ATTRIBUTE_SENSITIVE);
      const [sens, extr] = p11.C_GetAttributeValue(s, h, [{ type: pkcs11js.CKA_SENSITIVE }, { type: pkcs11js.CKA_EXTRACTABLE }]);
      assert.equal(sens!.value![0], 1);
      assert.equal(extr!.value![0], 1);
    } finally {
      p11.C_CloseSession(s);
    }
  });

  it('refuses to release keys that are readable, not extractable, padded wrongly by the token, or ambiguous', async () => {
    await assert.rejects(b.getSecret('readable', client.wk), (e: unknown) => isKbmError(e) && e.kind === 'not_found' && /not CKA_SENSITIVE/.test(e.message));
    await assert.rejects(b.getSecret('stuck', client.wk), (e: unknown) => isKbmError(e) && e.kind === 'not_found' && /not CKA_EXTRACTABLE/.test(e.message));
    await assert.rejects(b.getSecret('odd-43', client.wk), (e: unknown) => isKbmError(e) && e.kind === 'not_found' && /zero-pads/.test(e.message));
    await assert.rejects(b.getSecret('twin', client.wk), (e: unknown) => isKbmError(e) && e.kind === 'unavailable' && /more than one/.test(e.message));
  });

  it('serves 50 concurrent releases through a pool of 4 sessions, logging in once', async () => {
    const before = { ...b.stats };
    const ids = Array.from({ length: 50 }, (_, i) => (i % 2 ? 'tenant-a-dek' : 'tenant-b/secret:64'));
    const replies = await Promise.all(ids.map((id) => b.getSecret(id, client.wk)));
    replies.forEach((r, i) => assert.ok(agentDecrypt(r, client.privateKey).secret.equals(k.secrets[ids[i]!]!)));
    assert.equal(b.stats.releases - before.releases, 50);
    assert.ok(b.stats.sessionsOpened <= 4, `opened ${b.stats.sessionsOpened} sessions`);
    assert.equal(b.stats.logins, 1);
  });

  it('recovers when every session is closed behind the pool\'s back (C_CloseAllSessions)', async () => {
    await b.getSecret('tenant-a-dek', client.wk);
    const before = { ...b.stats };
    b.p11.C_CloseAllSessions(b.slotId!); // also logs the token out
    const r = await b.getSecret('tenant-a-dek', client.wk);
    assert.ok(agentDecrypt(r, client.privateKey).secret.equals(k.secrets['tenant-a-dek']!));
    assert.equal(b.stats.resets - before.resets, 1);
    assert.equal(b.stats.logins - before.logins, 1, 'logged in again once (the PIN was right)');
    // Concurrent callers after a kill: one reset, all succeed.
    b.p11.C_CloseAllSessions(b.slotId!);
    const many = await Promise.all(Array.from({ length: 10 }, () => b.getSecret('tenant-b/secret:64', client.wk)));
    assert.equal(many.length, 10);
    assert.equal(b.stats.resets - before.resets, 2);
    assert.deepEqual(await b.health(), { ok: true, detail: 'token "specific", mode hybrid' });
  });

  it('health notices killed sessions and recovers without a release', async () => {
    b.p11.C_CloseAllSessions(b.slotId!);
    assert.equal((await b.health()).ok, true);
  });

  it('looks keys up by CKA_ID (hex) when key_lookup is id', async () => {
    const byId = await openPkcs11(config(token.label, token.pinFile, { mode: 'hybrid', key_lookup: 'id' }), log);
    try {
      assert.ok(agentDecrypt(await byId.getSecret('b001', client.wk), client.privateKey).secret.equals(k.secrets['tenant-b/secret:64']!));
      await expectKind(byId.getSecret('tenant-a-dek', client.wk), 'not_found', 404);
      await expectKind(byId.getSecret('c001', client.wk), 'not_found', 404);
    } finally {
      await byId.close();
    }
  });

  it('close waits for releases in flight, then every later call is unavailable', async () => {
    const other = await openPkcs11(config(token.label, token.pinFile, { mode: 'hybrid', pool_size: 2 }), log);
    const inflight = Array.from({ length: 12 }, () => other.getSecret('tenant-a-dek', client.wk).then(() => 'ok', (e: unknown) => (isKbmError(e) ? e.kind : 'other')));
    await new Promise((r) => setImmediate(r));
    await other.close();
    const outcomes = await Promise.all(inflight);
    assert.ok(outcomes.every((o) => o === 'ok' || o === 'unavailable'), outcomes.join(','));
    assert.ok(outcomes.includes('ok'));
    await expectKind(other.getSecret('tenant-a-dek', client.wk), 'unavailable', 503);
    // The shared library is still usable by the other broker.
    assert.ok(agentDecrypt(await b.getSecret('tenant-a-dek', client.wk), client.privateKey).secret.equals(k.secrets['tenant-a-dek']!));
  });

  it('reads the PIN from a systemd credential', async () => {
    const cred = join(softHsm().dir, 'creds');
    mkdirSync(cred, { recursive: true });
    writeFileSync(join(cred, 'hsm-pin'), '1234\n');
    const cfg = parsePkcs11Config(JSON.stringify({ module: softHsm().module, token_label: token.label, pin_credential: 'hsm-pin', mode: 'hybrid' }), 'x.json');
    assert.equal(readPin(cfg.pinSource, { CREDENTIALS_DIRECTORY: cred }), '1234');
    const viaCred = await openPkcs11(cfg, log, { CREDENTIALS_DIRECTORY: cred });
    assert.equal((await viaCred.health()).ok, true);
    await viaCred.close();
    assert.throws(() => readPin(cfg.pinSource, {}), (e: unknown) => isKbmError(e) && /CREDENTIALS_DIRECTORY/.test(e.message));
  });
});

describe('tas_kbm_pkcs11: a wrong PIN', function () {
  this.timeout(60_000);

  it('is tried exactly once: health says authFailed with the reason, nothing calls C_Login again', async () => {
    const t = softHsm().createToken('wrong-pin', '1234', keys().specs);
    const bad = softHsm().writeFile('wrong.pin', '9999\n');
    // Count C_Login at the library object itself (the plugin shares one PKCS11 per module path),
    // independently of the plugin's own stats.
    const shared = acquireModule(softHsm().module);
    const original = shared.C_Login.bind(shared);
    const seen: number[] = [];
    shared.C_Login = (session: Buffer, userType: number, pin?: string): void => {
      try {
        original(session, userType, pin);
        seen.push(0);
      } catch (e) {
        seen.push((e as { code?: number }).code ?? -1);
        throw e;
      }
    };
    const b = await openPkcs11(config(t.label, bad, { mode: 'hybrid' }), log);
    try {
      assert.equal(b.stats.logins, 1);
      const h = await b.health();
      assert.equal(h.ok, false);
      assert.equal(h.authFailed, true);
      assert.match(h.detail!, /refused the PIN \(CKR_PIN_INCORRECT\); not retried/);
      await expectKind(b.getSecret('tenant-a-dek', clientKey().wk), 'auth_failed', 503);
      await b.health();
      await expectKind(b.getSecret('tenant-a-dek', clientKey().wk), 'auth_failed', 503);
      assert.equal(b.stats.logins, 1);
      // Through the daemon's facade: not ready, with the reason; still no second C_Login.
      const svc = new KbmService(b, log);
      assert.match((await svc.readiness())!, /authentication failed .*PIN/);
      await assert.rejects(svc.getSecret('tenant-a-dek', clientKey().wk), (e: unknown) => isTasError(e) && e.code === 'KBM_AUTH_FAILED');
      assert.equal(b.stats.logins, 1);
      assert.deepEqual(seen, [pkcs11js.CKR_PIN_INCORRECT], 'exactly one C_Login reached the token, and it was refused');
    } finally {
      shared.C_Login = original;
      await b.close();
      releaseModule(softHsm().module);
    }
  });
});

describe('tas_kbm_pkcs11: open-time checks', function () {
  this.timeout(60_000);
  let t: ReturnType<ReturnType<typeof softHsm>['createToken']>;
  before(() => {
    t = softHsm().createToken('checks', '1234', keys().specs);
  });

  const refusals: Array<[string, () => Record<string, unknown>, RegExp]> = [
    ['in-hsm with OAEP-SHA256 on SoftHSM 2.6.1', () => ({ mode: 'in-hsm' }), /cannot C_WrapKey with RSA-OAEP-SHA256 .*use mode: hybrid/],
    ['a KWP mechanism that is not RFC 5649 (plain AES key wrap)', () => ({ mode: 'hybrid', kwp_mechanism: '0x2109' }), /is not RFC 5649/],
    ['a mechanism the token lacks', () => ({ mode: 'hybrid', kwp_mechanism: '0x210B' }), /kwp_mechanism 0x210b failed/],
    ['an unknown token label', () => ({ mode: 'hybrid', token_label: 'nope' }), /not present \(tokens: .*checks/],
    ['a module that does not exist', () => ({ mode: 'hybrid', module: '/nonexistent/libp11.so' }), /cannot load PKCS#11 module/],
  ];
  for (const [what, extra, re] of refusals) {
    it(`refuses ${what}`, async () => {
      await assert.rejects(openPkcs11(config(t.label, t.pinFile, extra()), log), (e: unknown) => isKbmError(e) && e.kind === 'config' && re.test(e.message));
    });
  }

  it('is loadable by name through the plugin loader (TAS_KBM_PLUGIN=tas_kbm_pkcs11)', async () => {
    const file = softHsm().writeFile('kbm-pkcs11.yaml', `module: ${softHsm().module}\ntoken_label: ${t.label}\npin_file: ${t.pinFile}\nmode: hybrid\n`);
    const checks = new Map<string, () => unknown>();
    const cfg = new Config({ 'kbm.prefix': 'tas_kbm', 'kbm.plugin': 'tas_kbm_pkcs11', 'kbm.config_file': file }, {}, undefined);
    const svc = await openKeyBroker(cfg, { log, readiness: { register: (n, c) => checks.set(n, c), check: async () => ({ ready: true, failed: {} }) } });
    try {
      assert.equal(svc.manifest.name, plugin.manifest.name);
      assert.equal(await checks.get('kbm')!(), undefined);
      const c = clientKey();
      const secret = agentDecrypt(await svc.getSecret('tenant-a-dek', c.wk), c.privateKey).secret;
      assert.equal(secret.length, 32);
    } finally {
      await svc.close();
    }
  });

  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['no module', { token_label: 'x', pin_file: 'p' }, /module .* is required/],
    ['two token selectors', { module: 'm', token_label: 'x', slot: 1, pin_file: 'p' }, /exactly one of token_label/],
    ['a PIN in the file', { module: 'm', token_label: 'x', pin: '1234' }, /unknown member 'pin'/],
    ['no PIN source', { module: 'm', token_label: 'x' }, /exactly one of pin_file or pin_credential/],
    ['a bad mode', { module: 'm', token_label: 'x', pin_file: 'p', mode: 'cloud' }, /mode must be in-hsm or hybrid/],
    ['sha1 in hybrid', { module: 'm', token_label: 'x', pin_file: 'p', mode: 'hybrid', oaep_hash: 'sha1' }, /in-hsm only/],
    ['a bad hash', { module: 'm', token_label: 'x', pin_file: 'p', oaep_hash: 'md5' }, /oaep_hash must be/],
    ['a bad pool size', { module: 'm', token_label: 'x', pin_file: 'p', pool_size: 0 }, /pool_size must be an integer 1..64/],
    ['a bad mechanism', { module: 'm', token_label: 'x', pin_file: 'p', kwp_mechanism: 'KWP' }, /kwp_mechanism must be/],
  ];
  for (const [what, doc, re] of bad) {
    it(`refuses a config with ${what}`, () => {
      assert.throws(() => parsePkcs11Config(JSON.stringify(doc), 'c.json'), (e: unknown) => isKbmError(e) && e.kind === 'config' && re.test(e.message));
    });
  }
});
