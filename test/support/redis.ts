/**
 * Redis harness: starts real `redis-server` processes (Debian's redis-server, built with TLS) on
 * free loopback ports in temp directories and stops them. Topologies: plain, ACL (default user
 * off, `tas` limited to `~tas:*` without dangerous commands), TLS (openssl-generated CA, server
 * and client certificates, plus a stranger CA), replicated (master + replica), Sentinel (master,
 * replica, three sentinels) and Cluster (three masters). A missing redis-server fails the test.
 * Use one topology per test file: start in before(), stop in after().
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** ACL_USER / ACL_PASSWORD: the restricted user of the ACL topology. */
export const ACL_USER = 'tas';
export const ACL_PASSWORD = 'tas-acl-password-0123456789';
/** ADMIN_PASSWORD: the harness' own all-powerful user (`admin`) on the ACL topology. */
export const ADMIN_PASSWORD = 'admin-password-0123456789';

/** freePort finds a free loopback TCP port (with its +10000 cluster bus port free too when asked). */
export async function freePort(withBus = false): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await listenOnce(0);
    if (!withBus) return p;
    if (p + 10000 < 65536 && (await listenOnce(p + 10000).then(() => true, () => false))) return p;
  }
  throw new Error('no free port pair');
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : port));
    });
  });
}

/** waitForPort polls until something accepts TCP connections on the port. */
async function waitForPort(port: number, proc: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`redis-server on ${port} did not start: ${log()}`);
}

/** RedisNode is one running redis-server (or sentinel). */
export interface RedisNode {
  readonly port: number;
  readonly dir: string;
  stop(): Promise<void>;
}

