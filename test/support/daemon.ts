/**
 * Test harness for a real daemon: in-process (`startTestDaemon`, through the exported
 * startDaemon()) or as a child process (`spawnDaemon`, the same code path `tas serve` takes, with
 * signal handling). Both listen on free loopback ports and are closed by the caller.
 *
 * Run as a script (`node --import tsx test/support/daemon.ts --child`) it is the child process:
 * it starts the daemon from its environment and reports `{ready: urls}` or `{error}` over IPC.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import '../../src/config/all-settings';
import { loadConfig, type Config } from '../../src/config';
import type { AuditEvent, AuditLog } from '../../src/audit/types';
import { startDaemon, type Daemon, type DaemonOptions } from '../../src/daemon';

/** Keys of the test configuration (64+ characters, as the settings require). */
export const CLIENT_KEY = 'test-client-key-0123456789abcdef0123456789abcdef0123456789abcdef';
export const CLIENT_KEY_2 = 'test-client-key-2-fedcba9876543210fedcba9876543210fedcba98765432';
export const MGMT_KEY = 'test-management-key-0123456789abcdef0123456789abcdef0123456789ab';

/** baseEnv is a minimal valid environment: loopback, port 0 (free port), test keys. */
export function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { TAS_API_KEY: CLIENT_KEY, TAS_MANAGEMENT_API_KEY: MGMT_KEY, TAS_SERVER_HOST: '127.0.0.1', TAS_SERVER_PORT: '0', ...extra };
}

/** testConfig loads a configuration from baseEnv plus overrides (only TAS_* names; nothing from process.env). */
export function testConfig(extra: Record<string, string> = {}): Config {
  return loadConfig({ env: baseEnv(extra) });
}

/** MemoryAudit keeps records for assertions. */
export class MemoryAudit implements AuditLog {
  readonly records: AuditEvent[] = [];
  record(ev: AuditEvent): void {
    this.records.push(ev);
  }
  async close(): Promise<void> {}
}

/** CapturedLog is a pino logger whose lines are kept (as parsed JSON) for assertions. */
export function capturedLog(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

export interface TestDaemon extends Daemon {
  readonly audit: MemoryAudit;
  readonly logLines: Array<Record<string, unknown>>;
}

/** startTestDaemon starts an in-process daemon with a captured log and audit. */
export async function startTestDaemon(env: Record<string, string> = {}, opts: Omit<DaemonOptions, 'config' | 'log' | 'audit'> = {}): Promise<TestDaemon> {
  const audit = new MemoryAudit();
  const { log, lines } = capturedLog();
  const d = await startDaemon({ ...opts, config: testConfig(env), log, audit, load: { env: baseEnv(env) } });
  return Object.assign(d, { audit, logLines: lines });
}

export interface ChildDaemon {
  readonly child: ChildProcess;
  readonly urls: { main: string; management?: string };
  /** output collected from the child's stdout and stderr. */
  output(): string;
  /** stop sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number | null>;
}

/**
 * spawnDaemon starts the daemon in a child process with exactly `env` (plus PATH) and waits until
 * it listens. `fds` are listening sockets of this process handed to the child (as socket
 * activation would), at child fds 4, 5, ...; the caller must stop accepting on them itself.
 */
export async function spawnDaemon(env: Record<string, string>, opts: { fds?: Array<{ name: string; fd: number }>; timeoutMs?: number } = {}): Promise<ChildDaemon> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const fds = opts.fds ?? [];
  const child = fork(__filename, ['--child', ...(fds.length ? ['--fds', fds.map((f, i) => `${f.name}:${4 + i}`).join(',')] : [])], {
    env: { PATH: process.env.PATH ?? '', ...env },
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc', ...fds.map((f) => f.fd)],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const urls = await new Promise<{ main: string; management?: string }>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`daemon did not start within ${timeoutMs} ms:\n${out}`)); }, timeoutMs);
    child.once('message', (m: { ready?: { main: string; management?: string }; error?: string }) => {
      clearTimeout(timer);
      if (m.ready) resolve(m.ready);
      else reject(new Error(`daemon refused to start: ${m.error}`));
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`daemon exited with ${code}:\n${out}`)); });
  });
  return {
    child, urls, output: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** runChild is the child-process side of spawnDaemon. */
async function runChild(): Promise<void> {
  try {
    const i = process.argv.indexOf('--fds');
    const listenFds = i > 0 ? process.argv[i + 1]!.split(',').map((x) => ({ name: x.split(':')[0]!, fd: Number(x.split(':')[1]) })) : undefined;
    const d = await startDaemon({ handleSignals: true, ...(listenFds ? { listenFds } : {}) });
    process.send?.({ ready: d.urls });
    process.once('SIGTERM', () => void d.close().then(() => process.disconnect?.()));
  } catch (e) {
    process.send?.({ error: (e as Error).message }, () => process.exit(2));
  }
}

if (require.main === module && process.argv.includes('--child')) void runChild();
