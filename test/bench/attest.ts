/**
 * Benchmark (not part of `npm test`; a tiny smoke run is): full attestation cycles — get_nonce, then
 * get_secret with a fresh nonce-bound report signed by the fake AMD signer in a separate process —
 * at concurrency 1, 4 and 16 against a running `tas serve` (embedded store, mock broker, VCEK cached
 * after the first cycle). Prints cycles/s, p50/p99 latency, the daemon's CPU milliseconds per cycle
 * (from /proc/<pid>/stat), and that CPU divided by the cost of one ECDSA-P384 verify probed in the
 * same run (target ≤ 1.5).
 *
 * Run: `node --import tsx test/bench/attest.ts [seconds-per-level=10] [levels=1,4,16]`.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, createSign, createVerify, privateDecrypt, constants } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { crlPath, vcekPath } from '../../src/kds';
import { signPolicy } from '../../src/policy';
import { DEFAULT_TCB, FakeAmd } from '../support/fake-amd';
import { FakeKds } from '../support/fake-kds';

const ROOT = resolve(__dirname, '../..');
const seconds = Number(process.argv[2] ?? 10);
const levels = (process.argv[3] ?? '1,4,16').split(',').map(Number);
const CLIENT = 'bench-client-key-'.padEnd(72, 'c');
const MGMT = 'bench-management-key-'.padEnd(72, 'm');
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

function cpuSplit(pid: number): { user: number; system: number } {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return { user: Number(rest[11]) * TICK_MS, system: Number(rest[12]) * TICK_MS }; // utime, stime
}

function cpuMs(pid: number): number {
  const c = cpuSplit(pid);
  return c.user + c.system;
}

/** verifyCostMs: CPU ms of one ECDSA P-384/SHA-384 verify over a report-sized message, in this process. */
function verifyCostMs(): number {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  const msg = Buffer.alloc(0x2a0, 7);
  const sig = createSign('sha384').update(msg).sign(privateKey);
  for (let i = 0; i < 200; i++) createVerify('sha384').update(msg).verify(publicKey, sig);
  const n = 3000;
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) createVerify('sha384').update(msg).verify(publicKey, sig);
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1000 / n;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

export interface LevelResult { concurrency: number; cycles: number; perSecond: number; p50: number; p99: number; cpuPerCycle: number; ratio: number; errors: number }

