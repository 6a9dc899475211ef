/**
 * `tas pcs prefetch` against the fake PCS (fake DCAP signer trusted through
 * TAS_TDX_EXTRA_TRUST_DIR), as `tas kds prefetch` is tested: a connected host fills the cache (no
 * API keys needed) and `tas pcs status` lists every piece; TAS_TDX_COLLATERAL_UPDATE=early (or
 * `--update early`) fetches the `update=early` TCB Info and QE identity, and an offline daemon then
 * attests from them end to end with `early` in the audit record; PCS refusing connections,
 * answering 503 / 429 with Retry-After or 404, or stopped mid-run: exit 3 with one FAIL line (or
 * JSON result) per FMSPC naming the reason; a malformed FMSPC is a usage error (exit 2).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tasInProcess } from '../support/cli-inproc';
import { FakeIntel } from '../support/fake-intel';
import { FakePcs } from '../support/fake-pcs';
import { agentKeys, createLab, decryptReply, getNonce, getSecret, policyDoc, reportData, SECRET, storePolicy } from '../support/lab';
import { freePort } from '../systemd/harness';

const OTHER_FMSPC = '00906ed50000';
const failLines = (out: string): string[] => out.split('\n').filter((l) => l.startsWith('FAIL '));

describe('tas pcs prefetch (fake PCS)', function () {
  this.timeout(120_000);
  let kit: FakeIntel;
  let dir: string;
  let pcs: FakePcs;
  let env: Record<string, string>;
  let fmspc: string;

  before(() => {
    kit = FakeIntel.create();
    fmspc = kit.sgx.fmspc.toLowerCase();
  });
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tas-pcs-prefetch-'));
    kit.writeTrustDir(join(dir, 'trust'));
    pcs = await new FakePcs().start();
    pcs.serveCollateral({ fmspc, ...kit.collateral() });
    // No TAS_API_KEY / TAS_MANAGEMENT_API_KEY: commands that do not serve need none.
    env = { TAS_STATE_DIR: join(dir, 'state'), TAS_TDX_EXTRA_TRUST_DIR: join(dir, 'trust'), TAS_PCS_BASE_URL: pcs.url, TAS_PCS_ROOT_CRL_URL: pcs.rootCrlUrl };
  });
  afterEach(async () => {
    await pcs.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fills the cache of a connected host; status lists every piece; a second run is served from the store', async () => {
    const r = await tasInProcess(['pcs', 'prefetch', '--fmspc', fmspc.toUpperCase(), '--format', 'text'], env);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, new RegExp(`^ok {3}${fmspc}: update=standard .*"tcbInfo":"pcs"`, 'm'));
    assert.equal(pcs.total(`/tdx/certification/v4/tcb?fmspc=${fmspc.toUpperCase()}&update=standard`), 1);
    const s = await tasInProcess(['pcs', 'status'], env);
    const entries = (JSON.parse(s.out) as { entries: Array<{ key: string; fresh: boolean }> }).entries;
    assert.deepEqual(entries.map((e) => e.key).sort(), ['pcs/pckcrl/platform', 'pcs/qe/standard', 'pcs/rootcrl', `pcs/tcb/${fmspc}/standard`]);
    assert.ok(entries.every((e) => e.fresh));
    const before = pcs.total();
    const again = await tasInProcess(['pcs', 'prefetch', '--fmspc', fmspc], env);
    assert.equal(again.code, 0, again.out + again.err);
    const doc = JSON.parse(again.out) as { ok: boolean; failed: number; results: Array<{ ok: boolean; source: Record<string, string> }> };
    assert.equal(doc.ok, true);
    assert.equal(doc.results[0]!.source.tcbInfo, 'persistent');
    assert.equal(pcs.total(), before, 'served from the store, PCS not asked again');
  });

  it('a malformed FMSPC is a usage error (exit 2) before anything is fetched', async () => {
    const r = await tasInProcess(['pcs', 'prefetch', '--fmspc', fmspc, '--fmspc', 'xyz'], env);
    assert.equal(r.code, 2, r.out + r.err);
    assert.match(r.err, /--fmspc xyz: need 12 hex digits/);
    assert.equal(pcs.total(), 0);
  });

  it('PCS refusing connections: exit 3, one FAIL line per FMSPC naming the connection failure', async () => {
    const r = await tasInProcess(['pcs', 'prefetch', '--timeout', '2', '--fmspc', fmspc, '--fmspc', OTHER_FMSPC, '--format', 'text'], { ...env, TAS_PCS_BASE_URL: `http://127.0.0.1:${await freePort()}`, TAS_PCS_ROOT_CRL_URL: `http://127.0.0.1:${await freePort()}/IntelSGXRootCA.der` });
    assert.equal(r.code, 3, r.out + r.err);
    const fails = failLines(r.out);
    assert.equal(fails.length, 2, r.out);
    assert.match(fails[0]!, new RegExp(`^FAIL ${fmspc}: PCS_UNAVAILABLE: .*(ECONNREFUSED|request failed)`));
    assert.match(fails[1]!, new RegExp(`^FAIL ${OTHER_FMSPC}: PCS_UNAVAILABLE: `));
    assert.match(r.err, /2 of 2 FMSPCs could not be fetched/);
  });

  it('PCS answering 503 or 429 with Retry-After, or 404 for an unknown FMSPC: exit 3 with the reason per FMSPC', async () => {
    pcs.fault('/tdx/certification/v4/tcb', { status: 503, retryAfter: '120' });
    const r = await tasInProcess(['pcs', 'prefetch', '--timeout', '3', '--fmspc', fmspc, '--fmspc', OTHER_FMSPC, '--format', 'json'], env);
    assert.equal(r.code, 3, r.out + r.err);
    const doc = JSON.parse(r.out) as { ok: boolean; failed: number; results: Array<{ item: string; ok: boolean; detail: string }> };
    assert.equal(doc.ok, false);
    assert.equal(doc.failed, 2);
    for (const x of doc.results) assert.match(x.detail, /^PCS_UNAVAILABLE: .*HTTP 503, Retry-After 120/);

    pcs.clearFaults();
    pcs.fault('/tdx/certification/v4/tcb', { status: 429, retryAfter: '120' });
    const t = await tasInProcess(['pcs', 'prefetch', '--timeout', '3', '--fmspc', fmspc, '--format', 'text'], env);
    assert.equal(t.code, 3, t.out + t.err);
    assert.match(failLines(t.out)[0]!, /HTTP 429, Retry-After 120/);
    assert.equal(pcs.total('/tdx/certification/v4/tcb'), 3, 'a long Retry-After is not waited out: one request per FMSPC');

    pcs.clearFaults();
    const n = await tasInProcess(['pcs', 'prefetch', '--timeout', '3', '--fmspc', fmspc, '--fmspc', OTHER_FMSPC, '--format', 'text'], env);
    assert.equal(n.code, 3, n.out + n.err);
    assert.match(n.out, new RegExp(`^ok {3}${fmspc}: `, 'm'));
    assert.match(failLines(n.out).join('\n'), new RegExp(`^FAIL ${OTHER_FMSPC}: PCS_NOT_FOUND: `, 'm'));
  });

  it('PCS stopped mid-run: the first FMSPC is cached, the second fails with its reason, exit 3', async () => {
    pcs.fault(`/tdx/certification/v4/tcb?fmspc=${OTHER_FMSPC.toUpperCase()}`, { hang: true });
    const run = tasInProcess(['pcs', 'prefetch', '--timeout', '4', '--fmspc', fmspc, '--fmspc', OTHER_FMSPC, '--format', 'text'], env);
    const path = `/tdx/certification/v4/tcb?fmspc=${OTHER_FMSPC.toUpperCase()}`;
    for (let i = 0; i < 600 && pcs.total(path) === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(pcs.total(path) > 0, 'the second FMSPC reached PCS');
    await pcs.stop();
    const r = await run;
    assert.equal(r.code, 3, r.out + r.err);
    assert.match(r.out, new RegExp(`^ok {3}${fmspc}: `, 'm'));
    const fails = failLines(r.out);
    assert.equal(fails.length, 1, r.out);
    assert.match(fails[0]!, new RegExp(`^FAIL ${OTHER_FMSPC}: PCS_UNAVAILABLE: `));
    await pcs.start();
  });

  it('TAS_TDX_COLLATERAL_UPDATE=early (and --update early) fetch the update=early collateral', async () => {
    pcs.serveCollateral({ fmspc, update: 'early', ...kit.collateral() });
    const r = await tasInProcess(['pcs', 'prefetch', '--fmspc', fmspc, '--format', 'text'], { ...env, TAS_TDX_COLLATERAL_UPDATE: 'early' });
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /update=early/);
    assert.equal(pcs.total(`/tdx/certification/v4/tcb?fmspc=${fmspc.toUpperCase()}&update=early`), 1);
    assert.equal(pcs.total('/tdx/certification/v4/qe/identity?update=early'), 1);
    assert.equal(pcs.total(`/tdx/certification/v4/tcb?fmspc=${fmspc.toUpperCase()}&update=standard`), 0);
    const s = await tasInProcess(['pcs', 'status'], env);
    const keys = (JSON.parse(s.out) as { entries: Array<{ key: string }> }).entries.map((e) => e.key).sort();
    assert.deepEqual(keys, ['pcs/pckcrl/platform', 'pcs/qe/early', 'pcs/rootcrl', `pcs/tcb/${fmspc}/early`]);
    const flag = await tasInProcess(['pcs', 'prefetch', '--fmspc', fmspc, '--update', 'standard', '--format', 'text'], { ...env, TAS_TDX_COLLATERAL_UPDATE: 'early' });
    assert.equal(flag.code, 0, flag.out + flag.err);
    assert.equal(pcs.total(`/tdx/certification/v4/tcb?fmspc=${fmspc.toUpperCase()}&update=standard`), 1, '--update overrides the setting');
  });
});

describe('tas pcs prefetch --update early, then an offline daemon attests with early collateral', function () {
  this.timeout(120_000);

  it('released from the prefetched early collateral; the audit record names update early; standard collateral was never fetched', async () => {
    const kit = FakeIntel.create();
    const fmspc = kit.sgx.fmspc.toLowerCase();
    const pcs = await new FakePcs().start();
    const trust = mkdtempSync(join(tmpdir(), 'tas-pcs-early-'));
    kit.writeTrustDir(trust);
    // Only early collateral exists: a daemon asking for standard would find nothing (503).
    pcs.serveCollateral({ fmspc, update: 'early', ...kit.collateral() });
    const lab = await createLab({ products: ['Genoa'], env: { TAS_PCS_OFFLINE: 'true', TAS_TDX_COLLATERAL_UPDATE: 'early', TAS_TDX_EXTRA_TRUST_DIR: trust, TAS_PCS_BASE_URL: pcs.url, TAS_PCS_ROOT_CRL_URL: pcs.rootCrlUrl } });
    try {
      const mrTd = Buffer.alloc(48, 0x6c);
      const rules = { tcb: { update: 'early', platform_tcb: 'UpToDate', tdx_module_tcb: 'UpToDate', qe_tcb: 'UpToDate' }, body: { mr_td: mrTd.toString('hex') } };
      assert.equal((await storePolicy(lab, policyDoc('tdx-early', rules, { policy_type: 'TDX' }))).status, 201);
      const ask = async () => {
        const keys = agentKeys();
        const nonce = await getNonce(lab);
        return { keys, r: await getSecret(lab, { nonce, report: kit.quote({ reportData: reportData(nonce, keys.wire, true), mrTd }), keys, policyId: 'tdx-early', teeType: 'intel-tdx' }) };
      };
      const first = await ask();
      assert.equal(first.r.status, 503, 'offline, nothing cached yet');

      const p = await tasInProcess(['pcs', 'prefetch', '--fmspc', fmspc, '--update', 'early'], { ...lab.env, TAS_PCS_OFFLINE: 'false' });
      assert.equal(p.code, 0, p.out + p.err);
      const a = await ask();
      assert.equal(a.r.status, 200, JSON.stringify(a.r.body));
      assert.equal(decryptReply(a.r.body, a.keys), SECRET);
      const rec = lab.daemon.audit.records.filter((x) => x.event === 'get_secret').at(-1)!;
      assert.equal((rec.details as Record<string, unknown>).collateral_update, 'early');
      assert.equal(pcs.total('/tdx/certification/v4/tcb?fmspc=' + fmspc.toUpperCase() + '&update=standard'), 0);
    } finally {
      await lab.close();
      await pcs.stop();
      rmSync(trust, { recursive: true, force: true });
    }
  });
});
