/**
 * Connection exhaustion without a key (issue 14, finding 1): one address opens 2,000 connections
 * that never finish their request head, and re-opens every one the server closes, while a
 * legitimate agent on another address (127.0.0.2) attests and must get its secret. Against
 * `tas serve` (the shipped entry point) on Redis, the SNP verifier, the fake KDS and the mock broker.
 *
 * Before the per-peer caps, ~1,030 such connections filled the listener's global cap and every new
 * client was reset. Now each peer may hold a bounded number of open and of header-incomplete
 * connections (src/http/connections.ts); the rest are refused at accept.
 *
 * Budget: about 30 s (the flood is held for the agent's three attestations, then released).
 * Figures printed: connections the attacker attempted, those the server held at most at once,
 * refused by the caps (server counters), and the agent's latency per attestation.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { Agent, fetch as ufetch } from 'undici';
import { serverLimits } from '../../src/http/limits';
import { CLIENT_KEY, MGMT_KEY } from '../support/daemon';
import { createLab, policyDoc, reportData, SECRET, storePolicy, agentBody, decryptReply, type Lab } from '../support/lab';
import { startPlain, type RedisNode } from '../support/redis';
import { pooledKeys, sleep, spawnServe, type ServeChild } from '../support/fleet';

const FLOOD = 2000;
const HEAD = 'POST /kb/v0/get_secret HTTP/1.1\r\nhost: tas\r\ncontent-type: application/json\r\n';

/** Flood keeps FLOOD header-incomplete connections open from 127.0.0.1, re-opening each one the server closes. */
class Flood {
  attempted = 0;
  closedByServer = 0;
  maxHeld = 0;
  private open = new Set<Socket>();
  private stopped = false;

  constructor(private readonly port: number) {}

  start(): void {
    for (let i = 0; i < FLOOD; i++) this.one(0);
  }

  /** held is the number of attacker sockets the server has accepted and not closed. */
  get held(): number {
    return this.open.size;
  }

  private one(delayMs: number): void {
    if (this.stopped) return;
    const go = (): void => {
      if (this.stopped) return;
      this.attempted++;
      const s = connect({ port: this.port, host: '127.0.0.1', localAddress: '127.0.0.1' });
      let up = false;
      s.on('connect', () => {
        up = true;
        this.open.add(s);
        s.write(HEAD); // and never the blank line that ends the head
      });
      s.on('error', () => undefined);
      s.on('close', () => {
        this.open.delete(s);
        if (this.stopped) return;
        if (up) this.closedByServer++;
        // Re-open, as an attacker resending every few seconds would; a short pause so the test's
        // own CPU does not starve the daemon on a shared 2-core box.
        this.one(250);
      });
    };
    if (delayMs > 0) setTimeout(go, delayMs).unref();
    else go();
  }

  sample(): void {
    this.maxHeld = Math.max(this.maxHeld, this.held);
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.open) s.destroy();
    this.open.clear();
  }
}

