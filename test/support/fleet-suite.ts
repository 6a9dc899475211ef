/**
 * The fleet contract, run against any Redis topology (plain, Sentinel, Cluster): four daemons (the
 * lab's own plus three peers) on one Redis behave as one service — nonces, policies, the KDS
 * certificate cache and the per-client rate limit are shared.
 */
import assert from 'node:assert/strict';
import { vcekPath } from '../../src/kds';
import { MGMT_KEY, CLIENT_KEY, type TestDaemon } from './daemon';
import { agentKeys, createLab, getNonce, getSecret, policyDoc, reportData, storePolicy, tcbOf, type Lab } from './lab';
import { at, startPeers, Tally, cycle } from './fleet';

export interface Topology {
  /** TAS_* settings selecting this Redis topology. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export function fleetSuite(title: string, start: () => Promise<Topology>): void {
  describe(`fleet on ${title}: four daemons, one Redis`, function () {
    this.timeout(120_000);
    let topo: Topology;
    let lab: Lab;
    let peers: TestDaemon[] = [];
    let urls: string[] = [];

    before(async () => {
      topo = await start();
      lab = await createLab({ env: { TAS_STORE: 'redis', ...topo.env }, products: ['Milan', 'Genoa'] });
      peers = await startPeers(lab, 3);
      urls = [lab.daemon.urls.main, ...peers.map((p) => p.urls.main)];
      assert.equal((await storePolicy(lab, policyDoc('fleet-p'))).status, 201);
    });
    after(async () => {
      for (const p of peers) await p.close();
      await lab?.close();
      await topo?.stop();
    });

    it('a nonce issued by one daemon is redeemed at another, exactly once fleet-wide', async () => {
      for (let i = 0; i < urls.length; i++) {
        const issuer = at(lab, urls[i]!);
        const redeemer = at(lab, urls[(i + 1) % urls.length]!);
        const keys = agentKeys();
        const nonce = await getNonce(issuer);
        const report = lab.kits.Genoa.signReport({ reportData: reportData(nonce, keys.wire, true) });
        const ok = await getSecret(redeemer, { nonce, report, keys, policyId: 'fleet-p' });
        assert.equal(ok.status, 200, JSON.stringify(ok.body));
        for (const u of urls) {
          const replay = await getSecret(at(lab, u), { nonce, report, keys, policyId: 'fleet-p' });
          assert.equal(replay.status, 401, `replay at ${u}`);
          assert.deepEqual(replay.body, { error: 'Invalid or expired nonce' });
        }
      }
    });

    it('100 parallel redemptions of one nonce across the daemons: exactly one 200', async () => {
      const keys = agentKeys();
      const nonce = await getNonce(lab);
      const report = lab.kits.Genoa.signReport({ reportData: reportData(nonce, keys.wire, true) });
      const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => getSecret(at(lab, urls[i % urls.length]!), { nonce, report, keys, policyId: 'fleet-p' })));
      const by = new Map<number, number>();
      for (const r of rs) by.set(r.status, (by.get(r.status) ?? 0) + 1);
      assert.equal(by.get(200), 1, JSON.stringify(Object.fromEntries(by)));
      assert.equal(by.get(401), 99, JSON.stringify(Object.fromEntries(by)));
    });

    it('a policy stored through one daemon is listed and used by all', async () => {
      const via = at(lab, urls[2]!);
      assert.equal((await storePolicy(via, policyDoc('fleet-new'))).status, 201);
      for (const u of urls) {
        const list = await fetch(`${u}/management/policy/v0/list`, { headers: { 'x-management-api-key': MGMT_KEY } });
        assert.equal(list.status, 200);
        assert.match(await list.text(), /fleet-new/);
        const t = new Tally();
        assert.ok(await cycle(at(lab, u), t, { policyId: 'fleet-new', retries: 0 }), JSON.stringify(t.summary()) + t.unexpected.join('\n'));
      }
    });

    it('the KDS certificate cache is shared: a VCEK fetched by one daemon is served to another with KDS down', async () => {
      const kit = lab.kits.Milan;
      const chipId = Buffer.alloc(64, 0x6b);
      const path = vcekPath('Milan', chipId, tcbOf(kit));
      lab.kds.serve(path, kit.vcekDer({ chipId }));
      const t = new Tally();
      assert.ok(await cycle(at(lab, urls[0]!), t, { policyId: 'fleet-p', product: 'Milan', chipId, retries: 0 }), t.unexpected.join('\n'));
      const hits = lab.kds.total(path.split('?')[0]);
      assert.equal(hits, 1, 'fetched once');
      const port = lab.kds.port;
      await lab.kds.stop();
      try {
        for (const u of urls.slice(1)) {
          assert.ok(await cycle(at(lab, u), t, { policyId: 'fleet-p', product: 'Milan', chipId, retries: 0 }), `${u}: ${t.unexpected.join('\n')}`);
        }
      } finally {
        await lab.kds.start(port);
      }
      assert.equal(lab.kds.total(path.split('?')[0]), hits, 'no further KDS fetch');
      assert.equal(t.okPerNonce.size, urls.length, 'one release per daemon');
    });

    it('one rate-limit budget for the fleet (TAS_CLIENT_RATE_LIMIT=12/hour over three daemons)', async () => {
      const limited = await startPeers(lab, 3, { TAS_CLIENT_RATE_LIMIT: '12/hour', TAS_REDIS_KEY_PREFIX: `rl${Date.now()}:` });
      try {
        const by = new Map<number, number>();
        for (let i = 0; i < 30; i++) {
          const r = await fetch(`${limited[i % 3]!.urls.main}/kb/v0/get_nonce`, { headers: { 'x-api-key': CLIENT_KEY } });
          await r.arrayBuffer();
          by.set(r.status, (by.get(r.status) ?? 0) + 1);
          if (r.status === 429) assert.ok(Number(r.headers.get('retry-after')) > 0);
        }
        assert.equal(by.get(200), 12, JSON.stringify(Object.fromEntries(by)));
        assert.equal(by.get(429), 18, JSON.stringify(Object.fromEntries(by)));
      } finally {
        for (const d of limited) await d.close();
      }
    });
  });
}
