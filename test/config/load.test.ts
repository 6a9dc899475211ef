/**
 * The loader against the real registry (PROTOCOL.md §5): sources and precedence, coercion,
 * verbatim secrets, _FILE forms, $CREDENTIALS_DIRECTORY, TAS_OVERRIDE__, unknown and unsupported
 * names, wrong types.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../src/config/all-settings';
import { ConfigError, loadConfig, type LoadOptions } from '../../src/config';

const K1 = 'k'.repeat(64);
const K2 = 'm'.repeat(64);
const K3 = 'n'.repeat(64);
const base = (extra: Record<string, string> = {}): Record<string, string> => ({ TAS_API_KEY: K1, TAS_MANAGEMENT_API_KEY: K2, ...extra });

function problems(opts: LoadOptions): string[] {
  try {
    loadConfig(opts);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return [...e.problems];
  }
  assert.fail('configuration was accepted');
}

describe('config: loader', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-config-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('takes built-in defaults when nothing is set', () => {
    const c = loadConfig({ env: base() });
    assert.equal(c.get('server.port'), 5000);
    assert.equal(c.get('server.host'), '127.0.0.1');
    assert.equal(c.get('logging.level'), 'info');
    assert.equal(c.get('logging.file'), undefined);
    assert.equal(c.sources['server.port'], 'default');
  });

  it('ranks file < environment < command line < TAS_OVERRIDE__', () => {
    const file = join(dir, 'prec.yaml');
    writeFileSync(file, 'server:\n  port: 6001\n  host: 127.0.0.2\nlogging:\n  level: warn\n');
    let c = loadConfig({ env: base(), configFile: file });
    assert.equal(c.get('server.port'), 6001);
    assert.equal(c.sources['server.port'], 'file');
    c = loadConfig({ env: base({ TAS_SERVER_PORT: '6002' }), configFile: file });
    assert.equal(c.get('server.port'), 6002);
    assert.equal(c.sources['server.port'], 'env');
    assert.equal(c.get('server.host'), '127.0.0.2');
    c = loadConfig({ env: base({ TAS_SERVER_PORT: '6002' }), configFile: file, cli: { 'server.port': 6003 } });
    assert.equal(c.get('server.port'), 6003);
    assert.equal(c.sources['server.port'], 'cli');
    c = loadConfig({ env: base({ TAS_SERVER_PORT: '6002', TAS_OVERRIDE__server__port: '6004' }), configFile: file, cli: { 'server.port': 6003 } });
    assert.equal(c.get('server.port'), 6004);
    assert.equal(c.sources['server.port'], 'override');
    assert.equal(c.get('logging.level'), 'warn');
  });

  it('reads the file named by TAS_CONFIG_FILE, JSON as well as YAML; --config wins', () => {
    const j = join(dir, 'c.json');
    writeFileSync(j, JSON.stringify({ server: { port: 7001 } }));
    const y = join(dir, 'c.yaml');
    writeFileSync(y, 'server: {port: 7002}\n');
    assert.equal(loadConfig({ env: base({ TAS_CONFIG_FILE: j }) }).get('server.port'), 7001);
    assert.equal(loadConfig({ env: base({ TAS_CONFIG_FILE: j }), configFile: y }).get('server.port'), 7002);
  });

  it('coerces environment values: JSON, then true/false, then integer, else string', () => {
    const c = loadConfig({ env: base({ TAS_ENFORCE_SIGNED_POLICIES: 'FALSE', TAS_SERVER_PORT: '6100', TAS_TRUSTED_PROXIES: '10.0.0.0/8, 192.168.0.0/16' }) });
    assert.equal(c.get('policy.enforce_signed'), false);
    assert.equal(c.get('server.port'), 6100);
    assert.deepEqual(c.get('server.trusted_proxies'), ['10.0.0.0/8', '192.168.0.0/16']);
    assert.deepEqual(loadConfig({ env: base({ TAS_TRUSTED_PROXIES: '["10.1.0.0/16"]' }) }).get('server.trusted_proxies'), ['10.1.0.0/16']);
  });

  it('takes secrets and strings verbatim (no JSON, number or boolean coercion, no trimming)', () => {
    const numeric = '1'.repeat(64);
    const c = loadConfig({ env: base({ TAS_API_KEY: numeric, TAS_STORE: 'redis', TAS_REDIS_PASSWORD: ' true ', TAS_SERVER_HOST: '0123' }) });
    assert.deepEqual(c.get('auth.client_keys'), [numeric]);
    assert.equal(c.get('redis.password'), ' true ');
    assert.equal(c.get('server.host'), '0123');
  });

  it('splits key lists on commas (rotation) and reads them from _FILE forms, one per line', () => {
    const c = loadConfig({ env: base({ TAS_API_KEY: `${K1},${K3}` }) });
    assert.deepEqual(c.get('auth.client_keys'), [K1, K3]);
    const f = join(dir, 'keys');
    writeFileSync(f, `${K3}\n${K1}\n`);
    const env = base();
    delete env.TAS_API_KEY;
    const d = loadConfig({ env: { ...env, TAS_API_KEY_FILE: f } });
    assert.deepEqual(d.get('auth.client_keys'), [K3, K1]);
    assert.equal(d.sources['auth.client_keys'], 'env-file');
  });

  it('reads a secret _FILE verbatim except one trailing newline', () => {
    const f = join(dir, 'redis-pw');
    writeFileSync(f, ' p@ss word,1 \n');
    assert.equal(loadConfig({ env: base({ TAS_STORE: 'redis', TAS_REDIS_PASSWORD_FILE: f }) }).get('redis.password'), ' p@ss word,1 ');
  });

  it('refuses _FILE for a setting that is not a secret, a missing _FILE, and a secret set twice', () => {
    const p1 = problems({ env: base({ TAS_SERVER_HOST_FILE: '/etc/hostname' }) });
    assert.match(p1.join('\n'), /TAS_SERVER_HOST_FILE: only secrets have a _FILE form/);
    const p2 = problems({ env: base({ TAS_STORE: 'redis', TAS_REDIS_PASSWORD_FILE: join(dir, 'does-not-exist') }) });
    assert.match(p2.join('\n'), /TAS_REDIS_PASSWORD_FILE: cannot read/);
    const f = join(dir, 'k2');
    writeFileSync(f, K1);
    const p3 = problems({ env: base({ TAS_API_KEY_FILE: f }) });
    assert.match(p3.join('\n'), /auth\.client_keys is set by more than one environment name/);
  });

  it('reads secrets from $CREDENTIALS_DIRECTORY/<name>, below the environment', () => {
    const cred = mkdtempSync(join(dir, 'cred-'));
    writeFileSync(join(cred, 'TAS_MANAGEMENT_API_KEY'), `${'c'.repeat(70)}\n`);
    writeFileSync(join(cred, 'TAS_REDIS_PASSWORD'), 'from-credential');
    const env = base({ CREDENTIALS_DIRECTORY: cred, TAS_STORE: 'redis', TAS_REDIS_PASSWORD: 'from-env' });
    delete env.TAS_MANAGEMENT_API_KEY;
    const c = loadConfig({ env });
    assert.deepEqual(c.get('auth.management_keys'), ['c'.repeat(70)]);
    assert.equal(c.sources['auth.management_keys'], 'credential');
    assert.equal(c.get('redis.password'), 'from-env');
  });

  it('TAS_OVERRIDE__ takes a lower-cased nested path and Python level names', () => {
    const want: Record<string, string> = { DEBUG: 'debug', INFO: 'info', WARNING: 'warn', ERROR: 'error', CRITICAL: 'fatal', warn: 'warn', Trace: 'trace' };
    for (const [given, level] of Object.entries(want)) {
      assert.equal(loadConfig({ env: base({ TAS_OVERRIDE__LOGGING__Level: given }) }).get('logging.level'), level, given);
    }
    const p = problems({ env: base({ TAS_OVERRIDE__logging__level: 'NOTSET' }) });
    assert.match(p.join('\n'), /logging\.level: must be one of/);
  });

  it('stops on an unknown setting, naming it and suggesting the closest name', () => {
    assert.match(problems({ env: base({ TAS_SERVR_PORT: '1' }) }).join('\n'), /unknown setting TAS_SERVR_PORT \(did you mean TAS_SERVER_PORT\?\)/);
    assert.match(problems({ env: base({ TAS_OVERRIDE__server__prt: '1' }) }).join('\n'), /unknown setting 'server\.prt'/);
    const f = join(dir, 'unknown.yaml');
    writeFileSync(f, 'server:\n  hots: x\n');
    assert.match(problems({ env: base(), configFile: f }).join('\n'), /unknown setting 'server\.hots'/);
  });

  it('stops on a wrong type, naming the setting and its README section', () => {
    const p = problems({ env: base({ TAS_SERVER_PORT: 'eighty' }) }).join('\n');
    assert.match(p, /TAS_SERVER_PORT \(server\.port\): must be an integer, got string "eighty" \(see README "/);
    const f = join(dir, 'wrong.yaml');
    writeFileSync(f, 'policy:\n  enforce_signed: "yes"\n');
    assert.match(problems({ env: base(), configFile: f }).join('\n'), /policy\.enforce_signed\): must be true or false/);
  });

  it('stops on names of the original TAS that tas does not support, with a migration hint', () => {
    const p = problems({ env: base({ TAS_REDIS_PERSISTENCE: 'true', TAS_TRUST_X_FORWARDED_FOR: 'true', FLASK_DEBUG: '1', TAS_OVERRIDE__limits__max_nonce_per_minute: '120' }) }).join('\n');
    assert.match(p, /TAS_REDIS_PERSISTENCE is a setting of the original TAS that tas does not support: .*redis\.conf/);
    assert.match(p, /TAS_TRUST_X_FORWARDED_FOR .*TAS_TRUSTED_PROXIES/);
    assert.match(p, /FLASK_DEBUG .*not a Flask application/);
    assert.match(p, /TAS_OVERRIDE__limits__max_nonce_per_minute .*TAS_CLIENT_RATE_LIMIT/);
    const f = join(dir, 'original.yaml');
    writeFileSync(f, 'SERVER_PORT: 5000\nTAS_API_KEY: abc\nTAS:\n  logging:\n    level: INFO\n');
    const q = problems({ env: base(), configFile: f }).join('\n');
    assert.match(q, /'SERVER_PORT' is a setting of the original TAS: use server\.port/);
    assert.match(q, /'TAS_API_KEY' is a setting of the original TAS: .*auth: client_keys/);
    assert.match(q, /'TAS\.logging\.level' is a setting of the original TAS: .*top level/);
  });

  it('treats an empty environment value and a YAML null as unset', () => {
    const f = join(dir, 'null.yaml');
    writeFileSync(f, 'logging:\n  file:\nserver:\n  port:\n');
    const c = loadConfig({ env: base({ TAS_AUDIT_FILE: '' }), configFile: f });
    assert.equal(c.get('audit.file'), undefined);
    assert.equal(c.get('logging.file'), undefined);
    assert.equal(c.get('server.port'), 5000);
  });

  it('reports every problem at once and lists missing required settings', () => {
    try {
      loadConfig({ env: { TAS_SERVER_PORT: 'x' } });
      assert.fail('accepted');
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.deepEqual([...e.missing].sort(), ['auth.client_keys', 'auth.management_keys']);
      assert.ok(e.problems.length >= 3);
      assert.match(e.message, /TAS_API_KEY \(auth\.client_keys\) is required/);
    }
  });

  it('freezes the result, masks secrets in effective() and refuses unregistered paths', () => {
    const c = loadConfig({ env: base({ TAS_STORE: 'redis', TAS_REDIS_PASSWORD: 'hunter2' }) });
    assert.throws(() => c.get('no.such'), /unregistered setting/);
    assert.ok(Object.isFrozen(c.values));
    assert.throws(() => ((c.get('auth.client_keys') as string[]) as unknown as { push(x: string): void }).push('x'));
    const eff = Object.fromEntries(c.effective().map((r) => [r.path, r]));
    assert.deepEqual(eff['auth.client_keys']!.value, ['***']);
    assert.equal(eff['redis.password']!.value, '***');
    assert.equal(eff['server.port']!.value, 5000);
    assert.ok(!JSON.stringify(c.effective()).includes(K1));
    assert.ok(!JSON.stringify(c.effective()).includes('hunter2'));
  });
});
