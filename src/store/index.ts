/**
 * Public surface of the state store: `openStore(cfg, log)` builds the backend `store.backend`
 * names. Everything else the daemon needs is the Store interface (./types).
 */
import type { Logger } from 'pino';
import type { Config } from '../config';
import { EmbeddedStore } from './embedded';
import { RedisStore, resolveRedisOptions } from './redis';
import { REDIS_DEFAULT_PREFIX, REDIS_DEFAULT_URL } from './settings';
import type { Store } from './types';

export type * from './types';
export { NONCE_RE, POLICY_ID_RE, BLOB_KEY_RE, CONSUMED_MARKER_MIN_MS } from './types';
export { assertNonce, assertPolicyId } from './validate';
export { EmbeddedStore } from './embedded';
export type { EmbeddedOptions, Clock } from './embedded';
export { RedisStore, resolveRedisOptions } from './redis';
export type { RedisStoreOptions, RedisSettings } from './redis';

/** StoreOpenError is a configuration problem found while opening the store (startup exits 2). */
export class StoreOpenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreOpenError';
  }
}

/**
 * openStore opens the configured backend. The Redis backend connects in the background: an
 * unreachable server does not stop startup, it shows in health() (/readyz) and every operation
 * answers STORE_UNAVAILABLE until it is back.
 */
export function openStore(cfg: Config, log: Logger): Store {
  const backend = cfg.get<'embedded' | 'redis'>('store.backend');
  if (backend === 'embedded') {
    const store = new EmbeddedStore({ stateDir: cfg.get<string>('store.state_dir'), cacheDir: cfg.get<string>('kds.cache_dir'), log });
    log.info({ store: store.info }, 'store: embedded');
    return store;
  }
  let opts;
  try {
    opts = resolveRedisOptions({
      url: cfg.get<string | undefined>('redis.url') ?? REDIS_DEFAULT_URL,
      host: cfg.get<string | undefined>('redis.host'),
      port: cfg.get<number | undefined>('redis.port'),
      username: cfg.get<string | undefined>('redis.username'),
      password: cfg.get<string | undefined>('redis.password'),
      caFile: cfg.get<string | undefined>('redis.tls.ca_file'),
      certFile: cfg.get<string | undefined>('redis.tls.cert_file'),
      keyFile: cfg.get<string | undefined>('redis.tls.key_file'),
      sentinels: cfg.get<string[] | undefined>('redis.sentinels'),
      sentinelName: cfg.get<string | undefined>('redis.sentinel_name'),
      clusterNodes: cfg.get<string[] | undefined>('redis.cluster_nodes'),
      keyPrefix: cfg.get<string | undefined>('redis.key_prefix') ?? REDIS_DEFAULT_PREFIX,
      waitReplicas: cfg.get<number | undefined>('redis.wait_replicas') ?? 0,
    });
  } catch (e) {
    throw new StoreOpenError((e as Error).message);
  }
  const store = new RedisStore({ ...opts, log });
  log.info({ store: store.info }, 'store: redis');
  return store;
}
