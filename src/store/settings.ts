/**
 * Settings of the state store (PROTOCOL.md §5): backend choice, embedded directories and every
 * Redis connection knob. Redis settings have computed defaults that exist only when
 * `store.backend` is `redis`, so that "a TAS_REDIS_* setting without TAS_STORE=redis" can be told
 * apart from a default and refused: silently ignoring it would run an unshared store on a fleet.
 */
import { join } from 'node:path';
import { registerSettings, type DefaultContext } from '../config/registry';

/** REDIS_SETTING_PATHS are the settings that only mean something with the Redis backend. */
export const REDIS_SETTING_PATHS = [
  'redis.url',
  'redis.host',
  'redis.port',
  'redis.username',
  'redis.password',
  'redis.tls.ca_file',
  'redis.tls.cert_file',
  'redis.tls.key_file',
  'redis.sentinels',
  'redis.sentinel_name',
  'redis.cluster_nodes',
  'redis.key_prefix',
  'redis.wait_replicas',
] as const;

/** Defaults that PROTOCOL.md §5 names; applied only when the Redis backend is chosen. */
export const REDIS_DEFAULT_URL = 'redis://127.0.0.1:6379';
export const REDIS_DEFAULT_PREFIX = 'tas:';

const whenRedis = (v: unknown) => (c: DefaultContext): unknown => (c.get('store.backend') === 'redis' ? v : undefined);

/** firstDir takes the first entry of a systemd `*_DIRECTORY` variable (colon separated when several). */
function firstDir(v: string | undefined): string | undefined {
  const d = v?.split(':')[0];
  return d === undefined || d === '' ? undefined : d;
}

const hostPortList = (v: unknown): string | undefined => {
  for (const e of v as string[]) {
    if (!/^[A-Za-z0-9.-]+:\d{1,5}$/.test(e) && !/^\[[0-9A-Fa-f:.]+\]:\d{1,5}$/.test(e)) return `'${e}' is not host:port`;
    const port = Number(e.slice(e.lastIndexOf(':') + 1));
    if (port < 1 || port > 65535) return `'${e}' has a port outside 1..65535`;
  }
  return (v as string[]).length === 0 ? 'must name at least one host:port' : undefined;
};

