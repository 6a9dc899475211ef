/** Helpers shared by the Redis store tests: store factories and a keyspace snapshot. */
import Redis, { Cluster } from 'ioredis';
import { RedisStore, resolveRedisOptions, type RedisSettings } from '../../src/store';

/** openRedisStore builds a RedisStore from settings as the daemon would (short timeouts for tests). */
export function openRedisStore(s: Partial<RedisSettings> & { url: string }, extra: { commandTimeoutMs?: number; waitTimeoutMs?: number } = {}): RedisStore {
  return new RedisStore({ ...resolveRedisOptions({ keyPrefix: 'tas:', waitReplicas: 0, ...s }), commandTimeoutMs: 2000, ...extra });
}

/** snapshot lists every key of every node with its type, value and whether it has a TTL. */
export async function snapshotKeys(client: Redis): Promise<string[]> {
  const out: string[] = [];
  for (const k of (await client.keys('*')).sort()) {
    const type = await client.type(k);
    let v: unknown;
    if (type === 'string') v = await client.get(k);
    else if (type === 'hash') v = await client.hgetall(k);
    else if (type === 'zset') v = await client.zrange(k, '0', '-1', 'WITHSCORES');
    else v = type;
    out.push(`${k} ${type} ${JSON.stringify(v)} ttl=${(await client.pttl(k)) > 0}`);
  }
  return out;
}

/** snapshotCluster snapshots every master of a cluster. */
export async function snapshotCluster(c: Cluster): Promise<string[]> {
  const all: string[] = [];
  for (const n of c.nodes('master')) all.push(...(await snapshotKeys(n)));
  return all.sort();
}
