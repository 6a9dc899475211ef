/**
 * The config-error matrix: every startup refusal `tas serve` can produce for a configuration
 * error is also reported by `tas config check`, with the same lines, exit 2, and no stack trace.
 * Both run as real child processes from the same environment. Also: a busy port (exit 3, names
 * the port and --port) and `config check --format json` on failure.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, freePort, tasArgs } from '../systemd/harness';

const KEY = 'k'.repeat(64);
const MKEY = 'm'.repeat(64);

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function tas(args: string[], env: Record<string, string>, cwd: string): Promise<Run> {
  const c = spawn(process.execPath, tasArgs(...args), { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  c.stdout.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr.on('data', (d: Buffer) => (err += d.toString()));
  // A refusal is immediate; a serve that started anyway is a failure of the matrix, stopped here.
  const t = setTimeout(() => c.kill('SIGKILL'), 60_000);
  return new Promise((res) => c.on('close', (code) => (clearTimeout(t), res({ code, out, err }))));
}

/** The `tas: ` lines a command printed on stderr (what operators read in the journal). */
const lines = (text: string): string[] => text.split('\n').filter((l) => l.startsWith('tas: ')).sort();

describe('cli: config check refuses exactly what serve refuses (config-error matrix)', function () {
  this.timeout(10 * 60_000);
  let dir: string;
  let kbm: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-matrix-'));
    kbm = join(dir, 'kbm.yaml');
    writeFileSync(kbm, 'secrets:\n  k1: { value_utf8: "s" }\n');
    mkdirSync(join(dir, 'empty-trust'));
    writeFileSync(join(dir, 'a-file'), 'not a directory\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const base = (): Record<string, string> => ({
    TAS_API_KEY: KEY, TAS_MANAGEMENT_API_KEY: MKEY, TAS_KBM_CONFIG_FILE: kbm, TAS_STATE_DIR: join(dir, 'state'),
  });
  const cases: Array<[string, () => Record<string, string>, RegExp]> = [
    ['a value of the wrong type', () => ({ TAS_SERVER_PORT: 'eighty' }), /TAS_SERVER_PORT \(server\.port\): must be an integer/],
    ['a missing API key', () => ({ TAS_API_KEY: '' }), /TAS_API_KEY \(auth\.client_keys\) is required/],
    ['an unknown setting', () => ({ TAS_SERVR_PORT: '1' }), /unknown setting TAS_SERVR_PORT/],
    ['an unreadable TLS certificate', () => ({ TAS_TLS_CERT_FILE: join(dir, 'absent.crt'), TAS_TLS_KEY_FILE: join(dir, 'absent.key') }), /TAS_TLS_CERT_FILE \(server\.tls\.cert_file\): cannot read .*absent\.crt \(ENOENT\)/],
    ['plain HTTP on a non-loopback address', () => ({ TAS_SERVER_HOST: '0.0.0.0' }), /main listener: plain HTTP on non-loopback address 0\.0\.0\.0 is refused/],
    ['a client CA without a management listener', () => ({ TAS_MANAGEMENT_CLIENT_CA_FILE: join(dir, 'kbm.yaml') }), /TAS_MANAGEMENT_CLIENT_CA_FILE/],
    ['a key broker plugin that does not exist', () => ({ TAS_KBM_PLUGIN: 'tas_kbm_nope' }), /key broker .*'tas_kbm_nope' not found/],
    ['a key broker config that cannot be read', () => ({ TAS_KBM_CONFIG_FILE: join(dir, 'absent-kbm.yaml') }), /key broker .*absent-kbm\.yaml.*cannot read/],
    ['an empty SNP extra trust directory', () => ({ TAS_SNP_EXTRA_TRUST_DIR: join(dir, 'empty-trust') }), /TAS_SNP_EXTRA_TRUST_DIR .*holds no \.pem/],
    ['a missing policy trust path', () => ({ TAS_POLICY_TRUST: join(dir, 'absent-trust') }), /TAS_POLICY_TRUST \(policy\.trust\): /],
    ['a state directory that is a file', () => ({ TAS_STATE_DIR: join(dir, 'a-file') }), /TAS_STATE_DIR \(store\.state_dir\): .*a-file is not a directory/],
    ['a cache directory that cannot be created', () => ({ TAS_CACHE_DIR: join(dir, 'a-file', 'cache') }), /TAS_CACHE_DIR \(kds\.cache_dir\): .*cannot be created/],
    ['an audit file in a missing directory', () => ({ TAS_AUDIT_FILE: join(dir, 'no-such-dir', 'audit.log') }), /TAS_AUDIT_FILE \(audit\.file\): .*cannot be created/],
    ['a Redis CA file that cannot be read', () => ({ TAS_STORE: 'redis', TAS_REDIS_URL: 'rediss://127.0.0.1:1', TAS_REDIS_TLS_CA_FILE: join(dir, 'absent-ca.pem') }), /TAS_STORE=redis: .*absent-ca\.pem/],
  ];

  for (const [what, env, re] of cases) {
    it(`${what}: serve and config check both refuse, same lines, exit 2, no stack`, async () => {
      const e = { ...base(), ...env() };
      for (const [k, v] of Object.entries(e)) if (v === '') delete e[k];
      // The port comes from the environment (as the refusal under test may be about it).
      e.TAS_SERVER_PORT ??= String(await freePort());
      const [serve, check] = await Promise.all([tas(['serve'], e, dir), tas(['config', 'check'], e, dir)]);
      assert.equal(serve.code, 2, `serve: ${serve.out}${serve.err}`);
      assert.equal(check.code, 2, `config check: ${check.out}${check.err}`);
      const s = lines(serve.err);
      assert.ok(s.some((l) => re.test(l)), `serve said:\n${serve.err}`);
      assert.deepEqual(lines(check.err), s, 'config check reports what serve refuses, in the same words');
      for (const r of [serve, check]) {
        assert.doesNotMatch(r.err, /^\s+at /m, 'no stack trace');
        for (const l of r.err.split('\n').filter((x) => x !== '')) assert.match(l, /^tas: /, 'one line per problem');
      }
    });
  }

  it('config check --format json (and --json) prints JSON on failure too, exit 2', async () => {
    for (const flag of [['--format', 'json'], ['--json']]) {
      const r = await tas(['config', 'check', ...flag], { ...base(), TAS_SERVER_HOST: '0.0.0.0' }, dir);
      assert.equal(r.code, 2, r.err);
      const doc = JSON.parse(r.out) as { ok: boolean; problems: string[] };
      assert.equal(doc.ok, false);
      assert.match(doc.problems.join('\n'), /plain HTTP on non-loopback address/);
    }
  });

  it('a busy port: exit 3, one line naming the port and suggesting --port, no stack', async () => {
    const port = await freePort();
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', () => r()));
    try {
      const r = await tas(['serve', '--port', String(port)], base(), dir);
      assert.equal(r.code, 3, r.err);
      assert.match(r.err, new RegExp(`^tas: port ${port} on 127\\.0\\.0\\.1 is already in use.*--port`, 'm'));
      assert.doesNotMatch(r.err, /^\s+at /m);
    } finally {
      blocker.close();
    }
  });

  it('the same configuration passes both: config check exit 0 (baseline of the matrix)', async () => {
    const r = await tas(['config', 'check'], base(), dir);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^configuration OK/);
    void ROOT;
  });
});