registerSettings('store', [
  {
    path: 'store.backend',
    env: ['TAS_STORE'],
    type: 'enum',
    values: ['embedded', 'redis'],
    default: 'embedded',
    section: 'Stores',
    doc: '`embedded` (single node: nonces in memory, policies as files) or `redis` (a fleet shares nonces, policies and rate limits).',
    check: (v, get) => {
      if (v === 'redis') return undefined;
      const set = REDIS_SETTING_PATHS.filter((p) => get(p) !== undefined);
      return set.length ? `Redis settings (${set.join(', ')}) are set but the store backend is '${String(v)}': set TAS_STORE=redis or remove them` : undefined;
    },
  },
  {
    path: 'store.state_dir',
    env: ['TAS_STATE_DIR'],
    type: 'path',
    default: (c: DefaultContext) => firstDir(c.env.STATE_DIRECTORY) ?? './.tas/state',
    defaultDoc: '`$STATE_DIRECTORY`, else `./.tas/state`',
    section: 'Stores',
    doc: 'Directory of the embedded store (policies as files written atomically).',
  },
  {
    path: 'kds.cache_dir',
    env: ['TAS_CACHE_DIR'],
    type: 'path',
    default: (c: DefaultContext) => firstDir(c.env.CACHE_DIRECTORY) ?? join(String(c.get('store.state_dir')), 'cache'),
    defaultDoc: '`$CACHE_DIRECTORY`, else `<state>/cache`',
    section: 'Stores',
    doc: 'Persistent certificate cache of the embedded store.',
  },
  {
    path: 'redis.url',
    env: ['TAS_REDIS_URL'],
    type: 'string',
    default: whenRedis(REDIS_DEFAULT_URL),
    defaultDoc: '`redis://127.0.0.1:6379` (with TAS_STORE=redis)',
    section: 'Stores',
    doc: '`redis://[user:pass@]host:port[/db]`, or `rediss://` for TLS.',
    check: (v) => (/^rediss?:\/\/[^\s]+$/.test(String(v)) ? undefined : 'must be a redis:// or rediss:// URL'),
  },
  { path: 'redis.host', env: ['TAS_REDIS_HOST'], type: 'string', section: 'Stores', doc: 'Redis host; replaces the host of TAS_REDIS_URL.' },
  { path: 'redis.port', env: ['TAS_REDIS_PORT'], type: 'integer', min: 1, max: 65535, section: 'Stores', doc: 'Redis port; replaces the port of TAS_REDIS_URL.' },
  { path: 'redis.username', env: ['TAS_REDIS_USERNAME'], type: 'string', section: 'Stores', doc: 'Redis ACL user.' },
  { path: 'redis.password', env: ['TAS_REDIS_PASSWORD'], type: 'secret', section: 'Stores', doc: 'Password of the Redis ACL user (or of `default`).' },
  { path: 'redis.tls.ca_file', env: ['TAS_REDIS_TLS_CA_FILE'], type: 'path', section: 'Stores', doc: 'CA certificate(s) that sign the Redis server certificate; turns on TLS.' },
  {
    path: 'redis.tls.cert_file',
    env: ['TAS_REDIS_TLS_CERT_FILE'],
    type: 'path',
    section: 'Stores',
    doc: 'Client certificate for Redis TLS (with TAS_REDIS_TLS_KEY_FILE).',
    check: (_v, get) => (get('redis.tls.key_file') === undefined ? 'needs TAS_REDIS_TLS_KEY_FILE too' : undefined),
  },
  {
    path: 'redis.tls.key_file',
    env: ['TAS_REDIS_TLS_KEY_FILE'],
    type: 'path',
    section: 'Stores',
    doc: 'Private key of the Redis client certificate.',
    check: (_v, get) => (get('redis.tls.cert_file') === undefined ? 'needs TAS_REDIS_TLS_CERT_FILE too' : undefined),
  },
  {
    path: 'redis.sentinels',
    env: ['TAS_REDIS_SENTINELS'],
    type: 'list',
    section: 'Stores',
    doc: 'Sentinels as `host:port,...`; needs TAS_REDIS_SENTINEL_NAME.',
    check: (v, get) => hostPortList(v) ?? (get('redis.sentinel_name') === undefined ? 'needs TAS_REDIS_SENTINEL_NAME' : undefined)
      ?? (get('redis.cluster_nodes') !== undefined ? 'Sentinel and Cluster exclude each other' : undefined),
  },
  {
    path: 'redis.sentinel_name',
    env: ['TAS_REDIS_SENTINEL_NAME'],
    type: 'string',
    section: 'Stores',
    doc: 'Name of the master the sentinels monitor.',
    check: (_v, get) => (get('redis.sentinels') === undefined ? 'needs TAS_REDIS_SENTINELS' : undefined),
  },
  {
    path: 'redis.cluster_nodes',
    env: ['TAS_REDIS_CLUSTER_NODES'],
    type: 'list',
    section: 'Stores',
    doc: 'Redis Cluster seed nodes as `host:port,...`.',
    check: hostPortList,
  },
  {
    path: 'redis.key_prefix',
    env: ['TAS_REDIS_KEY_PREFIX'],
    type: 'string',
    default: whenRedis(REDIS_DEFAULT_PREFIX),
    defaultDoc: '`tas:` (with TAS_STORE=redis)',
    section: 'Stores',
    doc: 'Prefix of every key tas writes (an ACL user can be limited to `~<prefix>*`).',
    // Braces would start a Cluster hash tag and break the slot layout of the key names.
    check: (v) => (/^[A-Za-z0-9_.:/-]{1,64}$/.test(String(v)) ? undefined : 'must be 1..64 of A-Z a-z 0-9 _ . : / - (no braces)'),
  },
  {
    path: 'redis.wait_replicas',
    env: ['TAS_REDIS_WAIT_REPLICAS'],
    type: 'integer',
    min: 0,
    max: 16,
    default: whenRedis(0),
    defaultDoc: '0 (with TAS_STORE=redis)',
    section: 'Stores',
    doc: '>0: nonce and policy writes are confirmed by this many replicas (WAIT), else 503.',
    // WAIT answers for one connection's node; on Cluster the write may land on any master.
    check: (v, get) => (Number(v) > 0 && get('redis.cluster_nodes') !== undefined ? 'is not supported with TAS_REDIS_CLUSTER_NODES' : undefined),
  },
]);
