/**
 * `tas` commands run in-process through the real yargs parser: help everywhere, exit codes,
 * `config check` (masking, sources, test roots), `keys generate` (strength, modes, overwrite).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMANDS } from '../../src/cli';
import { devKeys } from '../../src/config/keys';
import { runTas } from './in-process';
import { FakeAmd } from '../support/fake-amd';

const ROOT = join(__dirname, '..', '..');
const K1 = 'c'.repeat(64);
const K2 = 'd'.repeat(64);

/** withEnv runs fn with extra variables in process.env (the CLI reads the real environment). */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved: Record<string, string | undefined> = {};
  for (const k of Object.keys(vars)) {
    saved[k] = process.env[k];
    process.env[k] = vars[k];
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe('cli: tas', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-cli-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('prints --help for tas and for every command and sub-command, exit 0', async () => {
    const top = await runTas('--help');
    assert.equal(top.code, 0);
    assert.match(top.out, /Exit codes: 0 ok, 1 check failed, 2 usage or configuration error, 3 startup failure/);
    const names = COMMANDS.map((c) => String(c.command).split(' ')[0]!);
    for (const n of ['serve', 'config', 'keys', 'audit']) assert.ok(names.includes(n), n);
    for (const args of [['serve'], ['config'], ['config', 'check'], ['keys'], ['keys', 'generate'], ['audit'], ['audit', 'verify'], ...names.map((n) => [n])]) {
      const r = await runTas(...args, '--help');
      assert.equal(r.code, 0, `${args.join(' ')} --help: ${r.err}`);
      assert.match(r.out, /--help/, args.join(' '));
    }
  });

  it('exits 2 on usage errors: unknown command, unknown option, missing sub-command', async () => {
    for (const args of [['frobnicate'], ['config', 'check', '--no-such-option'], ['keys'], []]) {
      const r = await runTas(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.out}${r.err}`);
      assert.match(r.err, /tas: /);
    }
  });

  it('config check: masks secrets, names the source of each value, exit 0', async () => {
    const file = join(dir, 'tas.yaml');
    writeFileSync(file, 'server:\n  port: 6123\n');
    const r = await withEnv({ TAS_API_KEY: K1, TAS_MANAGEMENT_API_KEY: K2, TAS_OVERRIDE__logging__level: 'ERROR' }, () => runTas('config', 'check', '--config', file, '--json'));
    assert.equal(r.code, 0, r.err);
    assert.ok(!r.out.includes(K1) && !r.out.includes(K2), 'a key was printed');
    const doc = JSON.parse(r.out) as { settings: Array<{ path: string; value: unknown; source: string }>; test_roots: string[] };
    const by = Object.fromEntries(doc.settings.map((s) => [s.path, s]));
    assert.deepEqual(by['auth.client_keys'], { ...by['auth.client_keys'], value: ['***'], source: 'env' });
    assert.equal(by['server.port']!.source, 'file');
    assert.equal(by['server.port']!.value, 6123);
    assert.equal(by['logging.level']!.value, 'error');
    assert.equal(by['logging.level']!.source, 'override');
    assert.equal(by['server.host']!.source, 'default');
    assert.deepEqual(doc.test_roots, []);
    const table = await withEnv({ TAS_API_KEY: K1, TAS_MANAGEMENT_API_KEY: K2 }, () => runTas('config', 'check'));
    assert.equal(table.code, 0);
    assert.match(table.out, /^configuration OK/);
    assert.match(table.out, /auth\.client_keys\s+TAS_API_KEY\s+\["\*\*\*"\]\s+env/);
  });

  it('config check: masks the userinfo of every URL-valued setting (TAS_REDIS_URL, TAS_KDS_PROXY, TAS_KDS_BASE_URL)', async () => {
    const env = {
      TAS_API_KEY: K1, TAS_MANAGEMENT_API_KEY: K2, TAS_STORE: 'redis',
      TAS_REDIS_URL: 'redis://tas:r3dis-pw@redis.example:6380/2', TAS_KDS_PROXY: 'http://proxyuser:pr0xy-pw@proxy.example:3128',
      TAS_KDS_BASE_URL: 'https://kds-token@mirror.example/',
    };
    for (const args of [['config', 'check', '--json'], ['config', 'check']]) {
      const r = await withEnv(env, () => runTas(...args));
      assert.equal(r.code, 0, r.err);
      for (const leak of ['r3dis-pw', 'pr0xy-pw', 'kds-token', 'proxyuser']) assert.ok(!r.out.includes(leak), `${leak} printed by ${args.join(' ')}:\n${r.out}`);
      assert.match(r.out, /redis:\/\/\*\*\*@redis\.example:6380\/2/);
      assert.match(r.out, /http:\/\/\*\*\*@proxy\.example:3128/);
    }
  });

  it('config check: flags trusted test roots', async () => {
    // A directory serve would accept: one (fake) ARK. An empty one is refused (test/cli/config-matrix).
    await (await FakeAmd.create({ product: 'Milan' })).writeTrustDir(join(dir, 'arks'));
    const r = await withEnv({ TAS_API_KEY: K1, TAS_MANAGEMENT_API_KEY: K2, TAS_SNP_EXTRA_TRUST_DIR: join(dir, 'arks') }, () => runTas('config', 'check'));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /snp\.extra_trust_dir.*TEST ROOTS TRUSTED/);
    assert.match(r.out, /WARNING: snp\.extra_trust_dir set/);
    // ARKs only: say which intermediates come from KDS cert_chain, and that offline they are missing.
    const all = `${r.out}\n${r.err}`;
    assert.match(all, /no ASK of Milan \(VCEK chains\), ASVK of Milan \(VLEK chains\): taken from .*cert_chain at first use/);
    const off = await withEnv({ TAS_API_KEY: K1, TAS_MANAGEMENT_API_KEY: K2, TAS_SNP_EXTRA_TRUST_DIR: join(dir, 'arks'), TAS_KDS_OFFLINE: 'true' }, () => runTas('config', 'check'));
    assert.match(`${off.out}\n${off.err}`, /TAS_KDS_OFFLINE=true keeps tas from taking them .*cannot verify until the files are added/);
  });

  it('config check: exit 2 naming every problem', async () => {
    const r = await withEnv({ TAS_API_KEY: 'short', TAS_MANAGEMENT_API_KEY: K2, TAS_SERVER_PORT: 'x' }, () => runTas('config', 'check'));
    assert.equal(r.code, 2);
    assert.match(r.err, /TAS_SERVER_PORT \(server\.port\): must be an integer/);
    assert.match(r.err, /TAS_API_KEY/);
    assert.ok(!r.err.includes(K2));
  });

  it('keys generate: two strong keys in 0600 files, refuses to overwrite, --force replaces, --rotate adds', async () => {
    const r = await runTas('keys', 'generate', '--dir', dir);
    assert.equal(r.code, 0, r.err);
    const files = [join(dir, 'api-key'), join(dir, 'management-api-key')];
    const keys = files.map((f) => readFileSync(f, 'utf8').trim());
    for (const [i, f] of files.entries()) {
      assert.equal(statSync(f).mode & 0o777, 0o600, f);
      assert.match(keys[i]!, /^[A-Za-z0-9_-]{64,}$/);
      assert.ok(!r.out.includes(keys[i]!), 'a key was printed');
    }
    assert.notEqual(keys[0], keys[1]);
    assert.match(r.out, /TAS_API_KEY_FILE=/);
    const again = await runTas('keys', 'generate', '--dir', dir);
    assert.equal(again.code, 2);
    assert.match(again.err, /refusing to overwrite/);
    assert.equal(readFileSync(files[0]!, 'utf8').trim(), keys[0]);
    assert.equal((await runTas('keys', 'generate', '--dir', dir, '--force')).code, 0);
    const forced = readFileSync(files[0]!, 'utf8').trim();
    assert.notEqual(forced, keys[0]);
    assert.equal(statSync(files[0]!).mode & 0o777, 0o600);
    assert.equal((await runTas('keys', 'generate', '--dir', dir, '--rotate')).code, 0);
    const rotated = readFileSync(files[0]!, 'utf8').trim().split('\n');
    assert.equal(rotated.length, 2);
    assert.equal(rotated[1], forced);
    // The rotated file is what TAS_API_KEY_FILE takes: both keys load.
    const check = await withEnv({ TAS_API_KEY_FILE: files[0]!, TAS_MANAGEMENT_API_KEY_FILE: files[1]! }, () => runTas('config', 'check', '--json'));
    assert.equal(check.code, 0, check.err);
    const eff = JSON.parse(check.out) as { settings: Array<{ path: string; value: unknown; source: string }> };
    assert.deepEqual(eff.settings.find((s) => s.path === 'auth.client_keys')!.value, ['***', '***']);
  });

  it('keys generate --force/--rotate: an existing 0644 file ends 0600; a planted symlink at any temp path is never followed', async () => {
    const files = [join(dir, 'api-key'), join(dir, 'management-api-key')];
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'untouched\n', { mode: 0o644 });
    for (const f of files) writeFileSync(f, `${'e'.repeat(64)}\n`, { mode: 0o644 });
    chmodSync(files[0]!, 0o644);
    // The old code wrote `<file>.tmp-<pid>` with O_TRUNC and no O_EXCL: plant symlinks there.
    for (const f of files) symlinkSync(victim, `${f}.tmp-${process.pid}`);
    const saved = process.umask(0o022);
    try {
      assert.equal((await runTas('keys', 'generate', '--dir', dir, '--rotate')).code, 0);
      for (const f of files) assert.equal(statSync(f).mode & 0o777, 0o600, `${f} after --rotate`);
      for (const f of files) chmodSync(f, 0o644);
      assert.equal((await runTas('keys', 'generate', '--dir', dir, '--force')).code, 0);
      for (const f of files) assert.equal(statSync(f).mode & 0o777, 0o600, `${f} after --force`);
    } finally {
      process.umask(saved);
    }
    assert.equal(readFileSync(victim, 'utf8'), 'untouched\n', 'a symlink was followed');
    assert.equal(statSync(victim).mode & 0o777, 0o644);
    // No temporary file is left behind.
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp')).sort(), files.map((f) => `${f.slice(dir.length + 1)}.tmp-${process.pid}`).sort());
  });

  it('serve --dev: existing development key files with a loose mode are set back to 0600', () => {
    const f = join(dir, 'dev-keys.env');
    writeFileSync(f, `TAS_API_KEY=${K1}\nTAS_MANAGEMENT_API_KEY=${K2}\n`, { mode: 0o644 });
    chmodSync(f, 0o644);
    const k = devKeys(f);
    assert.equal(k.created, false);
    assert.equal(k.client, K1);
    assert.equal(statSync(f).mode & 0o777, 0o600);
  });

  it('bin/tas runs the CLI from a checkout and keeps exit codes', () => {
    const help = spawnSync(join(ROOT, 'bin/tas'), ['--version'], { encoding: 'utf8', cwd: tmpdir() });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout.trim(), /^\d+\.\d+\.\d+/);
    const bad = spawnSync(join(ROOT, 'bin/tas'), ['audit', 'verify', join(dir, 'missing')], { encoding: 'utf8', cwd: tmpdir() });
    assert.equal(bad.status, 2, bad.stderr);
  });
});
