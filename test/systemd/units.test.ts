/**
 * The shipped units (systemd/): `systemd-analyze verify` prints nothing (it exits 0 on many
 * problems and only prints them, OPS.md §2.4, so any output fails), and the offline exposure
 * score of tas.service is at most 1.0, as shipped and with every documented drop-in applied
 * (drop-ins append to the unit's [Service] section, so the composed file is the unit plus them).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unitRuntime } from '../support/unit-runtime';

const REPO = join(__dirname, '..', '..');
const UNITS = join(REPO, 'systemd');
const DROPINS = join(UNITS, 'drop-ins');

function exposure(unitFile: string): number {
  const r = spawnSync('systemd-analyze', ['security', '--offline=yes', unitFile], { encoding: 'utf8' });
  assert.equal(r.error, undefined, 'systemd-analyze is missing (apt package systemd)');
  const m = /Overall exposure level for tas\.service: (\d+\.\d)/.exec(r.stdout);
  assert.ok(m, `no exposure level in:\n${r.stdout}${r.stderr}`);
  return Number(m[1]);
}

describe('systemd units as shipped', function () {
  this.timeout(60_000);
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-units-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('systemd-analyze verify prints nothing for tas.service, tas.socket and tas-management.socket', () => {
    // Documentation=man:tas(8) is checked with man(1): give it the page the package ships.
    mkdirSync(join(dir, 'man', 'man8'), { recursive: true });
    const page = execFileSync(process.execPath, ['--import', 'tsx', join(REPO, 'packaging/manpage.ts'), join(REPO, 'dist/src/main.js')], { encoding: 'utf8', cwd: REPO });
    assert.match(page, /^\.TH TAS 8/);
    writeFileSync(join(dir, 'man', 'man8', 'tas.8'), page);
    const r = spawnSync('systemd-analyze', ['verify', ...['tas.service', 'tas.socket', 'tas-management.socket'].map((u) => join(UNITS, u))], {
      encoding: 'utf8',
      env: { ...process.env, MANPATH: join(dir, 'man') },
    });
    assert.equal(r.error, undefined, 'systemd-analyze is missing (apt package systemd)');
    assert.equal(`${r.stdout}${r.stderr}`, '');
    assert.equal(r.status, 0);
  });

  it('tas.service exposure is at most 1.0 (offline), as shipped', () => {
    const e = exposure(join(UNITS, 'tas.service'));
    assert.ok(e <= 1.0, `exposure ${e}`);
  });

  it('tas.service exposure stays at most 1.0 with every documented drop-in applied', () => {
    const dropins = readdirSync(DROPINS).filter((f) => f.endsWith('.conf')).sort();
    assert.ok(dropins.length >= 5, `drop-ins: ${dropins.join(', ')}`);
    const composed = join(dir, 'composed');
    mkdirSync(composed, { recursive: true });
    const text = [readFileSync(join(UNITS, 'tas.service'), 'utf8'), ...dropins.map((f) => readFileSync(join(DROPINS, f), 'utf8'))].join('\n');
    for (const f of dropins) assert.match(readFileSync(join(DROPINS, f), 'utf8'), /^\[Service\]$/m, `${f} is a [Service] drop-in`);
    writeFileSync(join(composed, 'tas.service'), text);
    const e = exposure(join(composed, 'tas.service'));
    assert.ok(e <= 1.0, `exposure with drop-ins ${e}`);
  });

  it('the service keeps the settings the daemon and the package rely on', () => {
    const unit = readFileSync(join(UNITS, 'tas.service'), 'utf8');
    for (const line of [
      'Type=notify', 'NotifyAccess=main', 'MemoryDenyWriteExecute=no', 'LimitCORE=0', 'StateDirectory=tas', 'CacheDirectory=tas',
      'ConfigurationDirectory=tas', 'User=tas', 'LoadCredential=TAS_API_KEY:/etc/tas/api-key',
      'LoadCredential=TAS_MANAGEMENT_API_KEY:/etc/tas/management-api-key', 'ExecReload=/bin/kill -HUP $MAINPID',
    ]) assert.ok(unit.split('\n').includes(line), `tas.service lacks ${line}`);
    assert.match(readFileSync(join(UNITS, 'tas.socket'), 'utf8'), /^ListenStream=5000$/m);
    assert.match(readFileSync(join(UNITS, 'tas-management.socket'), 'utf8'), /^FileDescriptorName=management$/m);
  });

  it('the service starts node with a young generation of 2 x 4 MiB and two malloc arenas, and the cap takes effect', () => {
    const rt = unitRuntime(REPO);
    assert.deepEqual(rt.nodeFlags, ['--max-semi-space-size=4']);
    assert.equal(rt.env.MALLOC_ARENA_MAX, '2');
    // Allocation with survivors, as under in-flight requests: the peak new space V8 commits.
    const probe = `const v8 = require('v8'); const ring = new Array(20000); let peak = 0;
      for (let i = 0; i < 2e6; i++) { ring[i % 20000] = { a: i, b: 'x' + i, c: [i] };
        if (i % 50000 === 0) peak = Math.max(peak, v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size); }
      console.log(peak);`;
    const peak = (flags: string[]) => Number(execFileSync(process.execPath, [...flags, '-e', probe], { encoding: 'utf8', env: { ...process.env, ...rt.env } }).trim());
    const capped = peak(rt.nodeFlags);
    const dflt = peak([]);
    assert.ok(capped <= 8 * 2 ** 20, `with the unit's flags: ${capped} bytes of new space`);
    assert.ok(dflt > 2 * capped, `node's default grows it further (${dflt} bytes): the flag is what caps it`);
  });

  it('bin/tas starts node the way the unit does (same Node flags, same malloc arenas)', () => {
    const rt = unitRuntime(REPO);
    // A stand-in "node" first on PATH prints what bin/tas handed it.
    const fake = join(dir, 'fake-node');
    mkdirSync(fake, { recursive: true });
    writeFileSync(join(fake, 'node'), '#!/bin/sh\necho "MALLOC_ARENA_MAX=$MALLOC_ARENA_MAX"\nfor a in "$@"; do echo "arg $a"; done\n', { mode: 0o755 });
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${fake}:${process.env.PATH ?? ''}` };
    delete env.MALLOC_ARENA_MAX;
    const out = execFileSync(join(REPO, 'bin', 'tas'), ['--version'], { encoding: 'utf8', env }).split('\n');
    assert.ok(out.includes(`MALLOC_ARENA_MAX=${rt.env.MALLOC_ARENA_MAX}`), out.join('\n'));
    const args = out.filter((l) => l.startsWith('arg ')).map((l) => l.slice(4));
    const script = args.findIndex((a) => a.endsWith('main.js') || a.endsWith('main.ts'));
    assert.ok(script > 0, args.join(' '));
    assert.deepEqual(args.slice(0, rt.nodeFlags.length), rt.nodeFlags, 'the unit\'s Node flags come first');
    assert.deepEqual(args.slice(script + 1), ['--version']);
  });
});
