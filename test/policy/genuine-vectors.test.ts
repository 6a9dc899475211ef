/**
 * The genuine AMD-signed vectors drive the rule engine and `tas policy test`: real claims and the
 * real TCB layouts of Milan, Genoa and Turin (FMC only on Turin), verified at a time inside each
 * certificate's validity. Product-aware minimums, allow-lists, guest-policy and platform bits,
 * ID-key digests, signer kind and firmware versions are evaluated on what AMD actually signed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { evaluate } from '../../src/policy';
import { SnpVerifier } from '../../src/snp';

const VEC = resolve(__dirname, '../fixtures/snp-vectors');
const expected = JSON.parse(readFileSync(join(VEC, 'expected.json'), 'utf8')) as Record<string, { product: 'Milan' | 'Genoa' | 'Turin'; report_version: number; vek_not_before: string; measurement: string; id_key_digest: string; current_version: string }>;

async function claimsOf(name: string): Promise<Record<string, unknown>> {
  const e = expected[name]!;
  const dir = join(VEC, name);
  const files = readdirSync(dir);
  const vek = readFileSync(join(dir, files.find((f) => /^(vcek|vlek)\.(der|pem)$/.test(f))!));
  const at = new Date(Date.parse(e.vek_not_before) + 86400_000);
  const v = new SnpVerifier({ v2Product: e.report_version === 2 ? (e.product as 'Milan') : undefined });
  const r = await v.verify({ report: readFileSync(join(dir, 'report.bin')), vek, at });
  return r.claims as unknown as Record<string, unknown>;
}

describe('policy: rules evaluated on the genuine vectors', function () {
  this.timeout(60_000);

  it('Turin: the FMC component exists and is compared; Milan/Genoa have none', async () => {
    const turin = await claimsOf('mstav-turin-v5');
    assert.deepEqual(evaluate({ reported_tcb: { fmc: { min_value: 1 }, snp: { min_value: 4 }, microcode: { min_value: 0x51 } }, product: { exact_match: 'Turin' } }, turin as never).failures, []);
    const tooNew = evaluate({ reported_tcb: { fmc: { min_value: 2 }, bootloader: { min_value: 2 } } }, turin as never);
    assert.equal(tooNew.ok, false);
    assert.equal(tooNew.failures.length, 2, tooNew.failures.join('|'));
    const genoa = await claimsOf('mstav-genoa-v3');
    assert.deepEqual(evaluate({ reported_tcb: { bootloader: { min_value: 10 }, snp: { min_value: 23 }, microcode: { min_value: 84 } }, product: { exact_match: 'Genoa' } }, genoa as never).failures, []);
    assert.equal(evaluate({ reported_tcb: { snp: { min_value: 24 } } }, genoa as never).ok, false);
  });

  it('measurement allow-lists, ID-key digests, VMPL and firmware versions on every vector', async () => {
    for (const name of Object.keys(expected)) {
      const c = await claimsOf(name);
      const e = expected[name]!;
      const ok = evaluate({
        measurement: { allow_list: ['00'.repeat(48), e.measurement.toUpperCase()] },
        id_key_digest: { exact_match: `0x${e.id_key_digest}` },
        current_version: { min_version: e.current_version },
        product: { allow_list: [e.product] },
      }, c as never);
      assert.deepEqual(ok.failures, [], name);
      const bad = evaluate({ measurement: { deny_list: [e.measurement] }, current_version: { min_version: '9.0.0' } }, c as never);
      assert.equal(bad.failures.length, 2, `${name}: ${bad.failures.join('|')}`);
    }
  });

  it('signer kind and CSP allow-list: the AWS VLEK vector', async () => {
    const c = await claimsOf('trustee-milan-v3-vlek');
    assert.deepEqual(evaluate({ signer: { kind: { exact_match: 'VLEK' }, csp_id: { allow_list: ['CN=cc-us-east-2.amazonaws.com'] } }, vmpl: { max_value: 1 }, chip_id_masked: true }, c as never).failures, []);
    assert.equal(evaluate({ signer: { kind: { exact_match: 'VCEK' } } }, c as never).ok, false);
  });

  it('guest-policy bits: the go-sev-guest vector has DEBUG set and is refused by a no-debug policy', async () => {
    const c = await claimsOf('gosevguest-milan-v2');
    const r = evaluate({ policy: { debug_allowed: false, smt_allowed: true } }, c as never);
    assert.equal(r.ok, false);
    assert.equal(r.failures.length, 1);
    assert.match(r.failures[0]!, /debug_allowed/);
  });

  it('`tas policy test` prints every rule with its verdict and actual value (genuine Turin report)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tas-ptest-'));
    try {
      const doc = (id: string, rules: unknown) => ({ metadata: { name: id, version: '1', description: 'genuine', policy_type: 'SEV', policy_id: id, key_id: 'k' }, validation_rules: rules });
      writeFileSync(join(dir, 'turin.json'), JSON.stringify(doc('turin', { reported_tcb: { fmc: { min_value: 1 }, microcode: { min_value: 82 } }, vmpl: { exact_match: 0 } })));
      const run = (args: string[]) => new Promise<{ code: number | null; out: string }>((res) => {
        const c = spawn(process.execPath, ['--import', 'tsx', resolve(__dirname, '../../src/main.ts'), 'policy', 'test', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        c.stdout.on('data', (d: Buffer) => (out += d.toString()));
        c.stderr.on('data', (d: Buffer) => (out += d.toString()));
        c.on('close', (code) => res({ code, out }));
      });
      const t = join(VEC, 'mstav-turin-v5');
      const r = await run(['--policy', join(dir, 'turin.json'), '--report', join(t, 'report.bin'), '--cert', join(t, 'vcek.pem'), '--at', '2027-01-01T00:00:00Z']);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /PASS reported_tcb\.fmc min_value expected 1 actual 1/);
      assert.match(r.out, /FAIL reported_tcb\.microcode min_value expected 82 actual 81/);
      assert.match(r.out, /PASS vmpl exact_match expected 0 actual 0/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