describe('hostile: a half-open connection flood from one address while an agent attests', function () {
  this.timeout(120_000); // budget ≤ 60 s of work; the rest is start-up on a busy machine
  let redis: RedisNode & { url: string };
  let lab: Lab;
  let tas: ServeChild;
  let port: number;

  before(async () => {
    redis = await startPlain();
    lab = await createLab({ env: { TAS_STORE: 'redis', TAS_REDIS_URL: redis.url }, products: ['Genoa'] });
    assert.equal((await storePolicy(lab, policyDoc('flood-p'))).status, 201);
    tas = await spawnServe(lab.env);
    port = Number(new URL(tas.url).port);
  });
  after(async () => {
    await tas?.stop();
    await lab?.close();
    await redis?.stop();
  });

  it(`an agent on 127.0.0.2 gets its secret three times while 127.0.0.1 holds ${FLOOD} header-incomplete connections`, async () => {
    // The agent's own address: the flood's peer caps must not touch it.
    const agentDispatcher = new Agent({ pipelining: 0, localAddress: '127.0.0.2' });
    const flood = new Flood(port);
    const sampler = setInterval(() => flood.sample(), 20);
    const latencies: number[] = [];
    try {
      flood.start();
      // Let every one of the 2,000 connects resolve (accepted, or refused and re-opening) first.
      for (let i = 0; i < 200 && flood.attempted - flood.held < FLOOD / 2 && flood.held < FLOOD; i++) await sleep(50);
      await sleep(1000);
      for (let round = 0; round < 3; round++) {
        const t0 = Date.now();
        const n = await ufetch(`${tas.url}/kb/v0/get_nonce`, { headers: { 'x-api-key': CLIENT_KEY }, dispatcher: agentDispatcher }).catch(async (e: Error) => {
          const why = await ufetch(`${tas.url}/management/status`, { headers: { 'x-management-api-key': MGMT_KEY }, dispatcher: agentDispatcher })
            .then(async (r) => JSON.stringify(((await r.json()) as { edge: unknown }).edge), (e2: Error) => `status unreachable too: ${e2.message}`);
          throw new Error(`get_nonce during the flood (round ${round}, ${flood.attempted} attempts, ${flood.held} held): ${e.message} ${String((e.cause as Error | undefined)?.message)}; edge: ${why}; daemon exit ${String(tas.child.exitCode)}; last lines:\n${tas.lines().slice(-5).join('\n').slice(0, 3000)}`);
        });
        assert.equal(n.status, 200, `get_nonce during the flood: ${n.status}`);
        const nonce = ((await n.json()) as { nonce: string }).nonce;
        const keys = pooledKeys();
        const report = lab.kits.Genoa.signReport({ reportData: reportData(nonce, keys.wire, true) });
        const r = await ufetch(`${tas.url}/kb/v0/get_secret`, {
          method: 'POST', dispatcher: agentDispatcher,
          headers: { 'x-api-key': CLIENT_KEY, 'content-type': 'application/json' },
          body: agentBody({ nonce, report, keys, policyId: 'flood-p' }),
        });
        const body = (await r.json()) as Record<string, unknown>;
        assert.equal(r.status, 200, `get_secret during the flood: ${r.status} ${JSON.stringify(body)}`);
        assert.equal(decryptReply(body, keys), SECRET);
        latencies.push(Date.now() - t0);
        await sleep(1000); // the flood keeps re-opening in between
      }
      const status = await ufetch(`${tas.url}/management/status`, { headers: { 'x-management-api-key': MGMT_KEY }, dispatcher: agentDispatcher });
      assert.equal(status.status, 200);
      type Conns = { open: number; peak_open: number; header_incomplete: number; refused: { open: number; header_incomplete: number }; header_timeouts: number };
      const c = ((await status.json()) as { edge: { connections: Conns } }).edge.connections;
      const refused = c.refused.open + c.refused.header_incomplete;
      console.log(`      flood: ${flood.attempted} connections attempted from one address (client saw at most ${flood.maxHeld} connected at once, ` +
        `${flood.closedByServer} closed by the server); server: at most ${c.peak_open} open at once, ${refused} refused by the per-peer caps ` +
        `${JSON.stringify(c.refused)}, ${c.header_timeouts} header timeouts; agent (127.0.0.2) nonce + get_secret: ${latencies.join(', ')} ms`);
      assert.ok(flood.attempted >= FLOOD, `the attacker made ${flood.attempted} attempts`);
      // The server held a bounded number of the attacker's connections, never the 2,000: the peak is
      // the per-peer open cap plus the agent's and this status request's connections.
      assert.ok(refused >= FLOOD - 200, `refused only ${refused}`);
      assert.ok(c.peak_open <= serverLimits.maxConnectionsPerPeer + 4, `the server held ${c.peak_open} connections at once`);
      assert.equal(tas.child.exitCode, null, 'the daemon is alive');
    } finally {
      clearInterval(sampler);
      flood.stop();
      await agentDispatcher.close();
    }
  });
});
