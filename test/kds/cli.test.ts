/**
 * Offline operation end to end: `tas kds prefetch` on a host that reaches KDS fills a cache;
 * `tas kds import` verifies certificates and CRLs obtained elsewhere into the cache of a host with
 * TAS_KDS_OFFLINE=true, whose daemon then attests without ever contacting KDS; `tas kds status`
 * shows both. Commands run as the real executable (child processes).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { crlPath, vcekPath } from '../../src/kds';
import { agentKeys, createLab, decryptReply, getNonce, getSecret, policyDoc, reportData, SECRET, storePolicy, tcbOf, type Lab } from '../support/lab';
import { CLIENT_KEY, MGMT_KEY } from '../support/daemon';
import { freePort } from '../systemd/harness';

const MAIN = resolve(__dirname, '../../src/main.ts');

/** tas runs the executable asynchronously (the fake KDS answers from this very process). */
function tas(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  const c = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    env: { PATH: process.env.PATH ?? '', TAS_API_KEY: CLIENT_KEY, TAS_MANAGEMENT_API_KEY: MGMT_KEY, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  c.stdout.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((res) => c.on('close', (code) => res({ code, out, err })));
}

describe('kds: tas kds prefetch / import / status (offline hosts)', function () {
  this.timeout(120_000);
  let lab: Lab;
  before(async () => {
    // The offline host: KDS never contacted (the fake KDS would count any request).
    lab = await createLab({ products: ['Genoa'], env: { TAS_KDS_OFFLINE: 'true' } });
    assert.equal((await storePolicy(lab, policyDoc('p'))).status, 201);
  });
  after(async () => lab?.close());

  it('prefetch fills the cache of a connected host, with a progress line, and status lists it', async () => {
    const kit = lab.kits.Genoa;
    const t = tcbOf(kit);
    const env = { TAS_STATE_DIR: join(lab.dir, 'online-state'), TAS_KDS_BASE_URL: lab.kds.url, TAS_SNP_EXTRA_TRUST_DIR: lab.env.TAS_SNP_EXTRA_TRUST_DIR! };
    const before = lab.kds.total();
    const r = await tas(['kds', 'prefetch', '--product', 'Genoa', '--chip-id', kit.chipId.toString('hex'), '--tcb', `bl=${t.bootloader},tee=${t.tee},snp=${t.snp},ucode=${t.microcode}`], env);
    assert.equal(r.code, 0, r.err + r.out);
    assert.match(r.out, /ok {3}Genoa vcek\/Genoa\//);
    assert.match(r.out, /ok {3}CRL Genoa VCEK/);
    assert.match(r.err, /\[#+\] 1\/1 done/);
    assert.ok(lab.kds.total() > before);
    const s = await tas(['kds', 'status', '--format', 'json'], env);
    assert.equal(s.code, 0, s.err);
    const st = JSON.parse(s.out) as { certificates: Record<string, string>; crls: Record<string, string | null> };
    assert.equal(Object.keys(st.certificates).length, 1);
    assert.ok(st.crls['Genoa VCEK']);
  });

  it('import verifies files obtained elsewhere; the offline daemon then attests without KDS', async () => {
    const kit = lab.kits.Genoa;
    const drop = join(lab.dir, 'usb-stick');
    mkdirSync(drop);
    writeFileSync(join(drop, 'vcek.der'), kit.vcekDer());
    writeFileSync(join(drop, 'genoa.crl'), kit.crlDer({ thisUpdate: new Date(Date.now() - 3600_000), nextUpdate: new Date(Date.now() + 86400_000) }));
    writeFileSync(join(drop, 'junk.pem'), '-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n');
    const before = lab.kds.total();
    const r = await tas(['kds', 'import', drop], { ...lab.env });
    assert.equal(r.code, 1, 'the junk file is refused, so the exit code says some failed');
    assert.match(r.out, /ok {3}.*vcek\.der: VCEK vcek\/Genoa\//);
    assert.match(r.out, /ok {3}.*genoa\.crl: CRL Genoa VCEK/);
    assert.match(r.out, /FAIL .*junk\.pem/);
    assert.match(r.out, /2 imported, 1 refused/);

    const keys = agentKeys();
    const nonce = await getNonce(lab);
    const res = await getSecret(lab, { nonce, report: kit.signReport({ reportData: reportData(nonce, keys.wire, true) }), keys, policyId: 'p' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(decryptReply(res.body, keys), SECRET);
    assert.equal(lab.kds.total(), before, 'the offline host never contacted KDS');
    void vcekPath;
    void crlPath;
  });

  it('import provisions VLEKs (per CSP and TCB, verified to the ASVK/ARK); a VLEK report without tee-certificates then verifies from the cache exactly as with them', async () => {
    const kit = lab.kits.Genoa;
    const { generateKeyPairSync } = await import('node:crypto');
    // A second CSP's VLEK for the same product and TCB: a report names no CSP, the signature picks.
    const other = kit.vlekDer({ key: generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey, cspId: 'CN=other-csp.example' });
    const keys0 = agentKeys();
    const n0 = await getNonce(lab);
    const vlekReport = (nonce: string, k: ReturnType<typeof agentKeys>) => kit.signReport({ reportData: reportData(nonce, k.wire, true), signingKey: 'VLEK', chipId: Buffer.alloc(64) });
    const before = await getSecret(lab, { nonce: n0, report: vlekReport(n0, keys0), keys: keys0, policyId: 'p' });
    assert.equal(before.status, 400, 'nothing provisioned yet');
    assert.equal(lab.daemon.audit.records.at(-1)!.reason, 'VLEK_NOT_SUPPLIED');

    const drop = join(lab.dir, 'csp-vleks');
    mkdirSync(drop);
    writeFileSync(join(drop, 'a-other-csp.der'), other);
    writeFileSync(join(drop, 'b-our-csp.pem'), kit.vlekPem());
    const r = await tas(['kds', 'import', drop], { ...lab.env });
    assert.equal(r.code, 0, r.err + r.out);
    assert.match(r.out, /ok {3}.*a-other-csp\.der: VLEK vlek\/Genoa\/.*other-csp/);
    assert.match(r.out, /2 imported, 0 refused/);
    lab.handles.cache.clearMemory();
    // The offline host also needs the (ARK-signed) VLEK CRL; `tas kds import` cannot tell it from the
    // VCEK CRL (same issuer), so it is provisioned through the cache here.
    await lab.handles.cache.importCrl(kit.crlDer({ thisUpdate: new Date(Date.now() - 3600_000), nextUpdate: new Date(Date.now() + 86400_000) }), 'Genoa', 'VLEK');

    for (const withCerts of [false, true]) {
      const keys = agentKeys();
      const nonce = await getNonce(lab);
      const certificates = withCerts ? Buffer.from(`${kit.vlekPem()}${kit.asvkPem}`) : undefined;
      const res = await getSecret(lab, { nonce, report: vlekReport(nonce, keys), keys, policyId: 'p', ...(certificates ? { certificates } : {}) });
      assert.equal(res.status, 200, `withCerts=${withCerts}: ${JSON.stringify(res.body)} ${JSON.stringify(lab.daemon.audit.records.at(-1))}`);
      assert.equal(decryptReply(res.body, keys), SECRET);
    }
    // A VLEK report signed by a key no provisioned VLEK holds is refused (400), never released.
    const keys = agentKeys();
    const nonce = await getNonce(lab);
    const stranger = kit.signReport({ reportData: reportData(nonce, keys.wire, true), signingKey: 'VLEK', chipId: Buffer.alloc(64) }, generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey);
    const bad = await getSecret(lab, { nonce, report: stranger, keys, policyId: 'p' });
    assert.equal(bad.status, 400);
  });

  it('import refuses a certificate that does not chain to a trusted root', async () => {
    const drop = join(lab.dir, 'untrusted');
    mkdirSync(drop);
    writeFileSync(join(drop, 'vcek.der'), lab.kits.Genoa.vcekDer());
    const r = await tas(['kds', 'import', drop], { TAS_STATE_DIR: join(lab.dir, 'pinned-only') });
    assert.equal(r.code, 1);
    assert.match(r.out, /0 imported, 1 refused/);
  });
});

describe('kds: tas kds prefetch when KDS fails (exit non-zero, one FAIL line per item, with the reason)', function () {
  this.timeout(180_000);
  let lab: Lab;
  let env: Record<string, string>;
  before(async () => {
    lab = await createLab({ products: ['Genoa'] });
    env = { TAS_STATE_DIR: join(lab.dir, 'prefetch-state'), TAS_SNP_EXTRA_TRUST_DIR: lab.env.TAS_SNP_EXTRA_TRUST_DIR!, TAS_API_KEY: '', TAS_MANAGEMENT_API_KEY: '' };
  });
  after(async () => lab?.close());

  const tcbArg = (): string => {
    const t = tcbOf(lab.kits.Genoa);
    return `bl=${t.bootloader},tee=${t.tee},snp=${t.snp},ucode=${t.microcode}`;
  };
  const otherChip = 'ab'.repeat(64);
  const failLines = (out: string): string[] => out.split('\n').filter((l) => l.startsWith('FAIL '));

  it('KDS refusing connections: exit 3, a FAIL line naming the connection failure; no API keys needed', async () => {
    const r = await tas(['kds', 'prefetch', '--timeout', '3', '--product', 'Genoa', '--chip-id', otherChip, '--tcb', tcbArg()], { ...env, TAS_KDS_BASE_URL: `http://127.0.0.1:${await freePort()}` });
    assert.equal(r.code, 3, r.out + r.err);
    assert.equal(failLines(r.out).length, 1, r.out);
    assert.match(failLines(r.out)[0]!, /^FAIL abababababababab…: KDS_UNAVAILABLE: .*(ECONNREFUSED|request failed)/);
    assert.match(r.err, /1 of 1 items could not be fetched/);
  });

  it('KDS answering 503 (with and without Retry-After): exit 3, one FAIL line per item', async () => {
    lab.kds.fault('/vcek/', { status: 503, retryAfter: '120' });
    try {
      const r = await tas(['kds', 'prefetch', '--timeout', '3', '--product', 'Genoa', '--chip-id', otherChip, '--chip-id', 'cd'.repeat(64), '--tcb', tcbArg(), '--format', 'json'], { ...env, TAS_KDS_BASE_URL: lab.kds.url });
      assert.equal(r.code, 3, r.out + r.err);
      const doc = JSON.parse(r.out) as { ok: boolean; failed: number; results: Array<{ ok: boolean; detail: string }> };
      assert.equal(doc.ok, false);
      assert.equal(doc.failed, 2);
      for (const x of doc.results) assert.match(x.detail, /HTTP 503, Retry-After 120/);
      lab.kds.clearFaults();
      lab.kds.fault('/vcek/', { status: 503 });
      const r2 = await tas(['kds', 'prefetch', '--timeout', '2', '--product', 'Genoa', '--chip-id', otherChip, '--tcb', tcbArg()], { ...env, TAS_KDS_BASE_URL: lab.kds.url });
      assert.equal(r2.code, 3, r2.out + r2.err);
      assert.match(failLines(r2.out).join('\n'), /KDS_UNAVAILABLE: .*HTTP 503/);
    } finally {
      lab.kds.clearFaults();
    }
  });

  it('KDS stopped mid-run: the first chip is cached, the rest fail with a reason each, exit 3', async () => {
    const kit = lab.kits.Genoa;
    // The second chip's request hangs until the test stops the whole KDS under it.
    lab.kds.fault(`/vcek/v1/Genoa/${otherChip}`, { hang: true });
    const seen = lab.kds.total(`/vcek/v1/Genoa/${otherChip}`);
    const run = tas(['kds', 'prefetch', '--timeout', '4', '--product', 'Genoa', '--chip-id', kit.chipId.toString('hex'), '--chip-id', otherChip, '--tcb', tcbArg()], { ...env, TAS_KDS_BASE_URL: lab.kds.url });
    for (let i = 0; i < 600 && lab.kds.total(`/vcek/v1/Genoa/${otherChip}`) === seen; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(lab.kds.total(`/vcek/v1/Genoa/${otherChip}`) > seen, 'the second request reached KDS');
    await lab.kds.stop();
    const r = await run;
    assert.equal(r.code, 3, r.out + r.err);
    assert.match(r.out, /^ok {3}Genoa vcek\/Genoa\//m);
    const fails = failLines(r.out);
    assert.ok(fails.length >= 1, r.out);
    assert.match(fails[0]!, /^FAIL abababababababab…: KDS_UNAVAILABLE: /);
    for (const f of fails) assert.match(f, /^FAIL [^:]+: \S+/, 'each failure says why');
    assert.match(r.err, /items could not be fetched/);
  });
});
