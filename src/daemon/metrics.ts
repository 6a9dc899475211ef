/**
 * Service-level metrics (docs/metrics.md lists every metric; test/daemon/metrics-doc.test.ts
 * fails when the list and the registry differ):
 *   tas_build_info{version,node,openssl}          1, for joining other series to a build
 *   tas_attestations_total{tee,outcome,reason}     one per attested request (the audit verdict)
 *   tas_verification_duration_seconds{tee,outcome} evidence verification (signatures, chains, CRLs)
 *   tas_key_release_duration_seconds{outcome}      the key broker's release call
 * Labels are bounded: tee from the registry of verifiers, outcome allow|deny|error (ok|error for
 * durations), reason from the error catalogue and the verifiers' reason codes.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EvidenceVerifier } from '../attest';
import type { AuditEvent, AuditLog } from '../audit/types';
import { VERSION } from '../version';

/** Events of the attestation pipeline that count as attestations. */
const ATTEST_EVENTS = new Set(['get_secret', 'certify']);

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface ServiceMetrics {
  /** audit wraps the pipeline's audit log: every attestation verdict is also counted. */
  audit(inner: AuditLog): AuditLog;
  /** verifier times `verify` of an evidence verifier. */
  verifier<P, E>(v: EvidenceVerifier<P, E>): EvidenceVerifier<P, E>;
  /** release times a key release. */
  release<A extends unknown[], R>(fn: (...a: A) => Promise<R>): (...a: A) => Promise<R>;
}

/** registerBuildInfo adds tas_build_info (once per registry). */
export function registerBuildInfo(registry: Registry): void {
  if (registry.getSingleMetric('tas_build_info')) return;
  const g = new Gauge({ name: 'tas_build_info', help: 'Build of this tas: version, node and OpenSSL versions (value 1).', labelNames: ['version', 'node', 'openssl'], registers: [registry] });
  g.set({ version: VERSION, node: process.versions.node, openssl: process.versions.openssl ?? 'unknown' }, 1);
}

/** serviceMetrics registers the attestation counters and latency histograms on a registry. */
export function serviceMetrics(registry: Registry): ServiceMetrics {
  registerBuildInfo(registry);
  const attestations = new Counter({
    name: 'tas_attestations_total', help: 'Attested requests by TEE, verdict (allow, deny, error) and reason code.',
    labelNames: ['tee', 'outcome', 'reason'], registers: [registry],
  });
  const verification = new Histogram({
    name: 'tas_verification_duration_seconds', help: 'Evidence verification time (signatures, certificate chains, revocation) by TEE and result.',
    labelNames: ['tee', 'outcome'], buckets: DURATION_BUCKETS, registers: [registry],
  });
  const release = new Histogram({
    name: 'tas_key_release_duration_seconds', help: 'Key broker release time (backend call and wrapping) by result.',
    labelNames: ['outcome'], buckets: DURATION_BUCKETS, registers: [registry],
  });
  const timed = async <R>(h: (ok: boolean, s: number) => void, p: () => Promise<R>): Promise<R> => {
    const t0 = process.hrtime.bigint();
    try {
      const r = await p();
      h(true, Number(process.hrtime.bigint() - t0) / 1e9);
      return r;
    } catch (e) {
      h(false, Number(process.hrtime.bigint() - t0) / 1e9);
      throw e;
    }
  };
  // Labelled children looked up once per label set: prom-client otherwise sorts and hashes the
  // labels on every inc/observe (several per attestation, #16). The label values are bounded
  // (TEE types, outcomes, reason codes), so are these maps.
  const child = <C>(m: Map<string, C>, key: string, make: () => C): C => {
    let c = m.get(key);
    if (c === undefined) {
      c = make();
      m.set(key, c);
    }
    return c;
  };
  const attestationsBy = new Map<string, { inc(): void }>();
  const verificationBy = new Map<string, { observe(v: number): void }>();
  const releaseBy = new Map<string, { observe(v: number): void }>();
  return {
    audit: (inner) => ({
      record(ev: AuditEvent): void {
        if (ATTEST_EVENTS.has(ev.event)) {
          const tee = typeof ev.details?.tee_type === 'string' ? ev.details.tee_type : 'unknown';
          child(attestationsBy, `${tee}\0${ev.outcome}\0${ev.reason}`, () => attestations.labels({ tee, outcome: ev.outcome, reason: ev.reason })).inc();
        }
        inner.record(ev);
      },
      close: () => inner.close(),
    }),
    verifier: <P, E>(v: EvidenceVerifier<P, E>): EvidenceVerifier<P, E> => {
      const observe = (ok: boolean, s: number): void => {
        const outcome = ok ? 'ok' : 'error';
        child(verificationBy, `${v.tee}\0${outcome}`, () => verification.labels({ tee: v.tee, outcome })).observe(s);
      };
      const verify: EvidenceVerifier<P, E>['verify'] = (evidence, peek, endorsements) => timed(observe, () => v.verify(evidence, peek, endorsements));
      // A proxy, so that members a verifier adds later (and private fields) keep working. Methods
      // are bound once each, not on every access (peek and endorsements run per request).
      const bound = new Map<PropertyKey, { fn: unknown; b: unknown }>();
      return new Proxy(v, {
        get(target, prop) {
          if (prop === 'verify') return verify;
          const x = Reflect.get(target, prop, target) as unknown;
          if (typeof x !== 'function') return x;
          let b = bound.get(prop);
          if (b === undefined || b.fn !== x) {
            b = { fn: x, b: (x as (...a: unknown[]) => unknown).bind(target) };
            bound.set(prop, b);
          }
          return b.b;
        },
      });
    },
    release: (fn) => {
      const observe = (ok: boolean, s: number): void => {
        const outcome = ok ? 'ok' : 'error';
        child(releaseBy, outcome, () => release.labels({ outcome })).observe(s);
      };
      return (...a) => timed(observe, () => fn(...a));
    },
  };
}
