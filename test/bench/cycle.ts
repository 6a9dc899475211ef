/**
 * Benchmark (not part of `npm test` at full length; test/bench/cycle.test.ts runs a short smoke of
 * it): full agent cycles — get_nonce, then get_secret with a fresh nonce-bound report (report-data
 * binding) signed by the fake AMD signer in a separate process (one reused ECDSA nonce, so that the
 * simulated hardware costs the shared cores microseconds; TAS_BENCH_SIGNER=full: a fresh nonce per
 * report) — at concurrency 1, 4 and 16 over
 * real HTTP against a running `tas serve` (embedded store and/or Redis, mock broker, VCEK cached
 * after the first cycle). Per level it prints cycles/s, p50/p99 latency of the cycle and of
 * get_secret alone, the daemon's CPU milliseconds per cycle (from /proc/<pid>/stat), that CPU
 * divided by the cost of one ECDSA-P384 verify probed in the same run (the "floor"; targets
 * embedded ≤ 2.0, Redis ≤ 2.5), and the daemon's RSS at the end of the level.
 *
 * Run: `node --import tsx test/bench/cycle.ts [seconds-per-level=10] [levels=1,4,16]
 *        [--store=embedded|redis|both] [--profile=DIR] [--compare=DIR] [--warmup=SECONDS(15)]`
 * Each level also prints its ratio to a floor probed right before and after it (the floor drifts).
 * `TAS_BENCH_NODE_FLAGS` adds Node flags to the daemon, e.g. `--perf-basic-prof` to read it with
 * `perf record -g -p <pid>` (JIT frames by name); `TAS_BENCH_DAEMON_OUT=FILE` appends what the daemon
 * prints to FILE (e.g. with `--trace-gc` in TAS_BENCH_NODE_FLAGS); `TAS_BENCH_NODE_FLAGS_BEFORE` gives the
 * "before" daemon of `--compare` its own flags (e.g. `--compare=.` to measure a Node flag alone);
 * `TAS_BENCH_DAEMON_ENV='K=V ...'` adds variables to the daemon's (otherwise built, not inherited)
 * environment, `TAS_BENCH_DAEMON_ENV_BEFORE` to the "before" daemon's instead. Each daemon starts
 * with the Node flags and Environment= of its checkout's systemd/tas.service (what the package
 * runs); `TAS_BENCH_UNIT_RUNTIME=0` leaves them out.
 * `--compare=DIR` also runs the daemon of another built checkout (e.g. `git worktree add` of the
 * commit before a change, then `npx tsc -p tsconfig.json` there) at the same time, and measures
 * every level in `--slices=N` (6) short stretches alternating between the two, each next to its
 * own floor probe, so that drift of the shared machine lands on before and after alike.
 * `--profile=DIR` runs the daemon with `--cpu-prof` and writes its V8 CPU profile into DIR on exit
 * (open it in Chrome DevTools or speedscope: where does the CPU of a cycle go?).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, createSign, createVerify, privateDecrypt, constants } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { crlPath, vcekPath } from '../../src/kds';
import { signPolicy } from '../../src/policy';
import { DEFAULT_TCB, FakeAmd } from '../support/fake-amd';
import { FakeKds } from '../support/fake-kds';
import { startPlain, type RedisNode } from '../support/redis';
import { unitRuntime } from '../support/unit-runtime';
import { Pool } from 'undici';

const ROOT = resolve(__dirname, '../..');
const CLIENT = 'bench-client-key-'.padEnd(72, 'c');
const MGMT = 'bench-management-key-'.padEnd(72, 'm');
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

export type StoreKind = 'embedded' | 'redis';

function cpuSplit(pid: number): { user: number; system: number } {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return { user: Number(rest[11]) * TICK_MS, system: Number(rest[12]) * TICK_MS }; // utime, stime
}

/** ioCalls: the read(2)- and write(2)-family system calls a process made (/proc/<pid>/io). */
function ioCalls(pid: number): { reads: number; writes: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return { reads: Number(/^syscr:\s+(\d+)/m.exec(io)?.[1] ?? NaN), writes: Number(/^syscw:\s+(\d+)/m.exec(io)?.[1] ?? NaN) };
}

