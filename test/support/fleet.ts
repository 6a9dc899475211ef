/**
 * Fleet and fault helpers on top of the lab (test/support/lab.ts): more daemons sharing the lab's
 * configuration (in-process through the real composition, or `tas serve` child processes), a lab
 * "view" aimed at another daemon, and an agent that retries the SAME nonce after a 503 the way
 * tas_agent does, with a tally that counts every status and every 200 per nonce (a secret must
 * never be released twice for one nonce).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Agent, fetch as ufetch } from 'undici';
import { assemble } from '../../src/daemon/assemble';
import { baseEnv, CLIENT_KEY, startTestDaemon, type TestDaemon } from './daemon';
import { agentBody, agentKeys, decryptReply, getNonce, reportData, SECRET, type AgentKeys, type Lab, type SecretRequest } from './lab';
import { freePort } from './redis';
import type { Product } from './fake-amd';

const ROOT = resolve(__dirname, '../..');

/** at returns a view of the lab whose client helpers talk to another daemon's base URL. */
export function at(lab: Lab, url: string): Lab {
  return { ...lab, daemon: { ...lab.daemon, urls: { main: url, management: undefined } } as TestDaemon };
}

/** startPeers starts n more in-process daemons with the lab's environment (plus `extra`). */
export async function startPeers(lab: Lab, n: number, extra: Record<string, string> = {}): Promise<TestDaemon[]> {
  const out: TestDaemon[] = [];
  for (let i = 0; i < n; i++) {
    const asm = await assemble(undefined as never);
    out.push(await startTestDaemon({ ...lab.env, ...extra }, { services: asm.services, configure: asm.configure }));
  }
  return out;
}

/** ServeChild is one `tas serve` process (the shipped entry point) on a free loopback port. */
export interface ServeChild {
  readonly child: ChildProcess;
  readonly url: string;
  readonly pid: number;
  /** Every stdout/stderr line so far (JSON log and audit lines, and anything else). */
  lines(): string[];
  /** Resident set size in KiB (from /proc). */
  rssKb(): number;
  /** exited resolves with the exit code (or the signal name). */
  readonly exited: Promise<number | string | null>;
  /** stop sends SIGTERM and waits for the exit. */
  stop(): Promise<number | string | null>;
}

