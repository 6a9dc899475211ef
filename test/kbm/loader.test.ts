/**
 * src/kbm/index.ts: discovery by prefix in plugins/ and TAS_EXTRA_PLUGIN_DIR, manifest checks,
 * the readiness check and the authentication-failure latch of KbmService.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Config } from '../../src/config';
import type { Readiness, ReadinessCheck } from '../../src/daemon/context';
import { isTasError } from '../../src/errors';
import '../../src/kbm/settings';
import { discoverPlugins, isKbmError, KbmError, KbmService, openKeyBroker, SHIPPED_PLUGIN_DIR, type KeyBroker } from '../../src/kbm';
import { agentDecrypt } from './agent-decrypt';
import { clientKey } from './contract';

const log = pino({ level: 'silent' });

/** A readiness registry like the daemon's: named checks, run on demand. */
class TestReadiness implements Readiness {
  readonly checks = new Map<string, ReadinessCheck>();
  register(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check);
  }
  async check(): Promise<{ ready: boolean; failed: Record<string, string> }> {
    const failed: Record<string, string> = {};
    for (const [n, c] of this.checks) {
      const r = await c();
      if (r !== undefined) failed[n] = r;
    }
    return { ready: Object.keys(failed).length === 0, failed };
  }
}

function cfg(values: Record<string, unknown>): Config {
  return new Config({ 'kbm.prefix': 'tas_kbm', 'kbm.plugin': 'tas_kbm_mock', ...values }, {}, undefined);
}

/** A plugin written the way docs/plugins.md shows (plain CommonJS, no imports from tas). */
function pluginSource(name: string, apiVersion: number, declared = name): string {
  return `'use strict';
class KbmError extends Error { constructor(kind, message) { super(message); this.name = 'KbmError'; this.kind = kind; } }
let logins = 0;
const manifest = { name: ${JSON.stringify(declared)}, apiVersion: ${apiVersion} };
module.exports.plugin = {
  manifest,
  async open(configFile, deps) {
    const pin = require('fs').readFileSync(configFile, 'utf8').trim();
    logins++;
    if (pin !== '1234') throw new KbmError('auth_failed', 'PIN refused by the test backend');
    return {
      manifest,
      async getSecret(keyId) { throw new KbmError('not_found', 'nothing here: ' + keyId); },
      async health() { return { ok: true, detail: 'logins=' + logins }; },
      async close() {},
    };
  },
};
`;
}