export async function runBench(opts: { seconds: number; levels: number[]; quiet?: boolean }): Promise<{ verifyMs: number; results: LevelResult[] }> {
  const log = (s: string) => (opts.quiet ? undefined : console.log(s));
  const dir = mkdtempSync(join(tmpdir(), 'tas-bench-'));
  const kds = await new FakeKds().start();
  let daemon: ChildProcess | undefined;
  let signer: ChildProcess | undefined;
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

    const compiled = join(ROOT, 'dist/src/main.js');
    // TAS_BENCH_PROFILE=DIR writes a V8 CPU profile of the daemon there (where does the CPU go?).
    const prof = process.env.TAS_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.TAS_BENCH_PROFILE}`] : [];
    const args = existsSync(compiled) ? [...prof, compiled, 'serve'] : [...prof, '--import', 'tsx', join(ROOT, 'src/main.ts'), 'serve'];
    daemon = spawn(process.execPath, args, {
      env: {
        PATH: process.env.PATH ?? '', TAS_API_KEY: CLIENT, TAS_MANAGEMENT_API_KEY: MGMT, TAS_SERVER_HOST: '127.0.0.1', TAS_SERVER_PORT: '0',
        TAS_STATE_DIR: join(dir, 'state'), TAS_KBM_CONFIG_FILE: join(dir, 'kbm.yaml'), TAS_POLICY_TRUST: join(dir, 'signer.pem'),
        TAS_SNP_EXTRA_TRUST_DIR: trust, TAS_KDS_BASE_URL: kds.url, TAS_CLIENT_RATE_LIMIT: '10000000/minute',
        TAS_AUDIT_FILE: join(dir, 'audit.jsonl'), TAS_OVERRIDE__logging__level: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    daemon.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    daemon.stderr!.on('data', (d: Buffer) => (out += d.toString()));
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

    const agent = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const wire = agent.publicKey.export({ type: 'pkcs1', format: 'der' });
    const cycle = async (): Promise<boolean> => {
      const nr = await fetch(`${base}/kb/v0/get_nonce`, { headers: { 'x-api-key': CLIENT } });
      const { nonce } = (await nr.json()) as { nonce: string };
      const report = await sign(createHash('sha512').update(nonce).update(wire).digest());
      const r = await fetch(`${base}/kb/v0/get_secret`, {
        method: 'POST', headers: { 'x-api-key': CLIENT, 'content-type': 'application/json' },
        body: JSON.stringify({ nonce: JSON.stringify(nonce), 'policy-id': 'bench', 'report-data-binding': true, 'tee-evidence': report.toString('base64'), 'tee-type': 'amd-sev-snp', 'wrapping-key': wire.toString('base64') }),
      });
      const body = (await r.json()) as { secret_key?: { wrapped_key: string } };
      if (r.status !== 200 || !body.secret_key) return false;
      privateDecrypt({ key: agent.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from(body.secret_key.wrapped_key, 'base64'));
      return true;
    };
    for (let i = 0; i < 20; i++) if (!(await cycle())) throw new Error(`warm-up cycle refused: ${out}`);

    const verifyMs = verifyCostMs();
    log(`one ECDSA-P384 verify (SHA-384, 672 bytes) in this run: ${(verifyMs * 1000).toFixed(0)} µs CPU`);
    log('concurrency  cycles  cycles/s   p50 ms   p99 ms  daemon CPU ms/cycle  ÷ one verify');
    const results: LevelResult[] = [];
    for (const c of opts.levels) {
      const lat: number[] = [];
      let errors = 0;
      let firstError: string | undefined;
      const stopAt = Date.now() + opts.seconds * 1000;
      const cpu0 = cpuMs(daemon.pid!);
      const split0 = cpuSplit(daemon.pid!);
      const t0 = performance.now();
      await Promise.all(Array.from({ length: c }, async () => {
        while (Date.now() < stopAt) {
          const s = performance.now();
          try {
            if (await cycle()) lat.push(performance.now() - s);
            else errors++;
          } catch (e) {
            errors++;
            firstError ??= `${(e as Error).message}: ${String((e as { cause?: unknown }).cause)}`;
          }
        }
      }));
      const wall = (performance.now() - t0) / 1000;
      const cpu = cpuMs(daemon.pid!) - cpu0;
      const split1 = cpuSplit(daemon.pid!);
      const kernelShare = (split1.system - split0.system) / Math.max(1, cpu);
      lat.sort((a, b) => a - b);
      const r: LevelResult = { concurrency: c, cycles: lat.length, perSecond: lat.length / wall, p50: pct(lat, 50), p99: pct(lat, 99), cpuPerCycle: cpu / Math.max(1, lat.length), ratio: cpu / Math.max(1, lat.length) / verifyMs, errors };
      results.push(r);
      log(`${String(c).padStart(11)}  ${String(r.cycles).padStart(6)}  ${r.perSecond.toFixed(1).padStart(8)}  ${r.p50.toFixed(1).padStart(7)}  ${r.p99.toFixed(1).padStart(7)}  ${r.cpuPerCycle.toFixed(2).padStart(19)}  ${r.ratio.toFixed(2).padStart(12)}  kernel ${(100 * kernelShare).toFixed(0)}%${errors ? `  (${errors} errors; first: ${firstError})` : ''}`);
    }
    return { verifyMs, results };
  } finally {
    signer?.kill();
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon!.once('exit', r));
    }
    await kds.stop();
    rmSync(dir, { recursive: true, force: true });
  }
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
  runBench({ seconds, levels }).then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
