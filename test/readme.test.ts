/**
 * README.md: the generated blocks agree with the settings registry and the error catalogue, every
 * section that an error message points to exists, and the quick start works as written
 * (`npm start` serves on 127.0.0.1:5000 with development keys in the file it names; the README's
 * port override is used only when 5000 is taken). `npm ci` is not re-run: the suite runs after it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import '../src/config/all-settings';
import { allSettings, isSecret } from '../src/config';
import { README, render } from '../src/config/docs';
import { CATALOGUE } from '../src/errors';
import { exited, freePort, get, Lines } from './systemd/harness';

const ROOT = join(__dirname, '..');
const text = (): string => readFileSync(README, 'utf8');

function section(md: string, heading: string): string {
  const start = md.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `README has no "## ${heading}" section`);
  const next = md.indexOf('\n## ', start + 4);
  return md.slice(start, next < 0 ? undefined : next);
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

describe('README', () => {
  it('configuration reference, error table and refused names match the code (npm run docs:config)', () => {
    const md = text();
    assert.equal(render(md), md, 'README.md is out of date: run `npm run docs:config`');
  });

  it('documents every setting (with its _FILE form for secrets), every error code and every section messages cite', () => {
    const md = text();
    for (const s of allSettings()) {
      assert.ok(md.includes(`\`${s.path}\``), s.path);
      for (const e of s.env) assert.ok(md.includes(`\`${e}\``), e);
      if (isSecret(s) && s.env[0]) assert.ok(md.includes(`\`${s.env[0]}_FILE\``), `${s.env[0]}_FILE`);
      // Config errors say `see README "<section>"`: that heading must exist.
      assert.match(md, new RegExp(`^#+ ${s.section.replace(/[()]/g, '\\$&')}$`, 'm'), `section "${s.section}" of ${s.path}`);
    }
    for (const [code, e] of Object.entries(CATALOGUE)) assert.ok(md.includes(`\`${code}\``) && md.includes(e.text.replace(/\|/g, '\\|')), code);
    for (const h of ['Quick start', 'Install on a host', 'Configuration', 'Operations', 'Errors', 'Troubleshooting']) section(md, h);
  });

  it('quick start as written: npm start serves /version on 127.0.0.1:5000 with the development keys it names', async function () {
    // Budget: npm start builds the native addon and the TypeScript first (minutes on a busy CI host).
    this.timeout(15 * 60_000);
    const qs = section(text(), 'Quick start');
    for (const cmd of ['npm ci', 'npm start', 'npm test', './.tas/dev-keys.env', 'npm start -- --port 5001']) assert.ok(qs.includes(cmd), cmd);
    // As written: port 5000; the README's override only when 5000 is taken on this machine.
    let port = 5000;
    const args = ['start'];
    if (!(await portFree(5000))) {
      port = await freePort();
      args.push('--', '--port', String(port));
    }
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TAS_') && !k.startsWith('LISTEN_') && k !== 'NOTIFY_SOCKET') env[k] = v;
    const npm = spawn('npm', args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const out = new Lines(npm.stdout!);
    const err = new Lines(npm.stderr!);
    try {
      const line = await Promise.race([
        out.wait((l) => /development keys (generated into|read from) /.test(l), 'the development keys log line', 14 * 60_000),
        exited(npm).then((c) => {
          throw new Error(`npm start exited ${c}:\n${out.text()}\n${err.text()}`);
        }),
      ]);
      const file = /development keys (?:generated into|read from) (\S+) /.exec(line)![1]!;
      assert.equal(file, join(ROOT, '.tas', 'dev-keys.env'));
      const keys = Object.fromEntries(readFileSync(file, 'utf8').split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      assert.ok(keys.TAS_API_KEY && keys.TAS_API_KEY.length >= 64);
      assert.ok(!out.text().includes(keys.TAS_API_KEY) && !err.text().includes(keys.TAS_API_KEY), 'the development key was logged');
      await out.wait((l) => l.includes('tas listening'), 'tas listening', 120_000);
      const v = await get(`http://127.0.0.1:${port}/version`, { 'x-api-key': keys.TAS_API_KEY });
      assert.equal(v.status, 200, v.body);
      const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
      assert.deepEqual(JSON.parse(v.body), { version: pkg.version });
      assert.match(out.text(), /"urls":\{"main":"http:\/\/127\.0\.0\.1:\d+"/);
    } finally {
      // npm runs the daemon through sh: stop the whole process group we started.
      if (npm.pid !== undefined && npm.exitCode === null) {
        try {
          process.kill(-npm.pid, 'SIGTERM');
        } catch {
          /* already gone */
        }
      }
      await exited(npm);
    }
  });
});
