/**
 * The audit stream: schema, hash chain, continuation after a restart, scrubbing of secrets, and
 * `tas audit verify` detecting deleted, edited, reordered and truncated records.
 */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../src/config/all-settings';
import { loadConfig } from '../../src/config';
import { runTas } from '../cli/in-process';
import { canonicalJson } from '../../src/audit/record';
import canonicalize from 'canonicalize';
import { openAudit, recordHash, validateRecord, verifyAudit, ZERO_HASH, type AuditRecord } from '../../src/audit';

const keys = { TAS_API_KEY: 'a'.repeat(64), TAS_MANAGEMENT_API_KEY: 'b'.repeat(64) };
const cfgFor = (file?: string) => loadConfig({ env: file ? { ...keys, TAS_AUDIT_FILE: file } : keys });

function lines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
}

async function writeRecords(file: string, n: number): Promise<void> {
  const a = openAudit(cfgFor(file), { reopenOnSignal: false });
  for (let i = 0; i < n; i++) a.record({ event: 'get_secret', outcome: i % 2 ? 'deny' : 'allow', reason: i % 2 ? 'TEE_VERIFICATION_FAILED' : 'OK', requestId: `req-${i}`, client: '127.0.0.1', details: { key_id: `k${i}` } });
  await a.close();
}

async function tasVerify(...files: string[]): Promise<{ code: number; out: string }> {
  const r = await runTas('audit', 'verify', ...files);
  return { code: r.code, out: r.out + r.err };
}

