/**
 * `tas serve` as a child process, the way systemd runs it: SIGHUP reloads keys from their _FILE
 * (old key refused, new key accepted; a broken file is refused and the running keys kept), and no
 * key material, nonce, evidence or wrapping key reaches any log or audit line, in any encoding.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { exited, freePort, get, Lines, ROOT, tasArgs } from '../systemd/harness';

const K1 = `grep-client-one-${randomBytes(36).toString('base64url')}`;
const K2 = `grep-client-two-${randomBytes(36).toString('base64url')}`;
const MKEY = `grep-management-${randomBytes(36).toString('base64url')}`;
const WRONG = `grep-wrong-key--${randomBytes(36).toString('base64url')}`;
const SECRET = `grep-secret-${randomBytes(24).toString('hex')}`;

/** forms of a piece of material as it could leak: as is, hex, base64, base64url (of its bytes). */
function forms(m: string | Buffer): string[] {
  const b = typeof m === 'string' ? Buffer.from(m, 'utf8') : m;
  const out = [b.toString('hex'), b.toString('base64').replace(/=+$/, ''), b.toString('base64url')];
  if (typeof m === 'string') out.push(m);
  // A leak of part of the material counts too: look for its first 32 characters in each form.
  return out.map((s) => s.slice(0, 32));
}