function readCalls(pid: number): number {
  return ioCalls(pid).reads;
}

function cpuMs(pid: number): number {
  const c = cpuSplit(pid);
  return c.user + c.system;
}

/** memMiB reads the resident set (VmRSS) and its peak (VmHWM) of a process in MiB. */
function memMiB(pid: number): { rss: number; peak: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** verifyCostMs: CPU ms of one ECDSA P-384/SHA-384 verify over a report-sized message, in this process. */
export function verifyCostMs(n = 3000): number {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  const msg = Buffer.alloc(0x2a0, 7);
  const sig = createSign('sha384').update(msg).sign(privateKey);
  for (let i = 0; i < 200; i++) createVerify('sha384').update(msg).verify(publicKey, sig);
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) createVerify('sha384').update(msg).verify(publicKey, sig);
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1000 / n;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

export interface LevelResult {
  store: StoreKind;
  /** Which checkout ran (BenchOptions.label), when comparing. */
  label?: string;
  concurrency: number;
  cycles: number;
  perSecond: number;
  /** Latency of a whole cycle (get_nonce + signing in the signer child + get_secret), ms. */
  p50: number;
  p99: number;
  /** Latency of get_secret alone, ms. */
  secretP50: number;
  secretP99: number;
  /** Daemon CPU (user + system) per cycle, ms, and that ÷ one ECDSA-P384 verify of this run. */
  cpuPerCycle: number;
  ratio: number;
  /**
   * The daemon's read(2)- and write(2)-family system calls per cycle (sockets, files, the thread
   * pool's wake-ups): counted, so comparable across runs on a loaded machine, unlike CPU time.
   */
  daemonReadsPerCycle: number;
  daemonWritesPerCycle: number;
  /** Share of the daemon CPU spent in the kernel. */
  kernelShare: number;
  /** redis-server CPU per cycle (Redis store only), ms. */
  redisCpuPerCycle?: number;
  /**
   * redis-server read(2) calls per cycle (Redis store only): how many separate batches of commands
   * reached it — the round trips of a cycle, fewer when commands share a write. Counted, not timed.
   */
  redisReadsPerCycle?: number;
  /** Daemon resident set at the end of the level, and its peak so far, MiB. */
  rssMiB: number;
  peakRssMiB: number;
  /** 1-minute load average of the machine at the start and end of the level (shared machines). */
  load: [number, number];
  errors: number;
  firstError?: string;
  /** BenchOptions.levelFloor: the mean of the floor probed right before and right after this level (ms), and the CPU per cycle divided by it. */
  levelFloorMs?: number;
  levelRatio?: number;
}

export interface BenchOptions {
  store: StoreKind;
  seconds: number;
  levels: number[];
  /** The floor of this run (CPU ms of one ECDSA-P384 verify); probed here when absent. */
  verifyMs?: number;
  /** Write the daemon's V8 CPU profile (--cpu-prof) into this directory. */
  profileDir?: string;
  /** Run the daemon of another checkout (built: dist/src/main.js), e.g. the code before a change. */
  root?: string;
  /** Row label for that checkout (`before`, `after`). */
  label?: string;
  quiet?: boolean;
  /** Seconds of unmeasured cycles at concurrency 4 before the first level (default 3, at most the level length; the CLI 15). */
  warmupSeconds?: number;
  /**
   * Probe the floor again right before and right after every level and also divide by their mean:
   * on a shared VM the cost of a verify drifts by a third within minutes, so a floor probed next
   * to the level is the fairer yardstick for it (both are printed).
   */
  levelFloor?: boolean;
}

export const HEADER = 'store     conc  cycles  cycles/s  p50 ms  p99 ms  secret p50/p99 ms  CPU ms/cycle  ÷ floor  kernel  RSS MiB  load  (counted: daemon read/write syscalls per cycle; redis-server reads)';

export function formatLevel(r: LevelResult): string {
  return `${(r.label ? `${r.store}/${r.label}` : r.store).padEnd(8)} ${String(r.concurrency).padStart(5)}  ${String(r.cycles).padStart(6)}  ${r.perSecond.toFixed(1).padStart(8)}  ${r.p50.toFixed(1).padStart(6)}  ${r.p99.toFixed(1).padStart(6)}  ${`${r.secretP50.toFixed(1)}/${r.secretP99.toFixed(1)}`.padStart(17)}  ${r.cpuPerCycle.toFixed(3).padStart(12)}  ${r.ratio.toFixed(2).padStart(7)}  ${(100 * r.kernelShare).toFixed(0).padStart(5)}%  ${r.rssMiB.toFixed(0).padStart(7)}  ${r.load[0].toFixed(2)}→${r.load[1].toFixed(2)}  syscalls r/w ${r.daemonReadsPerCycle.toFixed(1)}/${r.daemonWritesPerCycle.toFixed(1)}` +
    (r.redisCpuPerCycle !== undefined ? `  redis-server ${r.redisCpuPerCycle.toFixed(3)} ms/cycle` : '') +
    (r.redisReadsPerCycle !== undefined ? `, ${r.redisReadsPerCycle.toFixed(2)} reads/cycle` : '') +
    (r.levelRatio !== undefined ? `  [floor next to the level ${(1000 * r.levelFloorMs!).toFixed(0)} µs: ÷ ${r.levelRatio.toFixed(2)}]` : '') +
    (r.errors ? `  (${r.errors} errors; first: ${r.firstError})` : '');
}

/** A running `tas serve` with everything a cycle needs (KDS, store, signer child, agent key). */
interface Target {
  readonly store: StoreKind;
  readonly label: string | undefined;
  readonly pid: number;
  readonly redisPid: number | undefined;
  /** One full agent cycle; true when the secret was released (and, on a sample, decrypted). */
  cycle(): Promise<boolean>;
  /** get_secret latencies since the last take (ms). */
  takeSecretLatencies(): number[];
  stop(): Promise<void>;
}

async function startTarget(opts: BenchOptions): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'tas-bench-'));
  const kds = await new FakeKds().start();
  let daemon: ChildProcess | undefined;
  let signer: ChildProcess | undefined;
  let redis: (RedisNode & { url: string }) | undefined;
  let agentPool: Pool | undefined;
  const stop = async (): Promise<void> => {
    signer?.kill();
    await agentPool?.destroy();
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon!.once('exit', r));
    }
    await redis?.stop();
    await kds.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const kit = await FakeAmd.create({ product: 'Genoa' });
    const trust = join(dir, 'trust');
    await kit.writeTrustDir(trust);
    writeFileSync(join(trust, 'ask.pem'), kit.askPem);
    kds.serve(vcekPath('Genoa', kit.chipId, DEFAULT_TCB.Genoa), kit.vcekDer());
    kds.serve(crlPath('Genoa', 'VCEK'), kit.crlDer({ thisUpdate: new Date(Date.now() - 3600_000), nextUpdate: new Date(Date.now() + 86400_000) }));
    const pk = generateKeyPairSync('rsa', { modulusLength: 3072 });
    writeFileSync(join(dir, 'signer.pem'), pk.publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(join(dir, 'kbm.yaml'), 'secrets:\n  bench-key:\n    value_utf8: "bench secret 0123456789"\n');
    const storeEnv: Record<string, string> = {};
    let redisPid: number | undefined;
    if (opts.store === 'redis') {
      redis = await startPlain();
      storeEnv.TAS_STORE = 'redis';
      storeEnv.TAS_REDIS_URL = redis.url;
      redisPid = pidListening(redis.port);
    }

    const root = opts.root ? resolve(opts.root) : ROOT;
    const compiled = join(root, 'dist/src/main.js');
    if (opts.profileDir) mkdirSync(opts.profileDir, { recursive: true });
    const prof = opts.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${resolve(opts.profileDir)}`, `--cpu-prof-name=tas-${opts.store}-${process.pid}.cpuprofile`] : [];
    // e.g. TAS_BENCH_NODE_FLAGS=--perf-basic-prof, to read the daemon with `perf record -p`.
    // With --compare, TAS_BENCH_NODE_FLAGS_BEFORE replaces them for the "before" daemon (compare
    // Node flags on one checkout: --compare=. and the flags in question on one side only).
    const flags = opts.label === 'before' && process.env.TAS_BENCH_NODE_FLAGS_BEFORE !== undefined ? process.env.TAS_BENCH_NODE_FLAGS_BEFORE : process.env.TAS_BENCH_NODE_FLAGS;
    // The daemon starts as the checkout's systemd unit starts it (its Node flags and Environment=),
    // unless TAS_BENCH_UNIT_RUNTIME=0; the flags above come after, so they win.
    const unit = process.env.TAS_BENCH_UNIT_RUNTIME === '0' ? { nodeFlags: [], env: {} } : unitRuntime(root);
    const nodeFlags = [...unit.nodeFlags, ...prof, ...(flags ?? '').split(' ').filter(Boolean)];
    const args = existsSync(compiled) ? [...nodeFlags, compiled, 'serve'] : [...nodeFlags, '--import', 'tsx', join(root, 'src/main.ts'), 'serve'];
    // The daemon's environment is built here, not inherited; TAS_BENCH_DAEMON_ENV='K=V K2=V2' adds
    // to it (e.g. MALLOC_TRIM_THRESHOLD_=131072, to measure a malloc tunable before a unit has it), and
    // TAS_BENCH_DAEMON_ENV_BEFORE replaces it for the "before" daemon of --compare.
    const envSpec = opts.label === 'before' && process.env.TAS_BENCH_DAEMON_ENV_BEFORE !== undefined ? process.env.TAS_BENCH_DAEMON_ENV_BEFORE : process.env.TAS_BENCH_DAEMON_ENV;
    const extraEnv = Object.fromEntries((envSpec ?? '').split(' ').filter(Boolean).map((kv) => {
      const i = kv.indexOf('=');
      if (i < 1) throw new Error(`TAS_BENCH_DAEMON_ENV: ${kv} is not K=V`);
      return [kv.slice(0, i), kv.slice(i + 1)];
    }));
    daemon = spawn(process.execPath, args, {
      env: {
        ...unit.env,
        PATH: process.env.PATH ?? '', TAS_API_KEY: CLIENT, TAS_MANAGEMENT_API_KEY: MGMT, TAS_SERVER_HOST: '127.0.0.1', TAS_SERVER_PORT: '0',
        TAS_STATE_DIR: join(dir, 'state'), TAS_KBM_CONFIG_FILE: join(dir, 'kbm.yaml'), TAS_POLICY_TRUST: join(dir, 'signer.pem'),
        TAS_SNP_EXTRA_TRUST_DIR: trust, TAS_KDS_BASE_URL: kds.url, TAS_CLIENT_RATE_LIMIT: '10000000/minute',
        TAS_AUDIT_FILE: join(dir, 'audit.jsonl'), TAS_OVERRIDE__logging__level: 'warn', ...storeEnv, ...extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    daemon.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-8000)));
    daemon.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-8000)));
    // e.g. with TAS_BENCH_NODE_FLAGS=--trace-gc: everything the daemon prints, appended to this file.
    const tee = process.env.TAS_BENCH_DAEMON_OUT;
    if (tee) for (const s of [daemon.stdout!, daemon.stderr!]) s.on('data', (d: Buffer) => appendFileSync(tee, d));
    // The daemon logs at warn; find its port from /proc (the one listening socket of its pid).
    let base = '';
    for (let i = 0; i < 300 && !base; i++) {
      await new Promise((r) => setTimeout(r, 100));
      if (daemon.exitCode !== null) throw new Error(`tas serve exited: ${out}`);
      base = listeningUrl(daemon.pid!);
    }
    if (!base) throw new Error(`no listening socket: ${out}`);
    for (let i = 0; i < 200; i++) {
      if ((await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const doc = signPolicy({ metadata: { name: 'bench', version: '1', description: 'bench', policy_type: 'SEV', policy_id: 'bench', key_id: 'bench-key' }, validation_rules: { vmpl: { exact_match: 0 }, policy: { debug_allowed: false }, reported_tcb: { snp: { min_value: 1 } } } }, pk.privateKey);
    const st = await fetch(`${base}/management/policy/v0/store`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-management-api-key': MGMT }, body: JSON.stringify(doc) });
    if (st.status !== 201) throw new Error(`policy store: ${st.status} ${await st.text()}`);

    signer = fork(join(__dirname, 'signer-child.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise<void>((r) => signer!.once('message', () => r()));
    let nextId = 0;
    const waiting = new Map<number, (b: Buffer) => void>();
    signer.on('message', (m: { id: number; report: string }) => waiting.get(m.id)?.(Buffer.from(m.report, 'base64')));
    const sign = (reportData: Buffer) => new Promise<Buffer>((r) => {
      const id = nextId++;
      waiting.set(id, (b) => (waiting.delete(id), r(b)));
      signer!.send({ id, product: 'Genoa', reportData: reportData.toString('hex') });
    });

    // The agents' HTTP client: undici's request API on keep-alive connections (fetch cost the load
    // generator about three times the CPU per request, on the 2 cores the daemon shares).
    agentPool = new Pool(base, { connections: 64 });
    const agent = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const wire = agent.publicKey.export({ type: 'pkcs1', format: 'der' });
    let secretLat: number[] = [];
    let released = 0;
    const cycle = async (): Promise<boolean> => {
      const nr = await agentPool!.request({ path: '/kb/v0/get_nonce', method: 'GET', headers: { 'x-api-key': CLIENT } });
      const { nonce } = (await nr.body.json()) as { nonce: string };
      const report = await sign(createHash('sha512').update(nonce).update(wire).digest());
      const s = performance.now();
      const r = await agentPool!.request({
        path: '/kb/v0/get_secret', method: 'POST', headers: { 'x-api-key': CLIENT, 'content-type': 'application/json' },
        body: JSON.stringify({ nonce: JSON.stringify(nonce), 'policy-id': 'bench', 'report-data-binding': true, 'tee-evidence': report.toString('base64'), 'tee-type': 'amd-sev-snp', 'wrapping-key': wire.toString('base64') }),
      });
      const body = (await r.body.json()) as { secret_key?: { wrapped_key: string; blob: string; iv: string; tag: string } };
      if (r.statusCode !== 200 || !body.secret_key) return false;
      secretLat.push(performance.now() - s);
      // The agent's RSA-2048 private decrypt costs the load generator more CPU than the daemon spends
      // on the whole cycle; on 2 shared cores that stole CPU from the daemon and inflated its
      // latencies. Every reply is checked for its shape; one in 16 is opened like the agent does.
      const k = body.secret_key;
      if (![k.wrapped_key, k.blob, k.iv, k.tag].every((f) => typeof f === 'string' && f.length > 0)) return false;
      if (released++ % 16 === 0) {
        privateDecrypt({ key: agent.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from(k.wrapped_key, 'base64'));
      }
      return true;
    };
    // Warm-up (JIT, VCEK cache). A transport error here (a keep-alive connection the server closed
    // just as it was reused, on a loaded machine) is retried; a refused cycle is not.
    for (let i = 0, transport = 0; i < 20; i++) {
      let ok: boolean;
      try {
        ok = await cycle();
      } catch (e) {
        if (++transport > 5) throw e;
        i--;
        continue;
      }
      if (!ok) throw new Error(`warm-up cycle refused: ${out}`);
    }
    return {
      store: opts.store, label: opts.label, pid: daemon.pid!, redisPid, cycle,
      takeSecretLatencies: () => {
        const l = secretLat;
        secretLat = [];
        return l;
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * Steady state before anything is measured: unmeasured cycles at concurrency 4, so that JIT
 * compilation (V8's compiler threads count as daemon CPU) and heap growth land here, not in
 * whichever level happens to run first.
 */
async function warmUp(t: Target, seconds: number): Promise<void> {
  const until = Date.now() + 1000 * seconds;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (Date.now() < until) await t.cycle().catch(() => false);
  }));
}

/** warmupOf is BenchOptions.warmupSeconds or its default (3 s, at most the level length). */
function warmupOf(opts: Pick<BenchOptions, 'warmupSeconds' | 'seconds'>): number {
  return opts.warmupSeconds ?? Math.min(3, opts.seconds);
}

/** Raw counters of one measured stretch of cycles against one target. */
interface Stretch {
  lat: number[];
  secretLat: number[];
  errors: number;
  firstError?: string;
  wall: number;
  user: number;
  system: number;
  reads: number;
  writes: number;
  redisCpu: number;
  redisReads: number;
  load: [number, number];
}

async function measure(t: Target, concurrency: number, seconds: number): Promise<Stretch> {
  const lat: number[] = [];
  t.takeSecretLatencies();
  let errors = 0;
  let firstError: string | undefined;
  const load0 = loadavg()[0]!;
  const stopAt = Date.now() + seconds * 1000;
  const split0 = cpuSplit(t.pid);
  const redis0 = t.redisPid ? cpuMs(t.redisPid) : 0;
  const redisReads0 = t.redisPid ? readCalls(t.redisPid) : 0;
  const io0 = ioCalls(t.pid);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < stopAt) {
      const s = performance.now();
      try {
        if (await t.cycle()) lat.push(performance.now() - s);
        else errors++;
      } catch (e) {
        errors++;
        firstError ??= `${(e as Error).message}: ${String((e as { cause?: unknown }).cause)}`;
      }
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  const split1 = cpuSplit(t.pid);
  const io1 = ioCalls(t.pid);
  return {
    lat, secretLat: t.takeSecretLatencies(), errors, ...(firstError ? { firstError } : {}), wall,
    user: split1.user - split0.user, system: split1.system - split0.system, reads: io1.reads - io0.reads, writes: io1.writes - io0.writes,
    redisCpu: t.redisPid ? cpuMs(t.redisPid) - redis0 : 0, redisReads: t.redisPid ? readCalls(t.redisPid) - redisReads0 : 0,
    load: [load0, loadavg()[0]!],
  };
}

/** summarise turns the stretches of one level (one, or several interleaved) into its row. */
function summarise(t: Target, concurrency: number, parts: Stretch[], verifyMs: number, levelFloorMs: number | undefined): LevelResult {
  const lat = parts.flatMap((p) => p.lat).sort((a, b) => a - b);
  const secretLat = parts.flatMap((p) => p.secretLat).sort((a, b) => a - b);
  const sum = (f: (p: Stretch) => number): number => parts.reduce((a, p) => a + f(p), 0);
  const cpu = sum((p) => p.user + p.system);
  const n = Math.max(1, lat.length);
  const mem = memMiB(t.pid);
  const firstError = parts.find((p) => p.firstError)?.firstError;
  return {
    store: t.store, ...(t.label ? { label: t.label } : {}), concurrency, cycles: lat.length, perSecond: lat.length / sum((p) => p.wall), p50: pct(lat, 50), p99: pct(lat, 99),
    secretP50: pct(secretLat, 50), secretP99: pct(secretLat, 99), cpuPerCycle: cpu / n, ratio: cpu / n / verifyMs,
    kernelShare: sum((p) => p.system) / Math.max(1, cpu),
    daemonReadsPerCycle: sum((p) => p.reads) / n, daemonWritesPerCycle: sum((p) => p.writes) / n,
    ...(t.redisPid ? { redisCpuPerCycle: sum((p) => p.redisCpu) / n, redisReadsPerCycle: sum((p) => p.redisReads) / n } : {}),
    rssMiB: mem.rss, peakRssMiB: mem.peak, load: [parts[0]!.load[0], parts[parts.length - 1]!.load[1]], errors: sum((p) => p.errors), ...(firstError ? { firstError } : {}),
    ...(levelFloorMs !== undefined ? { levelFloorMs, levelRatio: cpu / n / levelFloorMs } : {}),
  };
}

/** idleCpu is what a daemon spends with no request at all (timers, background refreshes), ms per second. */
async function idleCpu(t: Target): Promise<number> {
  const idle0 = cpuMs(t.pid);
  await new Promise((r) => setTimeout(r, 2000));
  return (cpuMs(t.pid) - idle0) / 2;
}

export async function runBench(opts: BenchOptions): Promise<{ store: StoreKind; verifyMs: number; idleMsPerS: number; results: LevelResult[] }> {
  const log = (s: string) => (opts.quiet ? undefined : console.log(s));
  const t = await startTarget(opts);
  try {
    await warmUp(t, warmupOf(opts));
    const verifyMs = opts.verifyMs ?? verifyCostMs();
    // Idle CPU is part of every level's CPU per cycle, the larger the fewer cycles per second.
    const idleMsPerS = await idleCpu(t);
    log(`${(opts.label ? `${opts.store}/${opts.label}` : opts.store).padEnd(8)} idle: ${idleMsPerS.toFixed(1)} ms CPU per second`);
    const results: LevelResult[] = [];
    for (const c of opts.levels) {
      const floorBefore = opts.levelFloor ? verifyCostMs(1000) : undefined;
      const part = await measure(t, c, opts.seconds);
      const levelFloorMs = floorBefore !== undefined ? (floorBefore + verifyCostMs(1000)) / 2 : undefined;
      const r = summarise(t, c, [part], verifyMs, levelFloorMs);
      results.push(r);
      log(formatLevel(r));
    }
    return { store: opts.store, verifyMs, idleMsPerS, results };
  } finally {
    await t.stop();
  }
}

/**
 * runPaired compares two checkouts fairly on a noisy shared machine: both daemons run at once
 * (each with its own KDS, store and signer), and every level is measured in `slices` short
 * stretches that alternate between them (before, after, after, before, ...), each stretch next to
 * its own floor probe. Host-level drift (the cost of one verify moved by a third within minutes
 * here) then lands on both sides alike, instead of on whichever ran second.
 */
export async function runPaired(opts: Omit<BenchOptions, 'root' | 'label'> & { beforeRoot: string; slices: number }): Promise<{ before: LevelResult[]; after: LevelResult[] }> {
  const log = (s: string) => (opts.quiet ? undefined : console.log(s));
  const before = await startTarget({ ...opts, root: opts.beforeRoot, label: 'before', profileDir: undefined });
  let after: Target | undefined;
  try {
    after = await startTarget({ ...opts, label: 'after' });
    const warm = warmupOf(opts);
    // One after the other: warming both at once would give each half the CPU, and so half the
    // optimisation, of a single run's warm-up.
    await warmUp(before, warm);
    await warmUp(after, warm);
    const verifyMs = opts.verifyMs ?? verifyCostMs();
    const out = { before: [] as LevelResult[], after: [] as LevelResult[] };
    for (const c of opts.levels) {
      const parts = { before: [] as Stretch[], after: [] as Stretch[] };
      const floors: number[] = [];
      for (let i = 0; i < opts.slices; i++) {
        const order = i % 2 === 0 ? (['before', 'after'] as const) : (['after', 'before'] as const);
        for (const side of order) {
          floors.push(verifyCostMs(300));
          parts[side].push(await measure(side === 'before' ? before : after, c, opts.seconds / opts.slices));
        }
      }
      floors.push(verifyCostMs(300));
      const floor = floors.reduce((a, b) => a + b, 0) / floors.length;
      for (const side of ['before', 'after'] as const) {
        const r = summarise(side === 'before' ? before : after!, c, parts[side], verifyMs, floor);
        out[side].push(r);
        log(formatLevel(r));
      }
      const b = out.before[out.before.length - 1]!;
      const a = out.after[out.after.length - 1]!;
      log(`${''.padEnd(8)} ${String(c).padStart(5)}  after/before CPU per cycle: ${(a.cpuPerCycle / b.cpuPerCycle).toFixed(3)} (${opts.slices} interleaved stretches each)`);
    }
    return out;
  } finally {
    await after?.stop();
    await before.stop();
  }
}

/** pidListening finds the process that listens on a loopback TCP port (the bench's redis-server). */
function pidListening(port: number): number | undefined {
  let inode: string | undefined;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] === '0A' && parseInt(f[1]?.split(':')[1] ?? '', 16) === port) inode = f[9];
  }
  if (!inode) return undefined;
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      for (const fd of readdirSync(`/proc/${p}/fd`)) if (readlinkSync(`/proc/${p}/fd/${fd}`) === `socket:[${inode}]`) return Number(p);
    } catch {
      // another user's process, or gone
    }
  }
  return undefined;
}

/** listeningUrl finds the TCP port a process listens on (its only listening socket). */
function listeningUrl(pid: number): string {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const l = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const m = /^socket:\[(\d+)\]$/.exec(l);
      if (m) inodes.add(m[1]!);
    }
  } catch {
    return '';
  }
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] === '0A' && inodes.has(f[9]!)) return `http://127.0.0.1:${parseInt(f[1]!.split(':')[1]!, 16)}`;
  }
  return '';
}

