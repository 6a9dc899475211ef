/**
 * Harness for `tas serve` child processes: a line collector over a child's output, a NOTIFY_SOCKET
 * listener (python3, real unix datagrams), free ports and small HTTP helpers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';

export const ROOT = join(__dirname, '..', '..');

/** Lines collects a stream's lines and lets a test wait for one that matches. */
export class Lines {
  readonly all: string[] = [];
  private waiters: Array<{ test: (l: string) => boolean; resolve: (l: string) => void }> = [];
  private partial = '';
  constructor(stream: NodeJS.ReadableStream) {
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      const parts = (this.partial + d).split('\n');
      this.partial = parts.pop() ?? '';
      for (const l of parts) this.push(l);
    });
  }
  private push(l: string): void {
    this.all.push(l);
    this.waiters = this.waiters.filter((w) => {
      if (!w.test(l)) return true;
      w.resolve(l);
      return false;
    });
  }
  /** next resolves with the first line (seen already from index `from`, or later) that matches. */
  wait(test: (l: string) => boolean, what: string, timeoutMs = 60_000, from = 0): Promise<string> {
    const seen = this.all.slice(from).find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got:\n${this.all.join('\n')}`)), timeoutMs);
      this.waiters.push({ test, resolve: (l) => (clearTimeout(t), resolve(l)) });
    });
  }
  text(): string {
    return this.all.join('\n') + (this.partial ? `\n${this.partial}` : '');
  }
}

/** NotifyListener is a python3 NOTIFY_SOCKET listener; messages are {pid, msg}. */
export class NotifyListener {
  readonly proc: ChildProcess;
  readonly lines: Lines;
  constructor(readonly address: string) {
    this.proc = spawn('python3', [join(__dirname, 'notify_listener.py'), address], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.lines = new Lines(this.proc.stdout!);
  }
  async bound(): Promise<void> {
    await this.lines.wait((l) => l.includes('"bound"'), 'notify listener to bind', 20_000);
  }
  messages(): Array<{ pid: number; msg: string }> {
    return this.lines.all.filter((l) => l.includes('"msg"')).map((l) => JSON.parse(l) as { pid: number; msg: string });
  }
  waitMsg(re: RegExp, what: string, timeoutMs = 60_000): Promise<{ pid: number; msg: string }> {
    return this.lines.wait((l) => l.includes('"msg"') && re.test((JSON.parse(l) as { msg: string }).msg), what, timeoutMs).then((l) => JSON.parse(l) as { pid: number; msg: string });
  }
  stop(): void {
    this.proc.kill('SIGKILL');
  }
}

/** freePort asks the kernel for a free loopback port. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** get does one GET with an optional API key; resolves with the status and body text. */
export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const r = await request(url, { method: 'GET', headers });
  return { status: r.statusCode, body: await r.body.text() };
}

/** exited resolves with the exit code (or signal) of a child. */
export function exited(p: ChildProcess): Promise<number | string | null> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode ?? p.signalCode);
  return new Promise((resolve) => p.once('exit', (code, sig) => resolve(code ?? sig)));
}

/** tasArgs is the node command line that runs `tas` from source (what bin/tas does without dist/). */
export function tasArgs(...args: string[]): string[] {
  return ['--import', `file://${ROOT}/node_modules/tsx/dist/loader.mjs`, join(ROOT, 'src/main.ts'), ...args];
}
