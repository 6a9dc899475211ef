/**
 * `tas verify` end to end: the full command line (src/cli.ts parser, in process, output captured),
 * plus the real executable entry (src/main.ts through tsx) spawned as a child for the valid case
 * and the missing-addon refusal. Exit codes 0 valid, 1 invalid, 2 usage error.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeAmd, toPem } from '../support/fake-amd';
import { runCli } from '../../src/cli';

const ROOT = join(__dirname, '../..');
const VEC = join(ROOT, 'test/fixtures/snp-vectors');

/** spawnTas runs the real executable in a child process (slow: seconds per call). */
function spawnTas(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/main.ts'), ...args], {
    cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** tas runs the same command line in process, capturing stdout/stderr and the exit code. */
async function tas(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  const saved = process.exitCode;
  process.exitCode = undefined;
  process.stdout.write = ((c: string | Uint8Array) => { out.push(String(c)); return true; }) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => { err.push(String(c)); return true; }) as typeof process.stderr.write;
  let status: number | null;
  try {
    await runCli(args);
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
    status = typeof process.exitCode === 'number' ? process.exitCode : 0;
    process.exitCode = saved;
  }
  return { status, stdout: out.join(''), stderr: err.join('') };
}

interface Out { valid: boolean; claims: Record<string, unknown> | null; checks: Array<{ name: string; ok: boolean; detail: string }>; reason?: string }

