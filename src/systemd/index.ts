/**
 * systemd integration (OPS.md §2.1): socket activation (LISTEN_FDS) and readiness / status /
 * watchdog / stopping notifications (NOTIFY_SOCKET). Everything is a no-op when systemd did not
 * ask for it, so `tas serve` behaves the same from a shell.
 */
import { maskUrlUserinfo } from '../config/mask';
import { sendNotify } from './notify';

export { sockaddrUn } from './notify';

/** SD_LISTEN_FDS_START: the first inherited descriptor. */
const LISTEN_FDS_START = 3;

/** ListenFd is one inherited socket and its FileDescriptorName= (default: the socket unit name). */
export interface ListenFd {
  name: string;
  fd: number;
}

/**
 * listenFds returns the sockets systemd passed (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES) and
 * removes the three variables, so that child processes do not take them for theirs. When
 * LISTEN_PID is not this process, the variables were meant for someone else: nothing is returned.
 */
export function listenFds(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): ListenFd[] {
  const count = env.LISTEN_FDS;
  const forPid = env.LISTEN_PID;
  const names = env.LISTEN_FDNAMES;
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (count === undefined || forPid === undefined) return [];
  if (!/^\d+$/.test(forPid) || Number(forPid) !== pid) return [];
  if (!/^\d+$/.test(count)) throw new Error(`LISTEN_FDS=${JSON.stringify(count)} is not a number`);
  const n = Number(count);
  if (n > 64) throw new Error(`LISTEN_FDS=${n}: too many sockets`);
  const nameList = names === undefined || names === '' ? [] : names.split(':');
  return Array.from({ length: n }, (_, i) => ({ fd: LISTEN_FDS_START + i, name: nameList[i] ?? 'unknown' }));
}

/** notify sends raw `KEY=VALUE` lines; false when NOTIFY_SOCKET is unset or the send failed. */
export function notify(state: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return false;
  return sendNotify(socket, state).ok;
}

/** STATUS= values are one line; systemd shows them in `systemctl status`. */
function oneLine(text: string): string {
  // Degraded-dependency texts may quote a URL with credentials (Redis, KDS proxy): mask its userinfo.
  return maskUrlUserinfo(text).replace(/[\r\n]+/g, ' ').slice(0, 400);
}

/** ready: READY=1 (+ STATUS and MAINPID). Send only once listeners serve and the self-test passed. */
export function ready(statusText?: string): boolean {
  const lines = ['READY=1'];
  if (statusText) lines.push(`STATUS=${oneLine(statusText)}`);
  lines.push(`MAINPID=${process.pid}`);
  return notify(lines.join('\n'));
}

/** status: STATUS=<text> (degraded dependencies, reloads). */
export function status(text: string): boolean {
  return notify(`STATUS=${oneLine(text)}`);
}

/** stopping: STOPPING=1 at the start of a graceful shutdown. */
export function stopping(): boolean {
  return notify('STOPPING=1');
}

/** reloading: RELOADING=1 while SIGHUP is handled (READY=1 follows). */
export function reloading(): boolean {
  return notify(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
}

/** watchdogInterval is WATCHDOG_USEC in ms when the watchdog applies to this process, else undefined. */
export function watchdogInterval(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): number | undefined {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || !/^\d+$/.test(usec) || Number(usec) === 0) return undefined;
  const wpid = env.WATCHDOG_PID;
  if (wpid !== undefined && wpid !== '' && Number(wpid) !== pid) return undefined;
  return Number(usec) / 1000;
}

/**
 * startWatchdog pings WATCHDOG=1 at half the interval systemd asked for. `healthy` lets the
 * daemon withhold pings when its event loop is wedged elsewhere (the timer would not fire anyway)
 * or when it knows it is broken. Returns a stop function; no-op without WATCHDOG_USEC/NOTIFY_SOCKET.
 */
export function startWatchdog(healthy: () => boolean = () => true): () => void {
  const ms = watchdogInterval();
  if (ms === undefined || !process.env.NOTIFY_SOCKET) return () => undefined;
  const timer = setInterval(() => {
    if (healthy()) notify('WATCHDOG=1');
  }, Math.max(1, Math.floor(ms / 2)));
  timer.unref();
  return () => clearInterval(timer);
}
