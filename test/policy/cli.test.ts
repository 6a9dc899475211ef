import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tasInProcess as tas } from '../support/cli-inproc';
import { MGMT_KEY, CLIENT_KEY } from '../support/daemon';
import { doc, FIXTURES, fixture } from './helpers';

const AGENT = join(__dirname, '..', 'fixtures', 'agent-fixtures');

describe('tas policy CLI', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-policy-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('keygen --force: an existing world-readable key ends 0600 (as printed), a symlink at the key path is replaced, not followed', async () => {
    const out = join(dir, 'forced');
    writeFileSync(`${out}.key.pem`, 'old key\n', { mode: 0o644 });
    chmodSync(`${out}.key.pem`, 0o644);
    const victim = join(dir, 'victim.pem');
    writeFileSync(victim, 'untouched\n', { mode: 0o644 });
    symlinkSync(victim, `${out}.pub.pem`);
    const saved = process.umask(0o022);
    let k;
    try {
      k = await tas(['policy', 'keygen', '--out', out, '--force']);
    } finally {
      process.umask(saved);
    }
    assert.equal(k.code, 0, k.err);
    assert.match(k.out, /\(0600\)/);
    assert.equal(statSync(`${out}.key.pem`).mode & 0o777, 0o600);
    assert.match(readFileSync(`${out}.key.pem`, 'utf8'), /BEGIN PRIVATE KEY/);
    assert.equal(readFileSync(victim, 'utf8'), 'untouched\n', 'the symlink was followed');
    assert.ok(!lstatSync(`${out}.pub.pem`).isSymbolicLink());
    assert.equal(statSync(`${out}.pub.pem`).mode & 0o777, 0o644);
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp')), []);
  });

  it('keygen, sign (PSS 48 default, PKCS#1 option), verify; a tampered file fails', async () => {
    const k = await tas(['policy', 'keygen', '--out', join(dir, 'signer')]);
    assert.equal(k.code, 0, k.err);
    assert.equal(statSync(join(dir, 'signer.key.pem')).mode & 0o777, 0o600);
    assert.match(k.out, /fingerprint \(SHA-256 of SPKI\) [0-9a-f]{64}/);
    assert.equal((await tas(['policy', 'keygen', '--out', join(dir, 'signer')])).code, 2, 'refuses to overwrite');

    writeFileSync(join(dir, 'p.json'), JSON.stringify(doc('cli-1')));
    const s = await tas(['policy', 'sign', join(dir, 'p.json'), '--key', join(dir, 'signer.key.pem'), '--out', join(dir, 'p.signed.json')]);
    assert.equal(s.code, 0, s.err);
    const signed = JSON.parse(readFileSync(join(dir, 'p.signed.json'), 'utf8')) as { signature: { padding: string; value: string } };
    assert.equal(signed.signature.padding, 'PSS');
    assert.equal(Buffer.from(signed.signature.value, 'base64').length, 384, 'RSA-3072 signature');
    const s2 = await tas(['policy', 'sign', join(dir, 'p.json'), '--key', join(dir, 'signer.key.pem'), '--padding', 'pkcs1', '--out', join(dir, 'p.pkcs1.json')]);
    assert.equal(s2.code, 0, s2.err);

    const v = await tas(['policy', 'verify', join(dir, 'p.signed.json'), join(dir, 'p.pkcs1.json'), '--trust', join(dir, 'signer.pub.pem')]);
    assert.equal(v.code, 0, v.out);
    assert.equal((v.out.match(/^OK /gm) ?? []).length, 2);

    writeFileSync(join(dir, 'p.tampered.json'), readFileSync(join(dir, 'p.signed.json'), 'utf8').replace('my-key-1', 'my-key-2'));
    const t = await tas(['policy', 'verify', join(dir, 'p.tampered.json'), '--trust', join(dir, 'signer.pub.pem')]);
    assert.equal(t.code, 1);
    assert.match(t.out, /^FAIL .*p\.tampered\.json/m);

    // The agent-fixtures policy verifies with its trust directory; the legacy one is flagged.
    writeFileSync(join(dir, 'agent.json'), JSON.stringify(fixture<{ signed_policy: object }>('agent-policy.json').signed_policy));
    const a = await tas(['policy', 'verify', join(dir, 'agent.json'), '--trust', join(AGENT, 'policy-trust')]);
    assert.equal(a.code, 0, a.out);
    const legacy = fixture('legacy-rules-only.json');
    Object.assign(legacy.metadata as object, { policy_type: 'SNP', policy_id: 'legacy' });
    writeFileSync(join(dir, 'legacy.json'), JSON.stringify(legacy));
    const l = await tas(['policy', 'verify', join(dir, 'legacy.json'), '--trust', join(FIXTURES, 'python-signer.pem')]);
    assert.match(l.out, /OK .*key binding NOT signed/);

    // Signing refuses a document tas would refuse.
    writeFileSync(join(dir, 'bad.json'), JSON.stringify(doc('cli-bad', { rules: { debug: false } })));
    const b = await tas(['policy', 'sign', join(dir, 'bad.json'), '--key', join(dir, 'signer.key.pem')]);
    assert.equal(b.code, 1);
    assert.match(b.err, /unknown claim 'debug'/);
  });

  it('import re-verifies into the configured store; export keeps signatures; migration into a second store', async () => {
    const trustDir = join(dir, 'trust');
    const src = join(dir, 'src');
    for (const d of [trustDir, src]) rmSync(d, { recursive: true, force: true });
    await tas(['policy', 'keygen', '--out', join(dir, 'mig')]);
    const { mkdirSync } = await import('node:fs');
    mkdirSync(trustDir);
    mkdirSync(src);
    writeFileSync(join(trustDir, 'mig.pem'), readFileSync(join(dir, 'mig.pub.pem')));
    for (const id of ['m1', 'm2']) {
      writeFileSync(join(src, `${id}.json`), JSON.stringify(doc(id)));
      assert.equal((await tas(['policy', 'sign', join(src, `${id}.json`), '--key', join(dir, 'mig.key.pem')])).code, 0);
    }
    writeFileSync(join(src, 'm3.json'), readFileSync(join(src, 'm2.json'), 'utf8').replace('"m2"', '"m3"'));
    const env = (state: string) => ({ TAS_API_KEY: CLIENT_KEY, TAS_MANAGEMENT_API_KEY: MGMT_KEY, TAS_STATE_DIR: state, TAS_POLICY_TRUST: trustDir });

    const i = await tas(['policy', 'import', src], env(join(dir, 'state-a')));
    assert.equal(i.code, 1, 'm3 is tampered (id changed after signing)');
    assert.match(i.out, /stored {2}m1/);
    assert.match(i.out, /REFUSED m3\.json: Policy signature verification failed/);
    assert.match(i.out, /2 stored, 0 already present, 1 refused/);

    const e = await tas(['policy', 'export', '--out', join(dir, 'exported')], env(join(dir, 'state-a')));
    assert.equal(e.code, 0, e.err);
    assert.deepEqual(readdirSync(join(dir, 'exported')).sort(), ['m1.json', 'm2.json']);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'exported', 'm1.json'), 'utf8')), JSON.parse(readFileSync(join(src, 'm1.json'), 'utf8')));
    const e2 = await tas(['policy', 'export', '--out', join(dir, 'all.json')], env(join(dir, 'state-a')));
    assert.equal(e2.code, 0);
    assert.equal((JSON.parse(readFileSync(join(dir, 'all.json'), 'utf8')) as unknown[]).length, 2);

    const j = await tas(['policy', 'import', join(dir, 'all.json')], env(join(dir, 'state-b')));
    assert.equal(j.code, 0, j.out);
    assert.match(j.out, /2 stored, 0 already present, 0 refused/);
    const again = await tas(['policy', 'import', join(dir, 'exported')], env(join(dir, 'state-b')));
    assert.match(again.out, /0 stored, 2 already present, 0 refused/);

    // --format json (output selection is one flag everywhere): import, export --out, keygen, sign.
    const ij = await tas(['policy', 'import', src, '--format', 'json'], env(join(dir, 'state-c')));
    assert.equal(ij.code, 1, ij.out);
    const idoc = JSON.parse(ij.out) as { ok: boolean; stored: number; existed: number; refused: number; results: Array<{ source: string; status: string; id?: string; detail?: string }> };
    assert.deepEqual([idoc.ok, idoc.stored, idoc.existed, idoc.refused], [false, 2, 0, 1]);
    assert.deepEqual(idoc.results.map((r) => `${r.source}:${r.status}`), ['m1.json:stored', 'm2.json:stored', 'm3.json:refused']);
    assert.match(idoc.results[2]!.detail!, /signature verification failed/);
    const ej = await tas(['policy', 'export', '--out', join(dir, 'exported-c'), '--json'], env(join(dir, 'state-c')));
    assert.equal(ej.code, 0, ej.err);
    assert.deepEqual(JSON.parse(ej.out), { exported: 2, out: join(dir, 'exported-c'), ids: ['m1', 'm2'] });
    const kj = await tas(['policy', 'keygen', '--out', join(dir, 'fmt'), '--format', 'json']);
    assert.equal(kj.code, 0, kj.err);
    const kdoc = JSON.parse(kj.out) as { private_key: string; public_key: string; fingerprint: string };
    assert.equal(kdoc.private_key, join(dir, 'fmt.key.pem'));
    assert.match(kdoc.fingerprint, /^[0-9a-f:]{64,}$/i);
    writeFileSync(join(dir, 'fmt.json'), JSON.stringify(doc('fmt1')));
    const sj = await tas(['policy', 'sign', join(dir, 'fmt.json'), '--key', kdoc.private_key, '--format', 'json']);
    assert.equal(sj.code, 0, sj.err);
    assert.deepEqual(JSON.parse(sj.out), { policy_id: 'fmt1', out: join(dir, 'fmt.json') });
  });

  describe('tas policy test', () => {
    const ex = JSON.parse(readFileSync(join(AGENT, 'exchanges', 'ok-03-get_secret.json'), 'utf8')) as { recorded_at: string; request: { body_json: Record<string, string> } };
    let report: string;
    before(() => {
      report = join(dir, 'report.b64');
      writeFileSync(report, ex.request.body_json['tee-evidence']!);
      writeFileSync(join(dir, 'agent-policy.json'), JSON.stringify(fixture<{ signed_policy: object }>('agent-policy.json').signed_policy));
    });
    const reportArgs = () => ['--report', report, '--cert', join(AGENT, 'chain', 'vcek.pem'), '--ca', join(AGENT, 'chain', 'ask.pem'), '--ark', join(AGENT, 'chain', 'ark.pem'), '--at', ex.recorded_at];

    it('passes the agent-fixtures policy against the recorded report, signature checked', async () => {
      const r = await tas(['policy', 'test', '--policy', join(dir, 'agent-policy.json'), '--trust', join(AGENT, 'policy-trust'), ...reportArgs()]);
      assert.equal(r.code, 0, r.out + r.err);
      assert.match(r.out, /signature OK/);
      assert.match(r.out, /PASS measurement exact_match expected "00112233/);
      assert.match(r.out, /PASS vmpl exact_match expected 0 actual 0/);
      assert.match(r.out, /PASS policy\.debug_allowed boolean expected false actual false/);
      assert.match(r.out, /policy PASSES: sev-local-001/);
    });

    it('prints every rule with its verdict and actual value when rules fail', async () => {
      writeFileSync(
        join(dir, 'strict.json'),
        JSON.stringify(doc('strict', { rules: { reported_tcb: { microcode: { min_value: 214 }, snp: { min_value: 23 }, fmc: { min_value: 0 } }, product: 'Genoa', vmpl: 0 } })),
      );
      const r = await tas(['policy', 'test', '--policy', join(dir, 'strict.json'), ...reportArgs()]);
      assert.equal(r.code, 1, r.out + r.err);
      assert.match(r.out, /FAIL reported_tcb\.microcode min_value expected 214 actual 213/);
      assert.match(r.out, /PASS reported_tcb\.snp min_value expected 23 actual 23/);
      assert.match(r.out, /FAIL reported_tcb\.fmc min_value expected 0 actual null/);
      assert.match(r.out, /PASS product exact_match expected "Genoa" actual "Genoa"/);
      assert.match(r.out, /policy FAILS \(2 of 5 rules\)/);
    });

    it('a report that does not verify is a failed check, not a crash', async () => {
      const r = await tas(['policy', 'test', '--policy', join(dir, 'agent-policy.json'), ...reportArgs().slice(0, 4), '--at', ex.recorded_at]);
      assert.equal(r.code, 1, r.out + r.err);
      assert.match(r.out, /report does not verify/);
    });

    it('evaluates a claims JSON as well (--claims)', async () => {
      const claims = { measurement: '00'.repeat(48), vmpl: 1, policy: { debug_allowed: false } };
      writeFileSync(join(dir, 'claims.json'), JSON.stringify({ valid: true, claims }));
      const r = await tas(['policy', 'test', '--policy', join(dir, 'agent-policy.json'), '--claims', join(dir, 'claims.json'), '--json']);
      assert.equal(r.code, 1);
      const out = JSON.parse(r.out) as { ok: boolean; failures: string[]; results: unknown[] };
      assert.equal(out.ok, false);
      assert.equal(out.results.length, 3);
      assert.equal(out.failures.length, 2);
      const usage = await tas(['policy', 'test', '--policy', join(dir, 'agent-policy.json')]);
      assert.equal(usage.code, 2);
    });
  });
});