describe('kbm: discovery and loading', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tas-kbm-loader-'));
  const extra = join(dir, 'extra');
  mkdirSync(extra);
  const mockCfg = join(dir, 'mock.yaml');
  writeFileSync(mockCfg, 'secrets:\n  k1: { value_utf8: "s1" }\n');
  writeFileSync(join(extra, 'tas_kbm_custom.js'), pluginSource('tas_kbm_custom', 1));
  mkdirSync(join(extra, 'tas_kbm_dir'));
  writeFileSync(join(extra, 'tas_kbm_dir', 'index.js'), pluginSource('tas_kbm_dir', 1));
  writeFileSync(join(extra, 'tas_kbm_v2.js'), pluginSource('tas_kbm_v2', 2));
  writeFileSync(join(extra, 'tas_kbm_liar.js'), pluginSource('tas_kbm_liar', 1, 'tas_kbm_mock'));
  writeFileSync(join(extra, 'tas_kbm_broken.js'), 'throw new Error("boom at load")');
  writeFileSync(join(extra, 'tas_kbm_empty.js'), 'module.exports = { hello: 1 };');
  writeFileSync(join(extra, 'other_plugin.js'), pluginSource('other_plugin', 1));
  // Explicit modes: the loader refuses world-writable plugin code, whatever the CI umask is.
  for (const d of [dir, extra, join(extra, 'tas_kbm_dir')]) chmodSync(d, 0o755);
  for (const f of readdirSync(extra)) if (f.endsWith('.js')) chmodSync(join(extra, f), 0o644);
  chmodSync(join(extra, 'tas_kbm_dir', 'index.js'), 0o644);
  const pinOk = join(dir, 'pin-ok');
  writeFileSync(pinOk, '1234\n');
  const pinBad = join(dir, 'pin-bad');
  writeFileSync(pinBad, '9999\n');
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('finds the shipped plugins by prefix in plugins/ (resolved from the package)', () => {
    assert.equal(SHIPPED_PLUGIN_DIR, join(__dirname, '..', '..', 'plugins'));
    const names = discoverPlugins('tas_kbm', [SHIPPED_PLUGIN_DIR]).map((c) => c.name);
    assert.ok(names.includes('tas_kbm_mock'), names.join(','));
    assert.ok(names.includes('tas_kbm_pkcs11'), names.join(','));
  });

  it('finds extra plugins (directories and .js files) by prefix only', () => {
    const names = discoverPlugins('tas_kbm', [extra]).map((c) => c.name);
    assert.deepEqual(names.sort(), ['tas_kbm_broken', 'tas_kbm_custom', 'tas_kbm_dir', 'tas_kbm_empty', 'tas_kbm_liar', 'tas_kbm_v2']);
    assert.deepEqual(discoverPlugins('other', [extra]).map((c) => c.name), ['other_plugin']);
  });

  it('opens the default mock plugin, registers readiness "kbm" and a close hook', async () => {
    const readiness = new TestReadiness();
    const closers: Array<() => unknown> = [];
    const svc = await openKeyBroker(cfg({ 'kbm.config_file': mockCfg }), { log, readiness, lifecycle: { onReload: () => undefined, onClose: (f) => closers.push(f) } });
    assert.equal(svc.manifest.name, 'tas_kbm_mock');
    assert.deepEqual(await readiness.check(), { ready: true, failed: {} });
    const c = clientKey();
    assert.equal(agentDecrypt(await svc.getSecret('k1', c.wk), c.privateKey).secret.toString(), 's1');
    await assert.rejects(svc.getSecret('k2', c.wk), (e: unknown) => isTasError(e) && e.code === 'KBM_SECRET_NOT_FOUND' && e.status === 404);
    assert.equal(closers.length, 1);
    await closers[0]!();
    assert.equal((await readiness.check()).ready, false);
  });

  it('a failed release logs one line with the broker named once (no duplicate "kbm" key)', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(...chunk.toString().split('\n').filter(Boolean)); cb(); } });
    const svc = await openKeyBroker(cfg({ 'kbm.config_file': mockCfg }), { log: pino({ level: 'info' }, sink), readiness: new TestReadiness() });
    try {
      await assert.rejects(svc.getSecret('k2', clientKey().wk));
    } finally {
      await svc.close();
    }
    const failed = lines.filter((l) => l.includes('key release failed'));
    assert.equal(failed.length, 1, lines.join('\n'));
    assert.equal(failed[0]!.split('"kbm":').length - 1, 1, failed[0]);
  });

  it('loads an extra-dir plugin (file or directory) selected by TAS_KBM_PLUGIN', async () => {
    for (const name of ['tas_kbm_custom', 'tas_kbm_dir']) {
      const svc = await openKeyBroker(cfg({ 'kbm.plugin': name, 'kbm.extra_dir': extra, 'kbm.config_file': pinOk }), { log, readiness: new TestReadiness() });
      assert.equal(svc.manifest.name, name);
      await assert.rejects(svc.getSecret('x', clientKey().wk), (e: unknown) => isTasError(e) && e.status === 404);
      await svc.close();
    }
  });

  const refusals: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an unknown plugin', { 'kbm.plugin': 'tas_kbm_nope' }, /'tas_kbm_nope' not found .*found: tas_kbm_/],
    ['a plugin outside the prefix', { 'kbm.plugin': 'other_plugin', 'kbm.extra_dir': extra }, /does not start with TAS_PLUGIN_PREFIX/],
    ['another API version', { 'kbm.plugin': 'tas_kbm_v2', 'kbm.extra_dir': extra }, /implements KBM API version 2, tas needs 1/],
    ['a manifest naming another plugin', { 'kbm.plugin': 'tas_kbm_liar', 'kbm.extra_dir': extra }, /declares the name 'tas_kbm_mock'/],
    ['a module that throws at load', { 'kbm.plugin': 'tas_kbm_broken', 'kbm.extra_dir': extra }, /failed to load: boom at load/],
    ['a module without a plugin export', { 'kbm.plugin': 'tas_kbm_empty', 'kbm.extra_dir': extra }, /exports no KbmPlugin/],
    ['a missing extra directory', { 'kbm.extra_dir': join(dir, 'absent') }, /cannot be read: ENOENT/],
    ['the mock without its config file', {}, /needs TAS_KBM_CONFIG_FILE/],
  ];
  for (const [what, values, re] of refusals) {
    it(`stops startup for ${what}`, async () => {
      await assert.rejects(openKeyBroker(cfg(values), { log, readiness: new TestReadiness() }), (e: unknown) => isKbmError(e) && e.kind === 'config' && re.test(e.message));
    });
  }

  it('refuses plugin code that every user could have replaced (world-writable file or directory)', async () => {
    const open = join(dir, 'open');
    mkdirSync(open, { mode: 0o755 });
    chmodSync(open, 0o755);
    const file = join(open, 'tas_kbm_custom.js');
    writeFileSync(file, pluginSource('tas_kbm_custom', 1));
    chmodSync(file, 0o666);
    const c = cfg({ 'kbm.plugin': 'tas_kbm_custom', 'kbm.extra_dir': open, 'kbm.config_file': pinOk });
    await assert.rejects(openKeyBroker(c, { log, readiness: new TestReadiness() }), (e: unknown) => isKbmError(e) && /tas_kbm_custom\.js is writable by every user/.test(e.message));
    chmodSync(file, 0o644);
    chmodSync(open, 0o777);
    await assert.rejects(openKeyBroker(c, { log, readiness: new TestReadiness() }), (e: unknown) => isKbmError(e) && /open is writable by every user/.test(e.message));
    chmodSync(open, 0o755);
    const svc = await openKeyBroker(c, { log, readiness: new TestReadiness() });
    await svc.close();
  });

  it('refuses plugin code that its group could have replaced, or that another user owns (files and directories)', async () => {
    const base = join(dir, 'perm');
    mkdirSync(join(base, 'tas_kbm_pkg'), { recursive: true });
    chmodSync(base, 0o755);
    chmodSync(join(base, 'tas_kbm_pkg'), 0o755);
    const entry = join(base, 'tas_kbm_pkg', 'index.js');
    const helper = join(base, 'tas_kbm_pkg', 'helper.js');
    writeFileSync(entry, `require('./helper.js');\n${pluginSource('tas_kbm_pkg', 1)}`);
    writeFileSync(helper, 'module.exports = {};\n');
    for (const f of [entry, helper]) chmodSync(f, 0o644);
    const c = cfg({ 'kbm.plugin': 'tas_kbm_pkg', 'kbm.extra_dir': base, 'kbm.config_file': pinOk });
    const refused = (re: RegExp) => assert.rejects(openKeyBroker(c, { log, readiness: new TestReadiness() }), (e: unknown) => isKbmError(e) && e.kind === 'config' && re.test(e.message));
    const cases: Array<[string, () => void, () => void, RegExp]> = [
      ['group-writable entry', () => chmodSync(entry, 0o664), () => chmodSync(entry, 0o644), /index\.js is writable by its group/],
      ['group-writable module beside the entry', () => chmodSync(helper, 0o664), () => chmodSync(helper, 0o644), /helper\.js is writable by its group/],
      ['group-writable plugin directory', () => chmodSync(join(base, 'tas_kbm_pkg'), 0o775), () => chmodSync(join(base, 'tas_kbm_pkg'), 0o755), /tas_kbm_pkg is writable by its group/],
      ['group-writable extra directory', () => chmodSync(base, 0o775), () => chmodSync(base, 0o755), /perm is writable by its group/],
      ['foreign-owned entry', () => chownSync(entry, 65534, 65534), () => chownSync(entry, process.geteuid!(), process.getegid!()), /index\.js is owned by uid 65534/],
      ['foreign-owned module', () => chownSync(helper, 65534, 65534), () => chownSync(helper, process.geteuid!(), process.getegid!()), /helper\.js is owned by uid 65534/],
      ['foreign-owned extra directory', () => chownSync(base, 65534, 65534), () => chownSync(base, process.geteuid!(), process.getegid!()), /perm is owned by uid 65534/],
    ];
    for (const [label, spoil, mend, re] of cases) {
      spoil();
      try {
        await refused(re);
      } catch (e) {
        throw new Error(`${label}: ${(e as Error).message}`, { cause: e });
      } finally {
        mend();
      }
    }
    const svc = await openKeyBroker(c, { log, readiness: new TestReadiness() });
    await svc.close();
  });

  it('refuses a plugin name that exists in plugins/ and in the extra directory', async () => {
    const shadow = join(dir, 'shadow');
    mkdirSync(shadow);
    chmodSync(shadow, 0o755);
    writeFileSync(join(shadow, 'tas_kbm_mock.js'), pluginSource('tas_kbm_mock', 1));
    await assert.rejects(openKeyBroker(cfg({ 'kbm.extra_dir': shadow, 'kbm.config_file': mockCfg }), { log, readiness: new TestReadiness() }),
      (e: unknown) => isKbmError(e) && /exists more than once/.test(e.message));
  });

  it('an authentication failure at open leaves the daemon running but not ready, with the reason', async () => {
    const readiness = new TestReadiness();
    const svc = await openKeyBroker(cfg({ 'kbm.plugin': 'tas_kbm_custom', 'kbm.extra_dir': extra, 'kbm.config_file': pinBad }), { log, readiness });
    const r = await readiness.check();
    assert.equal(r.ready, false);
    assert.match(r.failed.kbm!, /authentication failed \(not retried.*PIN refused/);
    await assert.rejects(svc.getSecret('x', clientKey().wk), (e: unknown) => isTasError(e) && e.code === 'KBM_AUTH_FAILED' && e.status === 503);
  });
});

