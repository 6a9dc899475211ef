/**
 * Public surface of the state store: `openStore(cfg, log)` builds the backend `store.backend`
 * names. Everything else the daemon needs is the Store interface (./types).
 */
import { accessSync, constants, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
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
  const opts = redisOptions(cfg);
  const store = new RedisStore({ ...opts, log });
  log.info({ store: store.info }, 'store: redis');
  return store;
}

/** redisOptions resolves the Redis settings (files read, nothing contacted); StoreOpenError on a problem. */
function redisOptions(cfg: Config): ReturnType<typeof resolveRedisOptions> {
  try {
    return resolveRedisOptions({
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
}

/**
 * checkStoreConfig finds what would stop openStore, without opening or contacting anything:
 * Redis settings (TLS files readable) for `redis`; for `embedded`, the state and cache
 * directories writable (or creatable). Returns one message per problem (`tas config check`, serve).
 */
export function checkStoreConfig(cfg: Config): string[] {
  if (cfg.get<string>('store.backend') !== 'embedded') {
    try {
      redisOptions(cfg);
      return [];
    } catch (e) {
      return [`TAS_STORE=redis: ${(e as Error).message}`];
    }
  }
  const out: string[] = [];
  for (const [env, path] of [['TAS_STATE_DIR (store.state_dir)', 'store.state_dir'], ['TAS_CACHE_DIR (kds.cache_dir)', 'kds.cache_dir']] as const) {
    const dir = cfg.get<string>(path);
    const why = unwritable(dir);
    if (why) out.push(`${env}: ${dir} ${why}: create it writable for the service user, or set another directory`);
  }
  return out;
}

/** unwritable says why files cannot be created in dir (or in the nearest existing parent that would hold it). */
function unwritable(dir: string): string | undefined {
  let d = resolve(dir);
  for (;;) {
    let st;
    try {
      st = statSync(d);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || dirname(d) === d) return `cannot be checked (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
      d = dirname(d);
      continue;
    }
    if (!st.isDirectory()) return d === resolve(dir) ? 'is not a directory' : `cannot be created (${d} is not a directory)`;
    try {
      accessSync(d, constants.W_OK | constants.X_OK);
      return undefined;
    } catch (e) {
      return d === resolve(dir) ? `is not writable (${(e as NodeJS.ErrnoException).code})` : `does not exist and cannot be created in ${d} (${(e as NodeJS.ErrnoException).code})`;
    }
  }
}