/** startNode writes conf into a fresh directory and runs `redis-server conf [--sentinel]`. */
export async function startNode(conf: (port: number, dir: string) => string, opts: { sentinel?: boolean; bus?: boolean; listenPort?: number } = {}): Promise<RedisNode> {
  const port = opts.listenPort ?? (await freePort(opts.bus));
  const dir = mkdtempSync(join(tmpdir(), 'tas-redis-'));
  const file = join(dir, 'redis.conf');
  const base = [`bind 127.0.0.1`, `dir ${dir}`, `daemonize no`, `save ""`, `appendonly no`, `logfile ""`, `loglevel warning`];
  writeFileSync(file, `${base.join('\n')}\n${conf(port, dir)}\n`);
  let out = '';
  const proc = spawn('redis-server', [file, ...(opts.sentinel ? ['--sentinel'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  proc.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  proc.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  const spawnError = new Promise<never>((_, reject) => proc.once('error', (e) => reject(new Error(`cannot run redis-server (apt-get install redis-server): ${e.message}`))));
  await Promise.race([waitForPort(opts.listenPort ?? port, proc, () => out), spawnError]);
  return {
    port,
    dir,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
        await gone;
        clearTimeout(t);
      }
      children.delete(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** startPlain: one unauthenticated server. */
export async function startPlain(extra = ''): Promise<RedisNode & { url: string }> {
  const n = await startNode((port) => `port ${port}\n${extra}`);
  return { ...n, url: `redis://127.0.0.1:${n.port}` };
}

/** startAcl: default user off; `tas` may touch only `tas:*` keys and no dangerous command. */
export async function startAcl(): Promise<RedisNode & { url: string }> {
  const n = await startNode((port, dir) => {
    writeFileSync(
      join(dir, 'users.acl'),
      [
        'user default off',
        `user ${ACL_USER} on >${ACL_PASSWORD} ~tas:* resetchannels -@all +@read +@write +@scripting +@connection +@transaction -@dangerous +info +time`,
        `user admin on >${ADMIN_PASSWORD} ~* &* +@all`,
      ].join('\n') + '\n',
    );
    return `port ${port}\naclfile ${join(dir, 'users.acl')}`;
  });
  return { ...n, url: `redis://127.0.0.1:${n.port}` };
}

/** Pki: files of a throw-away CA, the server and client certificates, and a stranger CA. */
export interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  wrongCa: string;
}

/** makePki generates the certificates with openssl (EC P-256: fast). */
export function makePki(dir: string): Pki {
  const o = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const key = (name: string): void => o('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name);
  key('ca.key');
  o('req', '-x509', '-new', '-key', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=tas test redis CA');
  key('wrong-ca.key');
  o('req', '-x509', '-new', '-key', 'wrong-ca.key', '-out', 'wrong-ca.crt', '-days', '2', '-subj', '/CN=stranger CA');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    key(`${who}.key`);
    o('req', '-new', '-key', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who === 'server' ? 'localhost' : 'tas'}`);
    o('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.crt`, '-days', '2', '-extfile', `${who}.ext`);
  }
  const p = (f: string): string => join(dir, f);
  return { dir, ca: p('ca.crt'), serverCert: p('server.crt'), serverKey: p('server.key'), clientCert: p('client.crt'), clientKey: p('client.key'), wrongCa: p('wrong-ca.crt') };
}

/** startTls: TLS only (no plain port); client certificates required (mutual TLS). */
export async function startTls(): Promise<RedisNode & { url: string; pki: Pki }> {
  const pkiDir = mkdtempSync(join(tmpdir(), 'tas-redis-pki-'));
  const pki = makePki(pkiDir);
  const tlsPort = await freePort();
  const n = await startNode(
    () =>
      [
        'port 0',
        `tls-port ${tlsPort}`,
        `tls-cert-file ${pki.serverCert}`,
        `tls-key-file ${pki.serverKey}`,
        `tls-ca-cert-file ${pki.ca}`,
        'tls-auth-clients yes',
        'tls-protocols "TLSv1.2 TLSv1.3"',
      ].join('\n'),
    { listenPort: tlsPort },
  );
  return {
    ...n,
    port: tlsPort,
    url: `rediss://127.0.0.1:${tlsPort}`,
    pki,
    stop: async () => {
      await n.stop();
      rmSync(pkiDir, { recursive: true, force: true });
    },
  };
}

/** Replicated is a master with one connected replica. */
export interface Replicated {
  master: RedisNode;
  replica: RedisNode;
  url: string;
  stop(): Promise<void>;
}

/** startReplicated: master + replica, returned once the replica's link is up. */
export async function startReplicated(): Promise<Replicated> {
  // No diskless-sync delay: the default waits 5 s for more replicas before the first sync.
  const master = await startNode((port) => `port ${port}\nrepl-diskless-sync-delay 0`);
  const replica = await startNode((port) => `port ${port}\nreplicaof 127.0.0.1 ${master.port}`);
  const admin = new Redis({ port: replica.port, host: '127.0.0.1', lazyConnect: true });
  try {
    await until(async () => /master_link_status:up/.test(await admin.info('replication')), 'replica in sync');
  } finally {
    admin.disconnect();
  }
  return {
    master,
    replica,
    url: `redis://127.0.0.1:${master.port}`,
    stop: async () => {
      await replica.stop();
      await master.stop();
    },
  };
}

/** SENTINEL_NAME is the master name the harness' sentinels monitor. */
export const SENTINEL_NAME = 'tasmaster';

/** Sentinel is one master, one replica and three sentinels. */
export interface SentinelSet extends Replicated {
  sentinels: RedisNode[];
  /** `host:port,...` for TAS_REDIS_SENTINELS. */
  sentinelList: string;
}

/** startSentinel starts the replicated pair and three sentinels that all know the master. */
export async function startSentinel(): Promise<SentinelSet> {
  const rep = await startReplicated();
  const sentinels: RedisNode[] = [];
  for (let i = 0; i < 3; i++) {
    sentinels.push(
      await startNode(
        (port) =>
          [
            `port ${port}`,
            `sentinel monitor ${SENTINEL_NAME} 127.0.0.1 ${rep.master.port} 2`,
            `sentinel down-after-milliseconds ${SENTINEL_NAME} 5000`,
            `sentinel failover-timeout ${SENTINEL_NAME} 10000`,
          ].join('\n'),
        { sentinel: true },
      ),
    );
  }
  for (const s of sentinels) {
    const c = new Redis({ port: s.port, host: '127.0.0.1', lazyConnect: true });
    try {
      await until(async () => {
        const r = (await c.call('SENTINEL', 'get-master-addr-by-name', SENTINEL_NAME)) as string[] | null;
        return Array.isArray(r) && r[1] === String(rep.master.port);
      }, 'sentinel knows the master');
    } finally {
      c.disconnect();
    }
  }
  return {
    ...rep,
    sentinels,
    sentinelList: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
    stop: async () => {
      for (const s of sentinels) await s.stop();
      await rep.stop();
    },
  };
}

/** ClusterSet is three masters sharing the 16384 slots. */
export interface ClusterSet {
  nodes: RedisNode[];
  /** `host:port,...` for TAS_REDIS_CLUSTER_NODES. */
  nodeList: string;
  stop(): Promise<void>;
}

/** startCluster starts three cluster-enabled servers and joins them with redis-cli --cluster create. */
export async function startCluster(): Promise<ClusterSet> {
  const nodes: RedisNode[] = [];
  for (let i = 0; i < 3; i++) {
    nodes.push(await startNode((port, dir) => `port ${port}\ncluster-enabled yes\ncluster-config-file ${join(dir, 'nodes.conf')}\ncluster-node-timeout 5000`, { bus: true }));
  }
  execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'pipe' });
  for (const n of nodes) {
    const c = new Redis({ port: n.port, host: '127.0.0.1', lazyConnect: true });
    try {
      await until(async () => /cluster_state:ok/.test(String(await c.call('CLUSTER', 'INFO'))), 'cluster state ok');
    } finally {
      c.disconnect();
    }
  }
  return {
    nodes,
    nodeList: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    stop: async () => {
      for (const n of nodes) await n.stop();
    },
  };
}

/** until polls cond (errors count as false) every 50 ms for up to 15 s. */
export async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      if (await cond()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}