describe('cli: tas serve (child process)', function () {
  this.timeout(180_000);
  let dir: string;
  let child: ChildProcess;
  let out: Lines;
  let err: Lines;
  let base: string;
  let keyFile: string;
  const material: Array<{ name: string; value: string | Buffer }> = [
    { name: 'client key 1', value: K1 },
    { name: 'client key 2', value: K2 },
    { name: 'management key', value: MKEY },
    { name: 'wrong key', value: WRONG },
    { name: 'kbm secret', value: SECRET },
  ];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tas-serve-'));
    keyFile = join(dir, 'api-key');
    writeFileSync(keyFile, `${K1}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'mgmt-key'), `${MKEY}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'kbm.yaml'), `secrets:\n  k1: { value_utf8: "${SECRET}" }\n`);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, tasArgs('serve', '--port', String(port)), {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        TAS_API_KEY_FILE: keyFile,
        TAS_MANAGEMENT_API_KEY_FILE: join(dir, 'mgmt-key'),
        TAS_KBM_CONFIG_FILE: join(dir, 'kbm.yaml'),
        TAS_STATE_DIR: join(dir, 'state'),
        TAS_AUDIT_FILE: join(dir, 'audit.log'),
        TAS_OVERRIDE__logging__level: 'DEBUG',
        TAS_OVERRIDE__logging__file: join(dir, 'tas.log'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    out = new Lines(child.stdout!);
    err = new Lines(child.stderr!);
    for (let i = 0; i < 1200; i++) {
      if (existsSync(join(dir, 'tas.log')) && readFileSync(join(dir, 'tas.log'), 'utf8').includes('tas listening')) break;
      if (child.exitCode !== null) throw new Error(`tas serve exited ${child.exitCode}: ${err.text()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await get(`${base}/version`, { 'x-api-key': K1 })).status, 200);
  });

  after(async () => {
    child.kill('SIGTERM');
    await exited(child);
    rmSync(dir, { recursive: true, force: true });
  });

  const logText = (): string => (existsSync(join(dir, 'tas.log')) ? readFileSync(join(dir, 'tas.log'), 'utf8') : '');
  async function waitLog(re: RegExp, from: number): Promise<void> {
    for (let i = 0; i < 1200; i++) {
      if (re.test(logText().slice(from))) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`log never matched ${re}:\n${logText().slice(from)}`);
  }

  it('serves attestation traffic with the keys (and the audit stream records decisions)', async () => {
    assert.equal((await get(`${base}/version`, { 'x-api-key': WRONG })).status, 401);
    assert.equal((await get(`${base}/version`)).status, 401);
    assert.equal((await get(`${base}/management/policy/v0/list`, { 'x-management-api-key': MKEY })).status, 200);
    const n = await get(`${base}/kb/v0/get_nonce`, { 'x-api-key': K1 });
    assert.equal(n.status, 200, n.body);
    const nonce = (JSON.parse(n.body) as { nonce: string }).nonce;
    material.push({ name: 'nonce', value: nonce });
    const evidence = randomBytes(1184);
    const wrapping = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' });
    material.push({ name: 'evidence', value: evidence }, { name: 'wrapping key', value: wrapping });
    const r = await request(`${base}/kb/v0/get_secret`, {
      method: 'POST',
      headers: { 'x-api-key': K1, 'content-type': 'application/json' },
      body: JSON.stringify({ 'tee-type': 'amd-sev-snp', nonce, 'tee-evidence': evidence.toString('base64'), 'wrapping-key': wrapping.toString('base64'), 'key-id': 'k1', 'report-data-binding': true }),
    });
    const body = await r.body.text();
    assert.ok(r.statusCode >= 400 && r.statusCode < 500, `random evidence must be refused with a 4xx, got ${r.statusCode} ${body}`);
    const audit = readFileSync(join(dir, 'audit.log'), 'utf8');
    assert.match(audit, /"event":"startup"/);
    assert.ok(audit.split('\n').filter(Boolean).length >= 3, audit);
  });

  it('SIGHUP: reloads the key file (old key refused, new accepted); a broken file keeps the running keys', async () => {
    let from = logText().length;
    writeFileSync(keyFile, `${K2}\n`);
    child.kill('SIGHUP');
    await waitLog(/configuration reloaded/, from);
    assert.equal((await get(`${base}/version`, { 'x-api-key': K2 })).status, 200);
    assert.equal((await get(`${base}/version`, { 'x-api-key': K1 })).status, 401);
    from = logText().length;
    writeFileSync(keyFile, 'short\n');
    child.kill('SIGHUP');
    await waitLog(/reload refused/, from);
    assert.match(logText().slice(from), /TAS_API_KEY/);
    assert.equal((await get(`${base}/version`, { 'x-api-key': K2 })).status, 200);
    assert.equal((await get(`${base}/version`, { 'x-api-key': K1 })).status, 401);
    writeFileSync(keyFile, `${K2}\n`);
  });

  it('never writes key material, nonces, evidence or wrapping keys to any log or audit line (raw, hex, base64)', async () => {
    // Debug level: the most talkative configuration. Stop the daemon first so every line is flushed.
    child.kill('SIGTERM');
    assert.equal(await exited(child), 0, err.text());
    const streams: Record<string, string> = {
      'stdout': out.text(),
      'stderr': err.text(),
      'logging.file': logText(),
      'audit.file': readFileSync(join(dir, 'audit.log'), 'utf8'),
    };
    assert.ok(streams['logging.file']!.split('\n').length > 10, 'the daemon logged the traffic');
    assert.ok(material.length >= 8);
    for (const [where, text] of Object.entries(streams)) {
      for (const m of material) for (const f of forms(m.value)) assert.ok(!text.includes(f), `${m.name} (${f}) found in ${where}`);
    }
  });
});

describe('cli: tas serve --dev (child process)', function () {
  this.timeout(120_000);
  it('without keys: generates development keys (0600) into the file it names, never logs them, serves with them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tas-dev-'));
    const port = await freePort();
    const child = spawn(process.execPath, tasArgs('serve', '--dev', '--port', String(port)), {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = new Lines(child.stdout!);
    const err = new Lines(child.stderr!);
    try {
      const line = await Promise.race([
        out.wait((l) => l.includes('tas listening'), 'tas listening', 100_000),
        exited(child).then((c) => {
          throw new Error(`exited ${c}: ${out.text()}\n${err.text()}`);
        }),
      ]);
      assert.match(line, new RegExp(`"main":"http://127\\.0\\.0\\.1:${port}"`));
      const file = join(dir, '.tas', 'dev-keys.env');
      assert.match(out.text(), new RegExp(`development keys generated into ${file.replace(/[.]/g, '\\.')} `));
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, '.tas', 'dev-kbm-mock.yaml')).mode & 0o777, 0o600);
      const keys = Object.fromEntries(readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('TAS_')).map((l) => l.split('=') as [string, string]));
      assert.ok(keys.TAS_API_KEY!.length >= 64 && keys.TAS_MANAGEMENT_API_KEY!.length >= 64);
      assert.equal((await get(`http://127.0.0.1:${port}/version`, { 'x-api-key': keys.TAS_API_KEY! })).status, 200);
      assert.equal((await get(`http://127.0.0.1:${port}/management/policy/v0/list`, { 'x-management-api-key': keys.TAS_MANAGEMENT_API_KEY! })).status, 200);
      for (const k of Object.values(keys)) for (const f of forms(k)) assert.ok(!out.text().includes(f) && !err.text().includes(f), 'a development key was logged');
      child.kill('SIGTERM');
      assert.equal(await exited(child), 0);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