/** spawnServe runs `tas serve` with exactly `env` (plus PATH and the test keys) and waits for /readyz. */
export async function spawnServe(env: Record<string, string>, opts: { timeoutMs?: number } = {}): Promise<ServeChild> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/main.ts'), 'serve'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...baseEnv({ ...env, TAS_SERVER_PORT: String(port) }) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let partial = '';
  const take = (d: Buffer): void => {
    const parts = (partial + d.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) if (l.trim()) lines.push(l);
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  const exited = new Promise<number | string | null>((r) => child.once('exit', (code, sig) => r(code ?? sig)));
  const url = `http://127.0.0.1:${port}`;
  const end = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`tas serve exited with ${child.exitCode}:\n${lines.join('\n')}`);
    if (Date.now() > end) {
      child.kill('SIGKILL');
      throw new Error(`tas serve not ready:\n${lines.join('\n')}`);
    }
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) break;
    } catch {
      /* not listening yet */
    }
    await sleep(100);
  }
  return {
    child, url, pid: child.pid!, exited,
    lines: () => (partial ? [...lines, partial] : [...lines]),
    rssKb: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? NaN),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * Agents open a connection per request at boot; so does this client. (Reusing idle keep-alive
 * connections races the server's keep-alive timeout on a loaded machine: "other side closed".)
 */
const oneShot = new Agent({ pipelining: 0 });

/** send is lab.getSecret's request (the agent's body, member order) on a fresh connection. */
export async function send(lab: Lab, r: SecretRequest): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await ufetch(`${lab.daemon.urls.main}/kb/v0/get_secret`, {
    method: 'POST', dispatcher: oneShot,
    headers: { 'x-api-key': CLIENT_KEY, 'content-type': 'application/json', accept: '*/*' },
    body: agentBody(r),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers as unknown as Headers };
}

/** nonceAt calls get_nonce on a fresh connection. */
export async function nonceAt(url: string): Promise<{ status: number; nonce?: string; retryAfter: number }> {
  const r = await ufetch(`${url}/kb/v0/get_nonce`, { headers: { 'x-api-key': CLIENT_KEY }, dispatcher: oneShot });
  const body = (await r.json()) as { nonce?: string };
  return { status: r.status, ...(r.status === 200 ? { nonce: body.nonce } : {}), retryAfter: Number(r.headers.get('retry-after')) };
}

/**
 * pooledKeys hands out agent wrapping keys from a small pool: RSA generation dominates the
 * client's CPU otherwise, and the nonce (not the key) is what makes each request unique.
 */
const pool: AgentKeys[] = [];
let poolNext = 0;
export function pooledKeys(): AgentKeys {
  if (pool.length < 8) {
    pool.push(agentKeys());
    return pool[pool.length - 1]!;
  }
  return pool[poolNext++ % pool.length]!;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Tally counts outcomes of a load: statuses, 200s per nonce, 503s without Retry-After, failures to connect. */
export class Tally {
  readonly statuses = new Map<number, number>();
  readonly okPerNonce = new Map<string, number>();
  /** 503 answers lacking a positive Retry-After. */
  missingRetryAfter = 0;
  /** Transport errors (connection refused/reset): must be 0 against a live daemon. */
  transport = 0;
  /** The first few transport error messages (for the failure message). */
  readonly transportErrors: string[] = [];
  /** Agents that started over after a 503 then 401 (nonce lost to a failover). */
  restarts = 0;
  /** Cycles that ended without a decrypted secret (gave up after retries). */
  gaveUp = 0;
  /** Decrypted replies that were not the broker's secret. */
  wrongSecret = 0;
  /** Epoch ms of the first and last 503 (the outage as clients saw it). */
  first503: number | undefined;
  last503: number | undefined;
  /** Non-200/503 answers with their bodies (unexpected in a load of valid requests). */
  readonly unexpected: string[] = [];

  count(status: number): void {
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
    if (status === 503) {
      this.first503 ??= Date.now();
      this.last503 = Date.now();
    }
  }
  noteTransport(e: unknown): void {
    this.transport++;
    const c = (e as { cause?: { code?: string; message?: string } }).cause;
    if (this.transportErrors.length < 5) this.transportErrors.push(`${(e as Error).message}: ${c?.code ?? ''} ${c?.message ?? ''}`);
  }
  get(status: number): number {
    return this.statuses.get(status) ?? 0;
  }
  total(): number {
    let n = 0;
    for (const v of this.statuses.values()) n += v;
    return n;
  }
  /** doubles is the number of nonces that got more than one 200 (must be 0). */
  doubles(): number {
    return [...this.okPerNonce.values()].filter((v) => v > 1).length;
  }
  summary(): Record<string, unknown> {
    return { statuses: Object.fromEntries(this.statuses), released: this.okPerNonce.size, doubles: this.doubles(), restarts: this.restarts, gaveUp: this.gaveUp, transport: this.transport, transportErrors: this.transportErrors, missingRetryAfter: this.missingRetryAfter };
  }
}

export interface CycleOptions {
  policyId: string;
  product?: Product;
  /** The chip of the report (a function: a fresh, uncached chip per cycle). */
  chipId?: Buffer | (() => Buffer);
  /** Retries of the same nonce after a 503 (and of get_nonce after a 503). */
  retries?: number;
  retryDelayMs?: number;
  /** After 503s, a 401 makes the agent start over with a new nonce (counted in tally.restarts). */
  restartAfter503?: boolean;
}

/**
 * cycle runs one agent boot against `lab` (possibly a view from at()): get_nonce (retried on 503),
 * a nonce-bound report, get_secret retried with the SAME nonce after each 503. Every answer is
 * counted in the tally. Returns true when the secret was released and decrypted.
 */
export async function cycle(lab: Lab, tally: Tally, o: CycleOptions): Promise<boolean> {
  const retries = o.retries ?? 40;
  const delay = o.retryDelayMs ?? 250;
  let nonce: string | undefined;
  for (let i = 0; i <= retries && nonce === undefined; i++) {
    let r: Awaited<ReturnType<typeof nonceAt>>;
    try {
      r = await nonceAt(lab.daemon.urls.main);
    } catch (e) {
      tally.noteTransport(e);
      await sleep(delay);
      continue;
    }
    tally.count(r.status);
    if (r.status === 200) nonce = r.nonce;
    else {
      if (r.status === 503 && !(r.retryAfter > 0)) tally.missingRetryAfter++;
      if (r.status !== 503) tally.unexpected.push(`get_nonce ${r.status}`);
      await sleep(delay);
    }
  }
  if (nonce === undefined) {
    tally.gaveUp++;
    return false;
  }
  const kit = lab.kits[o.product ?? 'Genoa'];
  const keys = pooledKeys();
  const chipId = typeof o.chipId === 'function' ? o.chipId() : o.chipId;
  const report = kit.signReport({ reportData: reportData(nonce, keys.wire, true), ...(chipId ? { chipId } : {}) });
  for (let i = 0; i <= retries; i++) {
    let r: Awaited<ReturnType<typeof send>>;
    try {
      r = await send(lab, { nonce, report, keys, policyId: o.policyId });
    } catch (e) {
      tally.noteTransport(e);
      await sleep(delay);
      continue;
    }
    tally.count(r.status);
    if (r.status === 200) {
      tally.okPerNonce.set(nonce, (tally.okPerNonce.get(nonce) ?? 0) + 1);
      if (decryptReply(r.body, keys) !== SECRET) tally.wrongSecret++;
      return true;
    }
    if (r.status === 503) {
      if (!(Number(r.headers.get('retry-after')) > 0)) tally.missingRetryAfter++;
      await sleep(delay);
      continue;
    }
    if (r.status === 401 && o.restartAfter503 && i > 0) {
      // The agent's nonce was lost to a failure (it saw 503 first): it starts over with a new one.
      tally.restarts++;
      return cycle(lab, tally, o);
    }
    tally.unexpected.push(`get_secret ${r.status} ${JSON.stringify(r.body)} nonce_sha256 ${createHash('sha256').update(nonce).digest('hex').slice(0, 16)} after ${i} retries`);
    return false;
  }
  tally.gaveUp++;
  return false;
}

/** load runs `clients` concurrent agents until `cycles` cycles are done (bounded by count, not time). */
export async function load(lab: Lab, tally: Tally, o: CycleOptions & { clients: number; cycles: number; urls?: string[] }): Promise<number> {
  let started = 0;
  let ok = 0;
  const urls = o.urls ?? [lab.daemon.urls.main];
  await Promise.all(
    Array.from({ length: o.clients }, async (_, c) => {
      while (started < o.cycles) {
        const n = started++;
        if (await cycle(at(lab, urls[(n + c) % urls.length]!), tally, o)) ok++;
      }
    }),
  );
  return ok;
}

export { getNonce };