describe('audit: stream and verification', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-audit-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes schema-valid records numbered from 1, each chained to the one before', async () => {
    const f = join(dir, 'audit.log');
    await writeRecords(f, 5);
    const recs = lines(f).map((l) => JSON.parse(l) as AuditRecord);
    assert.equal(recs.length, 5);
    recs.forEach((r, i) => {
      assert.deepEqual(validateRecord(r), [], JSON.stringify(r));
      assert.equal(r.seq, i + 1);
      assert.equal(r.prev, i === 0 ? ZERO_HASH : recs[i - 1]!.hash);
      assert.equal(r.hash, recordHash(r));
      assert.equal(r.audit, undefined, 'file records are not tagged');
      assert.equal(r.request_id, `req-${i}`);
    });
    assert.deepEqual(Object.keys(recs[0]!), ['v', 'seq', 'time', 'event', 'outcome', 'reason', 'request_id', 'client', 'details', 'prev', 'hash']);
    assert.equal(verifyAudit([f]).ok, true);
  });

  it('records of one event-loop turn leave in one write, chained in order', async () => {
    const f = join(dir, 'audit.log');
    const a = openAudit(cfgFor(f), { reopenOnSignal: false });
    const writes = () => (a as unknown as { writes: number }).writes;
    await a.whenWritten();
    const w0 = writes();
    for (let i = 0; i < 6; i++) a.record({ event: 'get_nonce', outcome: 'allow', reason: 'OK', requestId: `turn-${i}`, client: '127.0.0.1' });
    await a.whenWritten();
    assert.equal(writes() - w0, 1, 'six records, one batch');
    a.record({ event: 'get_nonce', outcome: 'allow', reason: 'OK', requestId: 'later', client: '127.0.0.1' });
    await a.whenWritten();
    assert.equal(writes() - w0, 2);
    await a.close();
    const recs = lines(f).map((l) => JSON.parse(l) as AuditRecord);
    assert.deepEqual(recs.slice(-7).map((r) => r.request_id), ['turn-0', 'turn-1', 'turn-2', 'turn-3', 'turn-4', 'turn-5', 'later']);
    assert.equal(verifyAudit([f]).ok, true);
  });

  it('continues seq and chain after a restart by reading the last record of the file', async () => {
    const f = join(dir, 'audit.log');
    await writeRecords(f, 3);
    await writeRecords(f, 2);
    const seqs = lines(f).map((l) => (JSON.parse(l) as AuditRecord).seq);
    assert.deepEqual(seqs, [1, 2, 3, 4, 5]);
    const r = verifyAudit([f]);
    assert.deepEqual(r.problems, []);
    assert.equal(r.records, 5);
  });

  it('tags stdout records with "audit": true', async () => {
    const out: string[] = [];
    const a = openAudit(cfgFor(), { write: (l) => out.push(l) });
    a.record({ event: 'auth', outcome: 'deny', reason: 'AUTH_INVALID' });
    a.record({ event: 'auth', outcome: 'deny', reason: 'AUTH_INVALID' });
    await a.close();
    const recs = out.map((l) => JSON.parse(l) as AuditRecord);
    assert.deepEqual(recs.map((r) => [r.audit, r.seq]), [[true, 1], [true, 2]]);
    for (const r of recs) assert.deepEqual(validateRecord(r), []);
    assert.equal(recs[1]!.prev, recs[0]!.hash);
  });

  it('never writes secrets, nonces, wrapping keys or evidence: only their digests', async () => {
    const out: string[] = [];
    const a = openAudit(cfgFor(), { write: (l) => out.push(l) });
    const nonce = 'ab'.repeat(32);
    a.record({
      event: 'get_secret', outcome: 'allow', reason: 'OK',
      details: { nonce, 'wrapping-key': 'MIIBIjANBgkq', evidence: Buffer.from('report-bytes'), nested: { secret: 'S3CRET', api_key: 'K3Y' }, raw: Buffer.from('xyz'), policy_id: 'p1', nonce_sha256: 'ff'.repeat(32) },
    });
    await a.close();
    const text = out.join('');
    for (const s of [nonce, 'MIIBIjANBgkq', 'report-bytes', Buffer.from('report-bytes').toString('base64'), 'S3CRET', 'K3Y', 'xyz']) assert.ok(!text.includes(s), `${s} leaked`);
    const d = (JSON.parse(out[0]!) as AuditRecord).details as Record<string, unknown>;
    assert.match(String(d.nonce), /^sha256:[0-9a-f]{64}$/);
    assert.equal(d.policy_id, 'p1');
    assert.equal(d.nonce_sha256, 'ff'.repeat(32));
  });

  it('masks the userinfo of URLs quoted in details (a KDS error through a proxy with credentials)', async () => {
    const out: string[] = [];
    const a = openAudit(cfgFor(), { write: (l) => out.push(l) });
    a.record({ event: 'get_secret', outcome: 'error', reason: 'KDS_UNAVAILABLE', details: { detail: 'KDS https://kds-user:kds-pw@mirror.example/vcek/v1/Genoa/ab: timeout', list: ['redis://:r3dis-pw@h:6379'] } });
    await a.close();
    const text = out.join('');
    for (const leak of ['kds-pw', 'kds-user', 'r3dis-pw']) assert.ok(!text.includes(leak), `${leak} in ${text}`);
    assert.match(text, /https:\/\/\*\*\*@mirror\.example\/vcek/);
  });

  it('bounds details (long strings, deep nesting, many keys)', async () => {
    const out: string[] = [];
    const a = openAudit(cfgFor(), { write: (l) => out.push(l) });
    const many = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, i]));
    a.record({ event: 'x', outcome: 'error', reason: 'R', details: { long: 'y'.repeat(10_000), deep: { a: { b: { c: { d: { e: 1 } } } } }, many } });
    await a.close();
    assert.ok(out[0]!.length < 8_000, `record is ${out[0]!.length} bytes`);
    assert.deepEqual(validateRecord(JSON.parse(out[0]!)), []);
  });

  it('verify detects a deleted record (gap)', async () => {
    const f = join(dir, 'a.log');
    await writeRecords(f, 5);
    const l = lines(f);
    writeFileSync(f, [l[0], l[1], l[3], l[4]].join('\n') + '\n');
    const r = verifyAudit([f]);
    assert.equal(r.ok, false);
    assert.match(r.problems.join('\n'), /gap: records seq 3\.\.3 are missing/);
    const cli = await tasVerify(f);
    assert.equal(cli.code, 1, cli.out);
    assert.match(cli.out, /TAMPERED/);
  });

  it('verify detects an edited record, even when its hash was recomputed', async () => {
    const f = join(dir, 'a.log');
    await writeRecords(f, 4);
    const l = lines(f);
    const edited = JSON.parse(l[1]!) as AuditRecord;
    edited.outcome = 'allow';
    l[1] = JSON.stringify(edited);
    writeFileSync(f, l.join('\n') + '\n');
    assert.match(verifyAudit([f]).problems.join('\n'), /record seq 2 was edited/);
    edited.hash = recordHash(edited);
    l[1] = JSON.stringify(edited);
    writeFileSync(f, l.join('\n') + '\n');
    assert.match(verifyAudit([f]).problems.join('\n'), /seq 3: prev is not the hash of the record before it/);
    assert.equal((await tasVerify(f)).code, 1);
  });

  it('verify detects reordered records and a truncated last line', async () => {
    const f = join(dir, 'a.log');
    await writeRecords(f, 4);
    const l = lines(f);
    writeFileSync(f, [l[0], l[2], l[1], l[3]].join('\n') + '\n');
    const p = verifyAudit([f]).problems.join('\n');
    assert.match(p, /reordered|gap/);
    writeFileSync(f, l.join('\n') + '\n' + l[3]!.slice(0, 40));
    assert.match(verifyAudit([f]).problems.join('\n'), /last line is truncated/);
    writeFileSync(f, l.join('\n') + '\n');
    const ok = await tasVerify(f);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /OK: 4 records/);
  });

  it('after a crash mid-record, resumes the chain and says so in the stream', async () => {
    const f = join(dir, 'a.log');
    await writeRecords(f, 2);
    appendFileSync(f, '{"v":1,"seq":3,"ti');
    await writeRecords(f, 1);
    const recs = lines(f);
    const last = JSON.parse(recs[recs.length - 1]!) as AuditRecord;
    const recovered = JSON.parse(recs[recs.length - 2]!) as AuditRecord;
    assert.equal(recovered.event, 'audit.recovered');
    assert.equal(recovered.seq, 3);
    assert.equal(last.seq, 4);
    // The torn line stays as evidence: verify reports it.
    assert.match(verifyAudit([f]).problems.join('\n'), /not a JSON record/);
  });

  it('reopens the file on SIGUSR1 (logrotate) and continues the chain across rotated files', async () => {
    const f = join(dir, 'a.log');
    const a = openAudit(cfgFor(f));
    a.record({ event: 'e', outcome: 'allow', reason: 'R' });
    a.record({ event: 'e', outcome: 'allow', reason: 'R' });
    // Records still queued when logrotate renames may land in either file (both verify as one
    // chain); this test pins them to the old one.
    await a.whenWritten();
    renameSync(f, `${f}.1`);
    process.kill(process.pid, 'SIGUSR1');
    for (let i = 0; i < 1000 && !existsSync(f); i++) await new Promise((r) => setTimeout(r, 5));
    a.record({ event: 'e', outcome: 'allow', reason: 'R' });
    await a.close();
    assert.equal(lines(`${f}.1`).length, 2);
    assert.deepEqual(lines(f).map((l) => (JSON.parse(l) as AuditRecord).seq), [3]);
    const both = verifyAudit([`${f}.1`, f]);
    assert.deepEqual(both.problems, []);
    assert.equal(both.lastSeq, 3);
    assert.match(verifyAudit([f]).problems.join('\n'), /starts at seq 3, not 1/);
    assert.equal(verifyAudit([f], { partial: true }).ok, true);
    // Rotated files given in the wrong order are caught too.
    assert.equal(verifyAudit([f, `${f}.1`]).ok, false);
  });

  it('a full disk never throws into request handling: failures are counted (readiness reports them)', async () => {
    const a = openAudit(cfgFor('/dev/full'), { reopenOnSignal: false });
    const saved = process.stderr.write.bind(process.stderr);
    const errs: string[] = [];
    process.stderr.write = ((c: string) => (errs.push(String(c)), true)) as typeof process.stderr.write;
    try {
      assert.doesNotThrow(() => a.record({ event: 'get_secret', outcome: 'allow', reason: 'OK' }));
      a.record({ event: 'get_secret', outcome: 'allow', reason: 'OK' });
      // The writer is asynchronous: the HTTP layer waits for this before replying.
      await a.whenWritten();
      assert.equal(a.whenWritten(), undefined, 'nothing pending once the writer is done');
    } finally {
      process.stderr.write = saved;
    }
    assert.equal(a.failures, 2);
    assert.equal(a.seq, 0, 'records that were not written do not advance the chain');
    assert.match(errs.join(''), /audit record not written: ENOSPC/);
    await a.close();
  });

  it('tas audit verify: exit 2 for a missing file or no file', async () => {
    assert.equal((await tasVerify(join(dir, 'nope'))).code, 2);
    assert.equal((await tasVerify()).code, 2);
  });

  it('each record is serialised once: the canonical text of details equals RFC 8785 (canonicalize) on every kind of value', () => {
    const odd = {
      z: 1, a: [1, 'two', null, true, { y: 2, b: -0.5e-7 }], 'é': 'ü\u2028\u0000"\\', '\u00e9x': 1e21, B: 123456789012345680000, '': {}, n: { m: { l: [] } },
      surrogate: '\ud83d\ude00 \ud800', num: 0.1 + 0.2,
    };
    assert.equal(canonicalJson(odd), canonicalize(odd));
    assert.equal(canonicalJson([]), canonicalize([]));
    assert.equal(canonicalJson('x'), canonicalize('x'));
  });

  it('file records are written by an asynchronous writer: whenWritten() settles once write(2) returned; the chain is kept across batches', async () => {
    const f = join(dir, 'w.log');
    const a = openAudit(cfgFor(f), { reopenOnSignal: false });
    assert.equal(a.whenWritten(), undefined, 'nothing pending at first');
    for (let i = 0; i < 50; i++) a.record({ event: 'get_nonce', outcome: 'allow', reason: 'ISSUED', details: { i, nested: { b: 1, a: 2 } } });
    const pending = a.whenWritten();
    assert.ok(pending instanceof Promise, 'records queued: a promise to wait for');
    await pending;
    assert.equal(lines(f).length, 50, 'all written once whenWritten settled');
    assert.equal(a.seq, 50);
    for (let i = 0; i < 10; i++) {
      a.record({ event: 'get_secret', outcome: 'deny', reason: 'X', details: { i } });
      await a.whenWritten();
    }
    await a.close();
    const recs = lines(f).map((l) => JSON.parse(l) as AuditRecord);
    assert.deepEqual(recs.map((r) => r.seq), Array.from({ length: 60 }, (_, i) => i + 1));
    recs.forEach((r) => assert.equal(r.hash, recordHash(r)));
    assert.deepEqual(verifyAudit([f]).problems, []);
    a.record({ event: 'late', outcome: 'allow', reason: 'R' });
    assert.equal(a.failures, 1, 'a record after close is counted, not written');
  });
});
