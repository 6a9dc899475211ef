/**
 * waitForPeerBuild: cached build trees (the trixie base, the sid chroot) are built in
 * `<dir>.tmp-<pid>` and renamed into place. When another live process is building one already —
 * .ci/run starts both builds in the background at the beginning of the run — wait for it instead
 * of downloading everything a second time. Returns true when `<dir>/.complete` appeared.
 */
import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function waitForPeerBuild(dir: string, timeoutMs: number, log: (s: string) => void = () => undefined): boolean {
  const done = () => existsSync(join(dir, '.complete'));
  const prefix = `${basename(dir)}.tmp-`;
  const peers = () =>
    readdirSync(dirname(dir))
      .filter((f) => f.startsWith(prefix))
      .map((f) => Number(f.slice(prefix.length)))
      .filter((pid) => Number.isInteger(pid) && pid !== process.pid && alive(pid));
  const end = Date.now() + timeoutMs;
  let said = false;
  while (!done() && peers().length > 0 && Date.now() < end) {
    if (!said) log(`waiting for the build of ${dir} already under way (pid ${peers().join(', ')})`);
    said = true;
    sleepSync(5000);
  }
  return done();
}