describe('kbm: KbmService authentication-failure latch', () => {
  it('after auth_failed, never calls the backend again and stays not-ready', async () => {
    let calls = 0;
    let healthCalls = 0;
    const broker: KeyBroker = {
      manifest: { name: 'tas_kbm_test', apiVersion: 1 },
      getSecret: async () => {
        calls++;
        throw new KbmError('auth_failed', 'CKR_PIN_INCORRECT');
      },
      health: async () => { healthCalls++; return { ok: true }; },
      close: async () => undefined,
    };
    const svc = new KbmService(broker, log);
    const wk = clientKey().wk;
    for (let i = 0; i < 3; i++) await assert.rejects(svc.getSecret('k', wk), (e: unknown) => isTasError(e) && e.code === 'KBM_AUTH_FAILED');
    assert.equal(calls, 1);
    assert.match((await svc.readiness())!, /CKR_PIN_INCORRECT/);
    assert.equal(healthCalls, 0);
    assert.equal(svc.authFailure, 'CKR_PIN_INCORRECT');
  });

  it('turns a backend that never answers into 503 (release) and not-ready (health)', async () => {
    const hung: KeyBroker = {
      manifest: { name: 'tas_kbm_test', apiVersion: 1 },
      getSecret: () => new Promise(() => undefined),
      health: () => new Promise(() => undefined),
      close: async () => undefined,
    };
    const svc = new KbmService(hung, log, { timeoutMs: 20 });
    await assert.rejects(svc.getSecret('k', clientKey().wk), (e: unknown) => isTasError(e) && e.code === 'KBM_UNAVAILABLE' && /no answer/.test(e.detail));
    assert.match((await svc.readiness())!, /health: no answer from the key backend/);
  });

  it('maps a bad wrapping key to 400 before the backend is asked', async () => {
    let calls = 0;
    const svc = new KbmService({ manifest: { name: 'tas_kbm_test', apiVersion: 1 }, getSecret: async () => { calls++; throw new Error('x'); }, health: async () => ({ ok: true }), close: async () => undefined }, log);
    const forged = { ...clientKey().wk, bits: 1 };
    await assert.rejects(svc.getSecret('k', forged), (e: unknown) => isTasError(e) && e.code === 'KBM_WRAPPING_KEY_INVALID' && e.status === 400);
    assert.equal(calls, 0);
    // An unexpected exception inside a broker is a 503 (the nonce stays valid), never a 500 or a 404.
    await assert.rejects(svc.getSecret('k', clientKey().wk), (e: unknown) => isTasError(e) && e.code === 'KBM_UNAVAILABLE' && e.status === 503);
  });
});
