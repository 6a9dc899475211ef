/**
 * HTTP metrics. Labels are bounded by construction: the route label is the registered route
 * PATTERN (request.routeOptions.url), never the raw URL, and anything unmatched is "unmatched";
 * methods outside a fixed set are "OTHER". A client can therefore never create new series.
 */
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Edge } from './edge';

const METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH']);

interface HttpMetrics {
  requests: Counter<'route' | 'method' | 'status'>;
  duration: Histogram<'route' | 'method' | 'status'>;
}

const byRegistry = new WeakMap<Registry, HttpMetrics>();

/** httpMetrics returns the metrics of a registry, creating them once (several listeners share them). */
function httpMetrics(registry: Registry, edge: Edge): HttpMetrics {
  let m = byRegistry.get(registry);
  if (m) return m;
  m = {
    requests: new Counter({ name: 'tas_http_requests_total', help: 'HTTP requests by route pattern, method and status.', labelNames: ['route', 'method', 'status'], registers: [registry] }),
    duration: new Histogram({
      name: 'tas_http_request_duration_seconds', help: 'HTTP request duration by route pattern, method and status.',
      labelNames: ['route', 'method', 'status'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry],
    }),
  };
  new Gauge({ name: 'tas_http_inflight', help: 'Requests currently holding an in-flight slot (TAS_MAX_INFLIGHT).', registers: [registry], collect() { this.set(edge.inflight.inflight); } });
  // Cumulative numbers are counters named _total (rate() works, resets show as restarts), advanced
  // at scrape time to the edge's own running count.
  const seen = new Map<string, number>();
  const advance = (c: Counter<string>, key: string, now: number, labels?: Record<string, string>): void => {
    const before = seen.get(key) ?? 0;
    if (now > before) {
      if (labels) c.inc(labels, now - before);
      else c.inc(now - before);
    }
    seen.set(key, now);
  };
  new Counter({
    name: 'tas_http_inflight_refused_total', help: 'Requests refused because TAS_MAX_INFLIGHT was reached.', registers: [registry],
    collect() {
      advance(this, 'inflight', edge.inflight.refused);
    },
  });
  new Counter({
    name: 'tas_http_connections_refused_total', help: 'Connections destroyed at accept by the per-peer caps (reason: open, header_incomplete).',
    labelNames: ['reason'], registers: [registry],
    collect() {
      for (const [reason, n] of Object.entries(edge.connectionStats.refused)) advance(this, `refused:${reason}`, n, { reason });
    },
  });
  new Counter({
    name: 'tas_http_header_timeouts_total', help: 'Connections closed because their first request head did not arrive in time.', registers: [registry],
    collect() {
      advance(this, 'header', edge.connectionStats.headerTimeouts);
    },
  });
  byRegistry.set(registry, m);
  return m;
}

/** routeLabel is the label value for a request: its route pattern or "unmatched". */
export function routeLabel(request: { is404: boolean; routeOptions: { url?: string | undefined } }): string {
  return request.is404 || request.routeOptions.url === undefined ? 'unmatched' : request.routeOptions.url;
}

/** installMetrics counts every response. */
export function installMetrics(app: FastifyInstance, registry: Registry, edge: Edge): void {
  const m = httpMetrics(registry, edge);
  // The labelled series of each (route, method, status), looked up once: prom-client otherwise
  // hashes the label set on every inc/observe. Bounded like the labels themselves.
  const series = new Map<string, { requests: { inc(): void }; duration: { observe(v: number): void } }>();
  app.addHook('onResponse', (request, reply, done) => {
    const route = routeLabel(request);
    const method = METHODS.has(request.method) ? request.method : 'OTHER';
    const key = `${method} ${reply.statusCode} ${route}`;
    let s = series.get(key);
    if (s === undefined) {
      const labels = { route, method, status: String(reply.statusCode) };
      s = { requests: m.requests.labels(labels), duration: m.duration.labels(labels) };
      series.set(key, s);
    }
    s.requests.inc();
    s.duration.observe(reply.elapsedTime / 1000);
    done();
  });
}
