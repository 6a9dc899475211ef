/**
 * Sentinel failover under load with TAS_REDIS_WAIT_REPLICAS=1: four daemons, agents booting
 * through all of them and a writer storing policies, while `SENTINEL FAILOVER` promotes the
 * replica. Promised (docs/fleet.md): clients see 200 or 503 + Retry-After, never another status;
 * every policy acknowledged with 201 is still there after the switch; no nonce releases twice;
 * every agent that retries gets its secret.
 */
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { MGMT_KEY, type TestDaemon } from '../support/daemon';
import { createLab, policyDoc, storePolicy, type Lab } from '../support/lab';
import { SENTINEL_NAME, startSentinel, until, type SentinelSet } from '../support/redis';
import { at, load, sleep, startPeers, Tally } from '../support/fleet';

describe('fleet: Sentinel failover under load (TAS_REDIS_WAIT_REPLICAS=1)', function () {
  this.timeout(180_000);
  let s: SentinelSet;
  let lab: Lab;
  let peers: TestDaemon[] = [];
  let urls: string[] = [];

  before(async () => {
    s = await startSentinel();
    lab = await createLab({
      env: { TAS_STORE: 'redis', TAS_REDIS_SENTINELS: s.sentinelList, TAS_REDIS_SENTINEL_NAME: SENTINEL_NAME, TAS_REDIS_WAIT_REPLICAS: '1' },
      products: ['Genoa'],
    });
    peers = await startPeers(lab, 3);
    urls = [lab.daemon.urls.main, ...peers.map((p) => p.urls.main)];
    assert.equal((await storePolicy(lab, policyDoc('fo-p'))).status, 201);
  });
  after(async () => {
    for (const p of peers) await p.close();
    await lab?.close();
    await s?.stop();
  });

  it('loses no acknowledged policy, releases no nonce twice, answers only 200 or 503 + Retry-After', async () => {
    const tally = new Tally();
    const acked: string[] = [];
    const writes = new Map<number, number>();
    let loading = true;
    const agents = load(lab, tally, { policyId: 'fo-p', clients: 4, cycles: 80, urls, retries: 120, retryDelayMs: 250, restartAfter503: true }).finally(() => (loading = false));
    const writer = (async () => {
      for (let i = 0; loading; i++) {
        const id = `fo-w${i}`;
        try {
          const r = await storePolicy(at(lab, urls[i % urls.length]!), policyDoc(id));
          await r.arrayBuffer();
          writes.set(r.status, (writes.get(r.status) ?? 0) + 1);
          if (r.status === 201) acked.push(id);
          else assert.equal(r.status, 503, `policy store answered ${r.status}`);
        } catch (e) {
          if (e instanceof assert.AssertionError) throw e;
          writes.set(0, (writes.get(0) ?? 0) + 1);
        }
        await sleep(50);
      }
    })();

    await until(async () => tally.okPerNonce.size >= 15, 'some releases before the failover', 60_000);
    const releasedBefore = tally.okPerNonce.size;
    const sentinel = new Redis({ port: s.sentinels[0]!.port, host: '127.0.0.1', lazyConnect: true });
    const t0 = Date.now();
    try {
      assert.equal(await sentinel.call('SENTINEL', 'FAILOVER', SENTINEL_NAME), 'OK');
      await until(async () => {
        const r = (await sentinel.call('SENTINEL', 'get-master-addr-by-name', SENTINEL_NAME)) as string[];
        return r[1] === String(s.replica.port);
      }, 'the replica promoted', 30_000);
    } finally {
      sentinel.disconnect();
    }
    const switched = Date.now() - t0;
    await Promise.all([agents, writer]);

    // After the switch every daemon serves every acknowledged policy from the new master.
    for (const u of urls) {
      const r = await fetch(`${u}/management/policy/v0/list`, { headers: { 'x-management-api-key': MGMT_KEY } });
      assert.equal(r.status, 200);
      const text = await r.text();
      const lost = acked.filter((id) => !new RegExp(`"${id}"`).test(text));
      assert.deepEqual(lost, [], `acknowledged policies lost at ${u}`);
    }
    const outage = tally.first503 !== undefined ? (tally.last503! - tally.first503) : 0;
    console.log(`      failover: agents that lost their nonce after a 503 and restarted: ${tally.restarts}; switch ${switched} ms; releases before ${releasedBefore}, total ${tally.okPerNonce.size}; ` +
      `statuses ${JSON.stringify(Object.fromEntries(tally.statuses))}; 503 window ${outage} ms; policy writes ${JSON.stringify(Object.fromEntries(writes))}, acked ${acked.length}`);
    if (tally.unexpected.length) {
      for (const d of [lab.daemon, ...peers]) {
        for (const rec of d.audit.records) if (tally.unexpected.some((u) => u.includes(String((rec.details as { nonce_sha256?: string } | undefined)?.nonce_sha256)))) console.log(JSON.stringify(rec));
        for (const l of d.logLines) if (/nonce|redis/.test(JSON.stringify(l)) && Number(l.level) >= 40) console.log(JSON.stringify(l));
      }
    }
    assert.deepEqual(tally.unexpected, []);
    assert.equal(tally.doubles(), 0, 'a nonce released twice');
    assert.equal(tally.wrongSecret, 0);
    assert.equal(tally.gaveUp, 0, JSON.stringify(tally.summary()));
    assert.equal(tally.transport, 0);
    assert.equal(tally.missingRetryAfter, 0);
    assert.equal(tally.okPerNonce.size, 80);
    assert.ok(acked.length > 0);
    // Only requests caught by the switch can lose their nonce (each after a 503, never silently).
    assert.ok(tally.restarts <= tally.get(503), JSON.stringify(tally.summary()));
  });
});
