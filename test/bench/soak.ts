/**
 * Soak (not part of `npm test` at full length; test/bench/soak.test.ts runs 20 s of it): N minutes
 * of mixed traffic against a `tas serve` child on a real Redis — agent boots that get their secret,
 * get_secret refusals (wrong REPORT_DATA), bare get_nonce, management policy list — from a few
 * concurrent clients, reporting throughput, p50/p99 latency per kind, the child's RSS over time,
 * event-loop delay (prom-client's nodejs_eventloop_lag_p99_seconds from /metrics) and error counts.
 * Run: `node --import tsx test/bench/soak.ts [minutes=5] [clients=4]`.
 */
import { MGMT_KEY } from '../support/daemon';
import { createLab, policyDoc, reportData, storePolicy } from '../support/lab';
import { startPlain } from '../support/redis';
import { at, nonceAt, pooledKeys, send, spawnServe, type ServeChild } from '../support/fleet';

export type Kind = 'secret_ok' | 'secret_refused' | 'nonce' | 'policy_list';

export interface Sample {
  atS: number;
  rssMiB: number;
  eventLoopP99Ms: number | undefined;
  requests: number;
}

export interface SoakResult {
  seconds: number;
  requests: number;
  throughputPerS: number;
  perKind: Record<Kind, { count: number; p50Ms: number; p99Ms: number; statuses: Record<number, number> }>;
  /** Answers that were not the expected status for their kind, and transport errors. */
  errors: number;
  errorSamples: string[];
  samples: Sample[];
  rssStartMiB: number;
  rssEndMiB: number;
  daemonAlive: boolean;
}

const EXPECTED: Record<Kind, number> = { secret_ok: 200, secret_refused: 400, nonce: 200, policy_list: 200 };

function pct(xs: number[], p: number): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! * 10) / 10;
}

async function eventLoopP99(tas: ServeChild): Promise<number | undefined> {
  try {
    const text = await (await fetch(`${tas.url}/metrics`)).text();
    const m = /^nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(text);
    return m ? Math.round(Number(m[1]) * 1e5) / 100 : undefined;
  } catch {
    return undefined;
  }
}

/** soak runs the mixed traffic for `seconds` and returns the figures (samples every `sampleS`). */
export async function soak(o: { seconds: number; clients?: number; sampleS?: number; log?: (s: string) => void }): Promise<SoakResult> {
  const clients = o.clients ?? 4;
  const sampleS = o.sampleS ?? Math.max(2, Math.round(o.seconds / 12));
  const log = o.log ?? (() => undefined);
  const redis = await startPlain();
  const lab = await createLab({ env: { TAS_STORE: 'redis', TAS_REDIS_URL: redis.url }, products: ['Genoa'] });
  let tas: ServeChild | undefined;
  try {
    if ((await storePolicy(lab, policyDoc('soak-p'))).status !== 201) throw new Error('policy store failed');
    tas = await spawnServe(lab.env);
    const t = tas;
    const lat: Record<Kind, number[]> = { secret_ok: [], secret_refused: [], nonce: [], policy_list: [] };
    const statuses: Record<Kind, Record<number, number>> = { secret_ok: {}, secret_refused: {}, nonce: {}, policy_list: {} };
    const errorSamples: string[] = [];
    let errors = 0;
    let requests = 0;
    const note = (k: Kind, status: number, ms: number, detail = ''): void => {
      requests++;
      lat[k].push(ms);
      statuses[k][status] = (statuses[k][status] ?? 0) + 1;
      if (status !== EXPECTED[k]) {
        errors++;
        if (errorSamples.length < 10) errorSamples.push(`${k}: ${status} ${detail}`);
      }
    };
    const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
      const s = performance.now();
      const r = await fn();
      return [r, performance.now() - s];
    };
    const one = async (i: number): Promise<void> => {
      const kind: Kind = (['secret_ok', 'secret_ok', 'secret_refused', 'nonce', 'policy_list'] as const)[i % 5]!;
      try {
        if (kind === 'nonce') {
          const [r, ms] = await timed(() => nonceAt(t.url));
          note(kind, r.status, ms);
        } else if (kind === 'policy_list') {
          const [r, ms] = await timed(async () => {
            const res = await fetch(`${t.url}/management/policy/v0/list`, { headers: { 'x-management-api-key': MGMT_KEY } });
            await res.arrayBuffer();
            return res;
          });
          note(kind, r.status, ms);
        } else {
          const n = await nonceAt(t.url);
          if (n.status !== 200) return note('nonce', n.status, 0, 'get_nonce before get_secret');
          const keys = pooledKeys();
          // Refused kind: REPORT_DATA bound to other bytes than the wrapping key sent (400, nonce burnt).
          const bound = reportData(n.nonce!, kind === 'secret_ok' ? keys.wire : Buffer.from('not the wrapping key'), true);
          const report = lab.kits.Genoa.signReport({ reportData: bound });
          const [r, ms] = await timed(() => send(at(lab, t.url), { nonce: n.nonce!, report, keys, policyId: 'soak-p' }));
          note(kind, r.status, ms, JSON.stringify(r.body).slice(0, 100));
        }
      } catch (e) {
        errors++;
        if (errorSamples.length < 10) errorSamples.push(`${kind}: ${(e as Error).message}`);
      }
    };
    const samples: Sample[] = [];
    const t0 = Date.now();
    const sample = async (): Promise<void> => {
      const s = { atS: Math.round((Date.now() - t0) / 100) / 10, rssMiB: Math.round(t.rssKb() / 102.4) / 10, eventLoopP99Ms: await eventLoopP99(t), requests };
      samples.push(s);
      log(`  t=${s.atS}s rss=${s.rssMiB} MiB event-loop p99=${s.eventLoopP99Ms ?? '?'} ms requests=${s.requests}`);
    };
    await sample();
    const timer = setInterval(() => void sample(), sampleS * 1000);
    const end = t0 + o.seconds * 1000;
    let seq = 0;
    await Promise.all(Array.from({ length: clients }, async () => {
      while (Date.now() < end) await one(seq++);
    }));
    clearInterval(timer);
    await sample();
    const seconds = (Date.now() - t0) / 1000;
    const perKind = Object.fromEntries((Object.keys(lat) as Kind[]).map((k) => [k, { count: lat[k].length, p50Ms: pct(lat[k], 50), p99Ms: pct(lat[k], 99), statuses: statuses[k] }])) as SoakResult['perKind'];
    return {
      seconds: Math.round(seconds * 10) / 10, requests, throughputPerS: Math.round((requests / seconds) * 10) / 10, perKind, errors, errorSamples, samples,
      rssStartMiB: samples[0]!.rssMiB, rssEndMiB: samples.at(-1)!.rssMiB, daemonAlive: t.child.exitCode === null,
    };
  } finally {
    await tas?.stop();
    await lab.close();
    await redis.stop();
  }
}

if (require.main === module) {
  const minutes = Number(process.argv[2] ?? 5);
  const clients = Number(process.argv[3] ?? 4);
  console.log(`soak: ${minutes} min, ${clients} clients, tas serve on Redis`);
  soak({ seconds: minutes * 60, clients, log: (s) => console.log(s) }).then((r) => {
    const { samples, ...rest } = r;
    void samples;
    console.log(JSON.stringify(rest, null, 2));
    process.exitCode = r.errors === 0 && r.daemonAlive ? 0 : 1;
  }, (e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
