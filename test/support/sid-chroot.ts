/**
 * A Debian sid (unstable) minbase chroot holding sid's own `nodejs` (a distro node linked against
 * the system libssl3, not Node's bundled OpenSSL), made with debootstrap ONCE per day and cached
 * under /var/tmp, for running the addon's test suites under a second Node major (test/node24).
 * Kept apart from the trixie base of test/support/debootstrap.ts: different suite, different cache.
 *
 * runInChroot() bind-mounts the repository at the SAME path inside and runs a command with the
 * chroot's node. All mounts are made inside a private mount namespace (`unshare --mount`), so they
 * vanish with that process even if the test is killed; a cached tree therefore never holds a bind
 * mount of the repository, and deleting it can never reach the working tree.
 * Run directly to warm the cache: `node --import tsx test/support/sid-chroot.ts`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { waitForPeerBuild } from './build-wait';

export const SUITE = 'sid';
export const MIRROR = 'http://deb.debian.org/debian';
/** Installed with apt-get inside after debootstrap (apt resolves sid's libssl3t64, libnode, ...). */
export const PACKAGES = ['nodejs'];
export const REPO = resolve(__dirname, '..', '..');

const CHROOT_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  DEBIAN_FRONTEND: 'noninteractive',
};

/** sidPath is the cache folder of today's sid tree for this package list. */
export function sidPath(day = new Date().toISOString().slice(0, 10)): string {
  const key = createHash('sha256').update(`${SUITE} ${MIRROR} ${PACKAGES.join(',')} ${day}`).digest('hex').slice(0, 12);
  return `/var/tmp/tas-sid-node-${key}`;
}

/** mountsUnder lists the mount points at or below `dir` in this process's mount namespace. */
export function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp && (mp === dir || mp.startsWith(`${dir}/`))) out.push(mp.replace(/\\040/g, ' '));
  }
  return out;
}

/** unmountAll detaches every mount below `dir` (deepest first); returns what it found. */
export function unmountAll(dir: string): string[] {
  const found = mountsUnder(dir);
  for (const mp of [...found].sort((a, b) => b.length - a.length)) {
    spawnSync('umount', ['--lazy', mp], { stdio: 'ignore' });
  }
  return found;
}

/** removeTree deletes a tree that must hold no mounts, never crossing into another file system. */
function removeTree(dir: string): void {
  if (!existsSync(dir)) return;
  unmountAll(dir);
  if (mountsUnder(dir).length) throw new Error(`refusing to delete ${dir}: mounts remain below it`);
  execFileSync('rm', ['-rf', '--one-file-system', dir]);
}

/**
 * ensureSid returns today's complete sid tree, building it first when missing: debootstrap into a
 * temporary folder, apt-get install nodejs inside, mark complete, rename into place (atomic, so a
 * crashed or concurrent build never leaves a half tree at the cache path). Throws (the test fails)
 * when debootstrap or the mirror is unavailable.
 */
export function ensureSid(log: (s: string) => void = () => undefined): string {
  const dir = sidPath();
  if (existsSync(join(dir, '.complete'))) return dir;
  if (waitForPeerBuild(dir, 40 * 60_000, log)) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  removeTree(tmp);
  mkdirSync(tmp, { recursive: true });
  try {
    log(`debootstrap --variant=minbase ${SUITE} ${tmp} ${MIRROR}`);
    run('debootstrap', ['--variant=minbase', SUITE, tmp, MIRROR]);
    // Never start services from maintainer scripts inside the chroot.
    writeFileSync(join(tmp, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    copyFileSync('/etc/resolv.conf', join(tmp, 'etc/resolv.conf'));
    log(`apt-get install ${PACKAGES.join(' ')} (in a private mount namespace with /proc)`);
    const script = [
      'set -e',
      `mount -t proc proc ${tmp}/proc`,
      // The mirror reachable here may serve a frozen sid whose Release has passed Valid-Until;
      // signatures are still verified, only the freshness window is waived for this test tree.
      `chroot ${tmp} apt-get -q -o Acquire::Check-Valid-Until=false update`,
      `chroot ${tmp} apt-get -y -q --no-install-recommends install ${PACKAGES.join(' ')}`,
      `chroot ${tmp} apt-get clean`,
    ].join('\n');
    run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script]);
    writeFileSync(join(tmp, '.complete'), `${new Date().toISOString()}\n`);
  } catch (e) {
    removeTree(tmp);
    throw e;
  }
  if (existsSync(join(dir, '.complete'))) {
    removeTree(tmp); // another run finished first: keep theirs
    return dir;
  }
  removeTree(dir);
  try {
    renameSync(tmp, dir);
  } catch (e) {
    // Lost a race with a concurrent build that renamed first: theirs is as good as ours.
    removeTree(tmp);
    if (!existsSync(join(dir, '.complete'))) throw e;
  }
  pruneOld(dir);
  return dir;
}

/** pruneOld drops complete sid trees of earlier days (355 MB each); never a build in progress. */
function pruneOld(keep: string): void {
  const parent = dirname(keep);
  for (const e of readdirSync(parent)) {
    const p = join(parent, e);
    if (p !== keep && /^tas-sid-node-[0-9a-f]{12}$/.test(e) && existsSync(join(p, '.complete'))) removeTree(p);
  }
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, ...CHROOT_ENV } });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.slice(0, 3).join(' ')} ... exited ${r.status ?? r.signal}:\n${(r.stderr + r.stdout).slice(-4000)}`);
  }
}

export interface ChrootRun { status: number | null; stdout: string; stderr: string }

/**
 * runInChroot runs `argv` with cwd `cwd` (a path inside the repository) in the sid tree `root`,
 * with the repository bind-mounted at the same path plus /proc, /dev and a private /tmp — all in a
 * private mount namespace that ends with the command.
 */
export function runInChroot(root: string, argv: string[], opts: { cwd?: string; timeoutMs?: number } = {}): ChrootRun {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = [
    'set -e',
    // The private /tmp first: a repository that lives under /tmp (a CI clone, say) is then
    // bind-mounted on top of it instead of being hidden by it.
    `mount -t tmpfs -o mode=1777 tmpfs ${q(root + '/tmp')}`,
    `mkdir -p ${q(root + REPO)}`,
    `mount --bind ${q(REPO)} ${q(root + REPO)}`,
    `mount -t proc proc ${q(root + '/proc')}`,
    `mount --bind /dev ${q(root + '/dev')}`,
    `exec chroot ${q(root)} sh -c 'cd "$0" && exec "$@"' ${q(opts.cwd ?? REPO)} ${argv.map(q).join(' ')}`,
  ].join('\n');
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: CHROOT_ENV,
    timeout: opts.timeoutMs ?? 600_000,
    killSignal: 'SIGKILL',
  });
  if (r.error) throw new Error(`chroot run: ${r.error.message}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

if (require.main === module) {
  const t0 = Date.now();
  const dir = ensureSid((s) => process.stdout.write(`${s}\n`));
  process.stdout.write(`${dir} (${Math.round((Date.now() - t0) / 1000)} s)\n`);
}