if (require.main === module) {
  const positional = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const flag = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const seconds = Number(positional[0] ?? 10);
  const levels = (positional[1] ?? '1,4,16').split(',').map(Number);
  const which = flag('store') ?? 'both';
  const stores: StoreKind[] = which === 'both' ? ['embedded', 'redis'] : [which as StoreKind];
  const profileDir = flag('profile') ?? (process.argv.includes('--profile') ? 'tas-cpu-profiles' : undefined);
  const warm = flag('warmup');
  // Long enough for V8 to finish optimising the request path: with 3 s, a level still paid for
  // compilation and read up to 1.8x its steady state (#16 round 3); a daemon runs for days.
  const warmupSeconds = warm === undefined ? 15 : Number(warm);
  void (async () => {
    // One floor for the whole run: every ratio of the run divides by the same probe.
    const verifyMs = verifyCostMs();
    console.log(`floor: one ECDSA-P384 verify (SHA-384, 672 bytes) = ${(verifyMs * 1000).toFixed(0)} µs CPU; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${seconds} s per level`);
    console.log(HEADER);
    const compare = flag('compare');
    const slices = Number(flag('slices') ?? 6);
    for (const store of stores) {
      if (compare) await runPaired({ store, seconds, levels, verifyMs, beforeRoot: compare, slices, warmupSeconds, ...(profileDir ? { profileDir } : {}) });
      else await runBench({ store, seconds, levels, verifyMs, ...(profileDir ? { profileDir } : {}), warmupSeconds, levelFloor: true });
    }
    const after = verifyCostMs();
    console.log(`floor re-probed at the end: ${(after * 1000).toFixed(0)} µs (${(100 * (after / verifyMs - 1)).toFixed(0)}% drift); load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    if (profileDir) console.log(`CPU profiles in ${resolve(profileDir)}`);
  })().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
