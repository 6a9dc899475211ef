/**
 * A Debian 13 (trixie) root file system for the booted-system test, made with debootstrap ONCE per
 * day and package list and cached under /var/tmp (debootstrap takes minutes; a copy takes seconds).
 * Every test run works on a fresh copy, so install/upgrade/purge always start from a clean system.
 *
 * The base holds what the tas package depends on or recommends for the test (nodejs from trixie
 * itself, softhsm2, openssl, xmlsec1) plus systemd to boot. The container has no network: apt
 * resolves tas's Depends at install from what is already here, so every Depends must be listed.
 * Run directly to warm the cache: `node --import tsx test/support/debootstrap.ts`.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitForPeerBuild } from './build-wait';

export const SUITE = 'trixie';
export const MIRROR = 'http://deb.debian.org/debian';
/** Packages added to minbase. nodejs is trixie's own (20.19.x), the one tas Depends on. */
export const BASE_PACKAGES = [
  'systemd', 'systemd-sysv', 'dbus', 'libnss-systemd', 'nodejs', 'softhsm2', 'openssl', 'adduser', 'procps', 'ca-certificates', 'xmlsec1',
];

/** basePath is the cache folder of today's base for this package list. */
export function basePath(day = new Date().toISOString().slice(0, 10)): string {
  const key = createHash('sha256').update(`${SUITE} ${MIRROR} ${BASE_PACKAGES.join(',')} ${day}`).digest('hex').slice(0, 12);
  return `/var/tmp/tas-${SUITE}-${key}`;
}

/** ensureBase returns the cached base, running debootstrap first when it is missing. */
export function ensureBase(log: (s: string) => void = () => undefined): string {
  const dir = basePath();
  if (existsSync(join(dir, '.complete'))) return dir;
  if (waitForPeerBuild(dir, 40 * 60_000, log)) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  log(`debootstrap ${SUITE} into ${tmp}`);
  try {
    execFileSync('debootstrap', ['--variant=minbase', `--include=${BASE_PACKAGES.join(',')}`, SUITE, tmp, MIRROR], {
      stdio: ['ignore', 'ignore', 'pipe'],
      maxBuffer: 64 << 20,
    });
    // A container console has no ttys to serve, and logind is not needed: masking them keeps the
    // boot short and `systemctl is-system-running` at "running" (OPS.md §2.5).
    for (const u of ['console-getty.service', 'getty@tty1.service', 'systemd-logind.service', 'apt-daily.timer', 'apt-daily-upgrade.timer']) {
      execFileSync('ln', ['-sf', '/dev/null', join(tmp, 'etc/systemd/system', u)]);
    }
    writeFileSync(join(tmp, 'etc/hostname'), 'tas-booted\n');
    writeFileSync(join(tmp, '.complete'), `${new Date().toISOString()}\n`);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
}

/** copyBase copies the cached base into `dest` (a fresh system for one test run). */
export function copyBase(dest: string): void {
  const base = ensureBase();
  rmSync(dest, { recursive: true, force: true });
  execFileSync('cp', ['-a', '--reflink=auto', base, dest]);
}

if (require.main === module) {
  const t0 = Date.now();
  process.stdout.write(`${ensureBase((s) => process.stdout.write(`${s}\n`))} (${Math.round((Date.now() - t0) / 1000)} s)\n`);
}