describe('tas verify (command line)', function () {
  this.timeout(120_000);
  let dir: string;
  let kit: FakeAmd;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tas-verify-'));
    kit = await FakeAmd.create({ product: 'Genoa' });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('genuine Genoa v3 report (spawned executable): exit 0, JSON with claims and checks', () => {
    const r = spawnTas(['verify', '--report', join(VEC, 'mstav-genoa-v3/report.bin'), '--cert', join(VEC, 'mstav-genoa-v3/vcek.pem'), '--at', '2026-06-01T00:00:00Z']);
    assert.equal(r.status, 0, r.stderr);
    const o = JSON.parse(r.stdout) as Out;
    assert.equal(o.valid, true);
    assert.equal(o.claims!['product'], 'Genoa');
    assert.equal(o.claims!['measurement'], '5feee30d6d7e1a29f403d70a4198237ddfb13051a2d6976439487c609388ed7f98189887920ab2fa0096903a0c23fca1');
    assert.ok(o.checks.every((c) => c.ok && typeof c.name === 'string' && typeof c.detail === 'string'));
    assert.ok(o.checks.some((c) => c.name === 'report_signature'));
  });

  it('genuine VLEK (DER) with its ASVK at a time inside its validity: exit 0; now: exit 1 expired', async () => {
    const base = ['verify', '--report', join(VEC, 'trustee-milan-v3-vlek/report.bin'), '--cert', join(VEC, 'trustee-milan-v3-vlek/vlek.der'),
      '--ask', join(VEC, 'trustee-milan-v3-vlek/asvk.pem')];
    const ok = await tas([...base, '--at', '2025-06-01T00:00:00Z']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual((JSON.parse(ok.stdout) as Out).claims!['signer'], { kind: 'VLEK', csp_id: 'CN=cc-us-east-2.amazonaws.com' });
    const late = await tas([...base, '--at', '2026-06-01T00:00:00Z']);
    assert.equal(late.status, 1);
    assert.equal((JSON.parse(late.stdout) as Out).reason, 'SNP_ERR_CERT_EXPIRED');
  });

  it('v2 report needs --product; with it, text output says VALID', async () => {
    const args = ['verify', '--report', join(VEC, 'gosevguest-milan-v2/report.bin'), '--cert', join(VEC, 'gosevguest-milan-v2/vcek.der'), '--at', '2026-06-01T00:00:00Z'];
    const no = await tas(args);
    assert.equal(no.status, 1);
    assert.equal((JSON.parse(no.stdout) as Out).reason, 'SNP_ERR_V2_PRODUCT_UNSET');
    const yes = await tas([...args, '--product', 'Milan', '--format', 'text']);
    assert.equal(yes.status, 0, yes.stderr);
    assert.match(yes.stdout, /^SEV-SNP report: VALID/);
    assert.match(yes.stdout, /policy\.debug_allowed\s+true/);
    assert.match(yes.stdout, /ok\s+chip_id_matches_hwid/);
  });

  it('fake chain: refused against the pinned roots (exit 1), accepted with --ark/--ask (exit 0)', async () => {
    const rep = join(dir, 'r.bin');
    const vcek = join(dir, 'vcek.pem');
    const ask = join(dir, 'ask.der');
    const ark = join(dir, 'ark.pem');
    writeFileSync(rep, kit.signReport({ reportData: Buffer.alloc(64, 0x11) }));
    writeFileSync(vcek, toPem(kit.vcekDer()));
    writeFileSync(ask, kit.askDer);
    writeFileSync(ark, kit.arkPem);
    const pinned = await tas(['verify', '--report', rep, '--cert', vcek, '--ask', ask, '--at', '2026-06-01T00:00:00Z']);
    assert.equal(pinned.status, 1);
    assert.equal((JSON.parse(pinned.stdout) as Out).reason, 'SNP_ERR_CHAIN');
    const own = await tas(['verify', '--report', rep, '--cert', vcek, '--ask', ask, '--ark', ark, '--at', '2026-06-01T00:00:00Z']);
    assert.equal(own.status, 0, own.stdout + own.stderr);
    const o = JSON.parse(own.stdout) as Out;
    assert.equal(o.claims!['report_data'], '11'.repeat(64));
    assert.ok(o.checks.some((c) => c.name === 'anchor' && /not the pinned/.test(c.detail)));
  });

  it('a CRL revoking the ASK makes the report invalid', async () => {
    const rep = join(dir, 'r2.bin');
    const crl = join(dir, 'crl.der');
    writeFileSync(rep, kit.signReport());
    writeFileSync(join(dir, 'v2.der'), kit.vcekDer());
    writeFileSync(join(dir, 'a2.pem'), kit.askPem);
    writeFileSync(join(dir, 'k2.pem'), kit.arkPem);
    writeFileSync(crl, kit.crlDer({ thisUpdate: new Date('2026-05-31T00:00:00Z'), nextUpdate: new Date('2026-06-30T00:00:00Z'), revoked: [0x20002] }));
    const r = await tas(['verify', '--report', rep, '--cert', join(dir, 'v2.der'), '--ask', join(dir, 'a2.pem'), '--ark', join(dir, 'k2.pem'),
      '--crl', crl, '--at', '2026-06-01T00:00:00Z']);
    assert.equal(r.status, 1);
    assert.equal((JSON.parse(r.stdout) as Out).reason, 'SNP_ERR_REVOKED');
  });

  it('usage errors exit 2: missing option, missing file, bad --at, bad --product', async () => {
    const rep = join(VEC, 'mstav-genoa-v3/report.bin');
    const cert = join(VEC, 'mstav-genoa-v3/vcek.pem');
    for (const args of [
      ['verify', '--report', rep],
      ['verify', '--report', join(dir, 'nope.bin'), '--cert', cert],
      ['verify', '--report', rep, '--cert', cert, '--at', 'yesterday'],
      ['verify', '--report', rep, '--cert', cert, '--product', 'Venice'],
    ]) {
      const r = await tas(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /tas: /);
    }
  });

  it('refuses (exit 2) when the native addon does not load', () => {
    const r = spawnTas(['verify', '--report', join(VEC, 'mstav-genoa-v3/report.bin'), '--cert', join(VEC, 'mstav-genoa-v3/vcek.pem')],
      { TAS_NATIVE_ADDON: join(dir, 'missing.node') });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /addon does not load/);
  });
});
