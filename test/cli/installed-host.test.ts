/**
 * The CLI on an installed host (PROTOCOL.md §5): every command reads the installed configuration
 * (/etc/tas/tas.yaml; a temporary copy injected here) when no --config / TAS_CONFIG_FILE is given;
 * commands that do not serve need no API keys; `config check` reads the keys from the files the
 * unit's LoadCredential= names; run as root, commands hand what they write to the service user
 * with the service's modes. A source checkout does not read /etc/tas/tas.yaml.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { handOverToService, serviceAccount, toolConfig } from '../../src/cli-kit';
import { getInstalledConfigFile, setInstalledConfigFile } from '../../src/config/load';
import { runTas } from './in-process';

const K1 = 'c'.repeat(64);
const K2 = 'd'.repeat(64);

describe('cli: an installed host', () => {
  let dir: string;
  let etc: string;
  let saved: string | undefined;
  const savedEnv = { ...process.env };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-installed-'));
    etc = join(dir, 'etc', 'tas');
    mkdirSync(etc, { recursive: true });
    // The shipped yaml's layout: state and cache directories named, no keys.
    writeFileSync(join(etc, 'tas.yaml'), `store:\n  state_dir: ${join(dir, 'var/lib/tas')}\nkds:\n  cache_dir: ${join(dir, 'var/cache/tas')}\n`);
    saved = setInstalledConfigFile(join(etc, 'tas.yaml'));
    for (const k of Object.keys(process.env)) if (k.startsWith('TAS_') || k === 'CREDENTIALS_DIRECTORY') delete process.env[k];
  });
  afterEach(() => {
    setInstalledConfigFile(saved);
    process.env = { ...savedEnv };
    rmSync(dir, { recursive: true, force: true });
  });

  it('a source checkout does not read /etc/tas/tas.yaml by default', () => {
    assert.equal(saved, undefined, 'this repository is a checkout: no installed default');
  });

  it('kds status and policy export read the installed yaml with no environment and no API keys', async () => {
    const s = await runTas('kds', 'status', '--format', 'json');
    assert.equal(s.code, 0, s.err);
    const doc = JSON.parse(s.out) as { store: { persistence: string } };
    assert.equal(doc.store.persistence, join(dir, 'var/lib/tas'));
    const e = await runTas('policy', 'export');
    assert.equal(e.code, 0, e.err);
    assert.deepEqual(JSON.parse(e.out), []);
    assert.ok(existsSync(join(dir, 'var/lib/tas')), 'the state directory of the yaml was used');
    assert.ok(!existsSync('.tas/state/cache/never'), 'not the development default');
  });

  it('--config and TAS_CONFIG_FILE still win over the installed yaml', async () => {
    const other = join(dir, 'other.yaml');
    writeFileSync(other, `store:\n  state_dir: ${join(dir, 'other-state')}\n`);
    const s = await runTas('kds', 'status', '--json', '--config', other);
    assert.equal(s.code, 0, s.err);
    assert.equal((JSON.parse(s.out) as { store: { persistence: string } }).store.persistence, join(dir, 'other-state'));
  });

  it('config check reads the keys as the service gets them: the LoadCredential= files next to the yaml', async () => {
    const missing = await runTas('config', 'check');
    assert.equal(missing.code, 2);
    assert.match(missing.err, /^tas: TAS_API_KEY \(auth\.client_keys\) is required/m);
    writeFileSync(join(etc, 'api-key'), `${K1}\n`, { mode: 0o600 });
    writeFileSync(join(etc, 'management-api-key'), `${K2}\n`, { mode: 0o600 });
    const ok = await runTas('config', 'check', '--format', 'json');
    assert.equal(ok.code, 0, ok.err);
    const doc = JSON.parse(ok.out) as { file: string; settings: Array<{ path: string; source: string; value: unknown }>; warnings: string[] };
    assert.equal(doc.file, join(etc, 'tas.yaml'));
    const by = Object.fromEntries(doc.settings.map((s) => [s.path, s]));
    assert.equal(by['auth.client_keys']!.source, 'credential');
    assert.deepEqual(by['auth.client_keys']!.value, ['***']);
    assert.ok(!ok.out.includes(K1));
    assert.match(doc.warnings.join('\n'), /no key broker configured/);
    // $CREDENTIALS_DIRECTORY (inside the service) comes first.
    const creds = join(dir, 'creds');
    mkdirSync(creds);
    writeFileSync(join(creds, 'TAS_API_KEY'), 'short');
    process.env.CREDENTIALS_DIRECTORY = creds;
    const short = await runTas('config', 'check');
    assert.equal(short.code, 2);
    assert.match(short.err, /TAS_API_KEY.*shorter than 64/);
  });

  it('run as root, what a command writes is handed to the service user with the service modes', async () => {
    if (process.geteuid?.() !== 0) assert.fail('this test needs root (CI runs as root)');
    const cfg = toolConfig(undefined);
    const nobody = { uid: 65534, gid: 65534 };
    const done = handOverToService(cfg, { account: nobody, euid: 0 });
    mkdirSync(join(dir, 'var/cache/tas/blobs'), { recursive: true });
    writeFileSync(join(dir, 'var/cache/tas/blobs/x'), 'data');
    done();
    for (const p of ['var/cache/tas', 'var/cache/tas/blobs', 'var/cache/tas/blobs/x']) {
      const st = statSync(join(dir, p));
      assert.equal(st.uid, nobody.uid, p);
      assert.equal(st.gid, nobody.gid, p);
      assert.equal(st.mode & 0o777, st.isDirectory() ? 0o700 : 0o600, p);
    }
    // Not root, or no service user: nothing changes hands.
    const none = handOverToService(cfg, { account: undefined, euid: 0 });
    writeFileSync(join(dir, 'var/cache/tas/blobs/y'), 'data');
    none();
    assert.equal(statSync(join(dir, 'var/cache/tas/blobs/y')).uid, 0);
    assert.equal(readdirSync(join(dir, 'var/cache/tas/blobs')).length, 2);
  });

  it('serviceAccount reads the service user from a passwd file', () => {
    const pw = join(dir, 'passwd');
    writeFileSync(pw, 'root:x:0:0:root:/root:/bin/sh\ntas:x:991:988:tas attestation service:/var/lib/tas:/usr/sbin/nologin\n');
    assert.deepEqual(serviceAccount(pw), { uid: 991, gid: 988 });
    writeFileSync(pw, 'root:x:0:0:root:/root:/bin/sh\n');
    assert.equal(serviceAccount(pw), undefined);
    assert.equal(getInstalledConfigFile(), join(etc, 'tas.yaml'));
  });
});
