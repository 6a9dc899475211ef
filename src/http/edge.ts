/**
 * Edge is the mutable state shared by every listener of one daemon: key rings, rate limiter,
 * in-flight cap and trusted proxies. It is built from the configuration and updated in place on
 * SIGHUP, so the listeners keep serving while keys rotate.
 */
import type { Config } from '../config';
import type { AuditLog } from '../audit/types';
import { KeyRing } from './auth';
import { parseCidr, type Cidr } from './address';
import { newConnectionStats, type ConnectionStats } from './connections';
import { InflightLimiter } from './limits';
import { MemoryRateLimitStore, RateLimiter, parseRate, type RateLimitStore } from './rate-limit';

export interface Edge {
  readonly clientKeys: KeyRing;
  readonly managementKeys: KeyRing;
  readonly rateLimiter: RateLimiter;
  readonly inflight: InflightLimiter;
  /** Counters of the per-peer connection caps of every listener (src/http/connections.ts). */
  readonly connectionStats: ConnectionStats;
  trustedProxies: readonly Cidr[];
  readonly audit: AuditLog;
  /** reload applies a new configuration (keys, rate, cap, proxies); throws and changes nothing on bad keys. */
  reload(cfg: Config): void;
}

/** createEdge builds the shared edge state; `store` defaults to the in-memory rate-limit store. */
export function createEdge(cfg: Config, audit: AuditLog, store: RateLimitStore = new MemoryRateLimitStore()): Edge {
  const min = cfg.get<number>('auth.min_key_length');
  const edge: Edge = {
    clientKeys: new KeyRing('TAS_API_KEY', cfg.get<string[]>('auth.client_keys') ?? [], min),
    managementKeys: new KeyRing('TAS_MANAGEMENT_API_KEY', cfg.get<string[]>('auth.management_keys') ?? [], min),
    rateLimiter: new RateLimiter(parseRate(cfg.get<string>('server.rate_limit')), store),
    inflight: new InflightLimiter(cfg.get<number>('server.max_inflight')),
    connectionStats: newConnectionStats(),
    trustedProxies: cfg.get<string[]>('server.trusted_proxies').map(parseCidr),
    audit,
    reload(next: Config): void {
      const m = next.get<number>('auth.min_key_length');
      const client = next.get<string[]>('auth.client_keys') ?? [];
      const mgmt = next.get<string[]>('auth.management_keys') ?? [];
      // Validate both rings before touching either: a half-applied rotation would lock operators out.
      const probe = new KeyRing('probe', client, m);
      probe.replace(mgmt, m);
      if (client.some((k) => mgmt.includes(k))) throw new Error('a management key is also a client key');
      const rate = parseRate(next.get<string>('server.rate_limit'));
      const proxies = next.get<string[]>('server.trusted_proxies').map(parseCidr);
      this.clientKeys.replace(client, m);
      this.managementKeys.replace(mgmt, m);
      this.rateLimiter.setRate(rate);
      this.inflight.setMax(next.get<number>('server.max_inflight'));
      this.trustedProxies = proxies;
    },
  };
  if (cfg.get<string[]>('auth.client_keys')?.some((k) => cfg.get<string[]>('auth.management_keys')?.includes(k))) {
    throw new Error('a management key is also a client key: keys must differ');
  }
  return edge;
}
