/**
 * `tas verify --quote` (the TEE-neutral verify command) on the genuine vectors with `--collateral
 * DIR` and `--at`: the envelope {valid, tee, claims, tcb, checks} with expected.json's status and
 * advisories; today the same vector is invalid (exit 1); usage errors exit 2. `tas pcs import` of a
 * vector directory then `tas pcs status` and `tas verify --quote` without --collateral (cache).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tasInProcess } from '../support/cli-inproc';
import { FakeIntel } from '../support/fake-intel';
import { TDX_VECTORS } from '../support/tdx-vectors';

const iso = (s: number) => new Date(s * 1000).toISOString();

describe('tas verify --quote and tas pcs', function () {
  this.timeout(60_000);
  for (const v of TDX_VECTORS) {
    it(`${v.name}: valid at verify_at with the expected TCB; invalid today`, async () => {
      const r = await tasInProcess(['verify', '--quote', join(v.dir, 'quote.bin'), '--collateral', v.dir, '--at', iso(v.at)]);
      assert.equal(r.code, 0, r.out + r.err);
      const env = JSON.parse(r.out) as { valid: boolean; tee: string; tcb: { status: string; advisory_ids: string[]; update: string; eval_number: number }; claims: { fmspc: string }; checks: Array<{ ok: boolean }> };
      const e = v.expected as unknown as { tcb_status: string; tcb_detail: { advisory_ids: string[] }; tcb_info_tcbEvaluationDataNumber: number };
      assert.equal(env.valid, true);
      assert.equal(env.tee, 'intel-tdx');
      assert.equal(env.tcb.status, e.tcb_status);
      assert.deepEqual(env.tcb.advisory_ids, e.tcb_detail.advisory_ids);
      assert.equal(env.tcb.eval_number, e.tcb_info_tcbEvaluationDataNumber);
      assert.equal(env.tcb.update, 'standard');
      assert.equal(env.claims.fmspc, v.expected.pck.ext.fmspc);
      assert.ok(env.checks.every((c) => c.ok));
      const now = await tasInProcess(['verify', '--quote', join(v.dir, 'quote.bin'), '--collateral', v.dir, '--format', 'text']);
      assert.equal(now.code, 1, now.out);
      assert.match(now.out, /INVALID/);
    });
  }

  it('usage: exactly one evidence kind, a real --at, an existing directory (exit 2)', async () => {
    const v = TDX_VECTORS[0]!;
    assert.equal((await tasInProcess(['verify'])).code, 2);
    assert.equal((await tasInProcess(['verify', '--quote', join(v.dir, 'quote.bin'), '--report', join(v.dir, 'quote.bin')])).code, 2);
    assert.equal((await tasInProcess(['verify', '--quote', join(v.dir, 'quote.bin'), '--collateral', v.dir, '--at', 'yesterday'])).code, 2);
    assert.equal((await tasInProcess(['verify', '--quote', join(v.dir, 'quote.bin'), '--collateral', join(v.dir, 'nope')])).code, 2);
  });

  it('tas pcs import refuses expired genuine collateral (exit 1) and status lists nothing fresh', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tas-pcs-cli-'));
    try {
      const env = { TAS_STATE_DIR: join(dir, 'state'), TAS_PCS_OFFLINE: 'true' };
      const r = await tasInProcess(['pcs', 'import', TDX_VECTORS[0]!.dir], env);
      assert.equal(r.code, 1, r.out + r.err);
      assert.match(r.out, /nextUpdate|stale|STALE|expired/i);
      const s = await tasInProcess(['pcs', 'status'], env);
      assert.equal(s.code, 0, s.err);
      assert.deepEqual((JSON.parse(s.out) as { entries: unknown[] }).entries, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('tas pcs import of a fresh (fake-signer) directory, status, then tas verify --quote from the cache with PCS offline', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tas-pcs-cli-'));
    try {
      const kit = FakeIntel.create();
      const trust = join(dir, 'trust');
      kit.writeTrustDir(trust);
      const vec = kit.writeVectorDir(join(dir, 'vec'), kit.quote({ reportData: Buffer.alloc(64, 7) }));
      const env = { TAS_STATE_DIR: join(dir, 'state'), TAS_PCS_OFFLINE: 'true', TAS_TDX_EXTRA_TRUST_DIR: trust };
      const r = await tasInProcess(['pcs', 'import', vec], env);
      assert.equal(r.code, 0, r.out + r.err);
      const s = await tasInProcess(['pcs', 'status'], env);
      const entries = (JSON.parse(s.out) as { entries: Array<{ key: string; fresh: boolean }> }).entries;
      assert.deepEqual(entries.map((e) => e.key).sort(), ['pcs/pckcrl/platform', 'pcs/qe/standard', 'pcs/rootcrl', `pcs/tcb/${kit.sgx.fmspc.toLowerCase()}/standard`]);
      assert.ok(entries.every((e) => e.fresh));
      const v = await tasInProcess(['verify', '--quote', join(vec, 'quote.bin')], env);
      assert.equal(v.code, 0, v.out + v.err);
      assert.equal((JSON.parse(v.out) as { claims: { body: { report_data: string } } }).claims.body.report_data, '07'.repeat(64));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('tas policy test --quote: a TDX policy evaluated on a genuine quote; a SEV policy never admits it', async () => {
    const v = TDX_VECTORS.find((x) => x.name.startsWith('automata'))!;
    const dir = mkdtempSync(join(tmpdir(), 'tas-policy-quote-'));
    try {
      const doc = (type: string, rules: unknown) => {
        const f = join(dir, `${type}-${Math.random()}.json`);
        writeFileSync(f, JSON.stringify({ metadata: { name: 'p', version: '1', description: 'd', policy_type: type, policy_id: 'p1', key_id: 'k' }, validation_rules: rules }));
        return f;
      };
      const args = (f: string) => ['policy', 'test', '--policy', f, '--quote', join(v.dir, 'quote.bin'), '--collateral', v.dir, '--at', iso(v.at), '--format', 'json'];
      const ok = await tasInProcess(args(doc('TDX', { tcb: { platform_tcb: 'OutOfDate' }, fmspc: v.expected.pck.ext.fmspc })));
      assert.equal(ok.code, 0, ok.out + ok.err);
      assert.equal((JSON.parse(ok.out) as { ok: boolean }).ok, true);
      const strict = await tasInProcess(args(doc('TDX', { tcb: { platform_tcb: 'UpToDate' } })));
      assert.equal(strict.code, 1, strict.out);
      const sev = await tasInProcess(args(doc('SEV', { vmpl: 0 })));
      assert.equal(sev.code, 1);
      assert.match(sev.out, /never admits a TDX quote/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
