/**
 * Embedded store specifics: policies persist across restarts, a SIGKILL in the middle of a write
 * leaves only whole files, the on-disk format is versioned, and the directories come from the
 * settings (TAS_STATE_DIR, TAS_CACHE_DIR, $STATE_DIRECTORY, $CACHE_DIRECTORY).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import pino from 'pino';
import '../../src/config/all-settings';
import { TasError } from '../../src/errors';
import { EmbeddedStore, openStore } from '../../src/store';
import { parsePolicyFile } from '../../src/store/embedded';
import { testConfig } from '../support/daemon';

const silent = pino({ level: 'silent' });

describe('embedded store: persistence', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-embedded-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps policies and blobs across a restart; nonces live in memory only', async () => {
    const a = new EmbeddedStore({ stateDir: join(dir, 's'), cacheDir: join(dir, 'c') });
    assert.equal(await a.putPolicy('keep', '{"k":1}'), 'created');
    assert.equal(await a.putPolicy('gone', '{"g":1}'), 'created');
    assert.equal(await a.deletePolicy('gone'), true);
    await a.putBlob('ark/Milan', Buffer.from('cert'));
    assert.equal(await a.issue('f'.repeat(64), 60_000, 10), 'issued');
    await a.close();
    const b = new EmbeddedStore({ stateDir: join(dir, 's'), cacheDir: join(dir, 'c') });
    assert.deepEqual(await b.listPolicies(), [{ id: 'keep', doc: '{"k":1}' }]);
    assert.equal(await b.putPolicy('keep', '{"k":2}'), 'exists');
    assert.equal((await b.getBlob('ark/Milan'))?.toString(), 'cert');
    assert.equal(await b.claim('f'.repeat(64), 'o', 1000), 'invalid');
  });

  it('writes a versioned format and refuses files of another format rather than misreading them', async () => {
    const s = new EmbeddedStore({ stateDir: dir, cacheDir: join(dir, 'c') });
    await s.putPolicy('v', '{"a":1}');
    const file = join(dir, 'policies', 'policy.v.json');
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { format: 1, id: 'v', doc: '{"a":1}' });
    writeFileSync(file, JSON.stringify({ format: 2, id: 'v', doc: '{}' }));
    await assert.rejects(s.getPolicy('v'), (e: unknown) => e instanceof TasError && e.code === 'STORE_UNAVAILABLE' && /format 2/.test(e.detail));
    writeFileSync(file, JSON.stringify({ format: 1, id: 'other', doc: '{}' }));
    await assert.rejects(s.getPolicy('v'), (e: unknown) => e instanceof TasError && e.code === 'STORE_UNAVAILABLE');
    // Files that are not policies (an operator's notes) are ignored by list.
    writeFileSync(join(dir, 'policies', 'README'), 'hello');
    writeFileSync(join(dir, 'policies', 'policy.bad id.json'), '{}');
    await s.deletePolicy('v');
    assert.deepEqual(await s.listPolicies(), []);
  });

  it('a SIGKILL in the middle of writes leaves the old or the new file, never a torn one', async function () {
    this.timeout(60_000);
    const writer = join(__dirname, 'fixtures', 'policy-writer.ts');
    let checked = 0;
    for (let round = 0; round < 4; round++) {
      const state = join(dir, `r${round}`);
      const child = spawn(process.execPath, ['--import', 'tsx', writer, state], { stdio: ['ignore', 'pipe', 'pipe'] });
      let done = -1;
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const target = 3 + round * 2;
      await new Promise<void>((res, rej) => {
        child.stdout.on('data', (d: Buffer) => {
          const lines = d.toString().trim().split('\n');
          done = Number(lines[lines.length - 1]);
          // Kill at a different point of the next write each round (a few ms into it).
          if (done >= target) setTimeout(() => child.kill('SIGKILL'), round * 3);
        });
        child.once('exit', (_c, sig) => (sig === 'SIGKILL' ? res() : rej(new Error(`writer exited on its own: ${err}`))));
      });
      const pdir = join(state, 'policies');
      for (const f of readdirSync(pdir)) {
        if (!f.startsWith('policy.')) continue;
        const id = f.slice('policy.'.length, -'.json'.length);
        const p = parsePolicyFile(readFileSync(join(pdir, f), 'utf8'), id, f);
        const doc = JSON.parse(p.doc) as { i: number; tail: string };
        assert.equal(`p${doc.i}`, id);
        assert.equal(doc.tail, `end-${doc.i}`);
        checked++;
      }
      // Reopening removes leftover temp files; every listed policy is whole.
      const s = new EmbeddedStore({ stateDir: state, cacheDir: join(state, 'cache') });
      assert.ok(readdirSync(pdir).every((f) => !f.startsWith('.tmp-')));
      const list = await s.listPolicies();
      assert.ok(list.length >= 4, `round ${round}: ${list.length} policies`);
      assert.ok(list.some((p) => p.id === `p${done}`), 'the last acknowledged write is there');
    }
    assert.ok(checked >= 16, `checked ${checked} files`);
  });

  it('policy reads: no fs call per read while the directory watch is quiet; a change by another store (another process) applies before the next read', async () => {
    const a = new EmbeddedStore({ stateDir: dir, cacheDir: join(dir, 'c') });
    const other = new EmbeddedStore({ stateDir: dir, cacheDir: join(dir, 'c2') });
    try {
      assert.equal(await other.putPolicy('p', '{"v":1}'), 'created');
      assert.equal(await a.getPolicy('p'), '{"v":1}');
      const before = { ...a.policyReads };
      for (let i = 0; i < 200; i++) assert.equal(await a.getPolicy('p'), '{"v":1}');
      assert.equal(a.policyReads.stats - before.stats, 0, 'no stat while nothing changed');
      assert.equal(a.policyReads.cached - before.cached, 200);
      // Another store deletes and re-creates the policy (what `tas policy import` does from its own
      // process): once that call returned, the next read sees the change.
      assert.equal(await other.deletePolicy('p'), true);
      assert.equal(await a.getPolicy('p'), undefined, 'a deleted policy is gone at once');
      assert.equal(await other.putPolicy('p', '{"v":2}'), 'created');
      assert.equal(await a.getPolicy('p'), '{"v":2}');
      // A change behind the store's back by plain file replacement (new inode) is seen too.
      const file = join(dir, 'policies', 'policy.p.json');
      writeFileSync(`${file}.new`, JSON.stringify({ format: 1, id: 'p', doc: '{"v":3}' }));
      renameSync(`${file}.new`, file);
      // The kernel queued the event at once; the loop delivers it on its next poll. A request passes
      // several polls between arriving and reading its policy (body, verification on the pool);
      // two I/O round trips stand for them here.
      await stat(file);
      await stat(file);
      assert.equal(await a.getPolicy('p'), '{"v":3}');
    } finally {
      await a.close();
      await other.close();
    }
  });

  it('policy reads: without a working watch (closed store watch), each read checks its file again', async () => {
    const a = new EmbeddedStore({ stateDir: dir, cacheDir: join(dir, 'c'), now: (() => { let t = 0; return () => (t += 2_000); })() });
    try {
      await a.putPolicy('q', '{"q":1}');
      assert.equal(await a.getPolicy('q'), '{"q":1}');
      const s0 = a.policyReads.stats;
      // The fake clock advances 2 s per read: past POLICY_RECHECK_MS every time, so every read stats.
      for (let i = 0; i < 5; i++) assert.equal(await a.getPolicy('q'), '{"q":1}');
      assert.equal(a.policyReads.stats - s0, 5, 'the periodic re-check bounds a lost inotify event');
    } finally {
      await a.close();
    }
  });

  it('nonce expiry never scans: 200 k outstanding nonces do not change the counted work of get_nonce by more than a small constant factor', async () => {
    let t = 0;
    const s = new EmbeddedStore({ stateDir: dir, cacheDir: join(dir, 'c'), now: () => t });
    let seq = 0;
    const nonce = () => (seq++).toString(16).padStart(64, '0');
    const ttl = 120_000;
    /** workPerIssue: heap nodes visited per issue() over `n` calls, the clock moving 1 ms per call. */
    const workPerIssue = async (n: number, cap: number): Promise<{ work: number; results: Set<string> }> => {
      const w0 = s.countedWork;
      const results = new Set<string>();
      for (let i = 0; i < n; i++) {
        t += 1;
        results.add(await s.issue(nonce(), ttl, cap));
      }
      return { work: (s.countedWork - w0) / n, results };
    };
    const small = await workPerIssue(2_000, 1_000_000);
    // Fill to 200 k outstanding, then keep issuing: below the cap, and at the cap (refusals).
    t += ttl; // the first 2 000 expire
    const fillAt = t;
    for (let i = 0; i < 200_000; i++) await s.issue(nonce(), ttl, 1_000_000);
    assert.equal(await s.count(), 200_000);
    const big = await workPerIssue(2_000, 1_000_000);
    const atCap = await workPerIssue(2_000, 202_000);
    assert.deepEqual([...atCap.results].sort(), ['capacity'], 'the cap is exact: 202 000 outstanding, none expired yet');
    assert.equal(await s.count(), 202_000);
    // Expiry keeps pace with issue: while the clock moves, each issue pops the nodes that are due.
    t = fillAt + ttl; // the 200 k fill expires now; the 2 000 issued after it expire during the next 2 000 issues
    const draining = await workPerIssue(2_000, 1_000_000);
    assert.equal(await s.count(), 2_000, 'only the nonces issued while draining are left');
    console.log(`      heap nodes visited per get_nonce: ${small.work.toFixed(2)} (2 k outstanding), ${big.work.toFixed(2)} (200 k), ${atCap.work.toFixed(2)} (at the 202 k cap), ${draining.work.toFixed(2)} amortised while 200 k expire`);
    assert.ok(big.work <= 3 * small.work + 4, `200 k outstanding: ${big.work} vs ${small.work}`);
    assert.ok(atCap.work <= 3 * small.work + 4, `at the cap: ${atCap.work} vs ${small.work}`);
    // Expiring 200 k nodes costs O(log n) each, spread over the issues that find them due.
    assert.ok(draining.work <= 100 * Math.log2(200_000) + 100, `draining: ${draining.work}`);
    await s.close();
  });

  it('nonce expiry: a claimed nonce past its expiry stays until its lease ends, counted out of the cap; consumed nonces leave no work behind', async () => {
    let t = 0;
    const s = new EmbeddedStore({ stateDir: dir, cacheDir: join(dir, 'c'), now: () => t });
    const n = (i: number) => i.toString(16).padStart(64, 'a');
    assert.equal(await s.issue(n(1), 1_000, 2), 'issued');
    assert.equal(await s.issue(n(2), 1_000, 2), 'issued');
    assert.equal(await s.issue(n(3), 1_000, 2), 'capacity');
    assert.equal(await s.claim(n(1), 'o', 5_000), 'claimed');
    t = 1_500; // both expired; n(1) is still under its lease
    assert.equal(await s.count(), 0);
    assert.equal(await s.issue(n(3), 1_000, 2), 'issued', 'expired nonces do not count, even under a lease');
    assert.equal(await s.issue(n(1), 1_000, 2), 'exists', 'the leased nonce is still there for its holder');
    assert.equal(await s.consume(n(1), 'o'), true, 'its holder may still consume it within the lease');
    t = 10_000;
    assert.equal(await s.count(), 0);
    // Many issued-and-consumed nonces: their heap nodes are dropped, not kept for their TTL.
    for (let i = 0; i < 20_000; i++) {
      const x = n(100 + i);
      assert.equal(await s.issue(x, 3_600_000, 10), 'issued');
      assert.equal(await s.claim(x, 'o', 1000), 'claimed');
      assert.equal(await s.consume(x, 'o'), true);
    }
    assert.equal(await s.count(), 0);
    await s.close();
  });

  it('consumed-by-owner markers: forgotten ones leave at once, and one that stays does not hold the forgotten ones behind it', async () => {
    let t = 0;
    const s = new EmbeddedStore({ stateDir: dir, cacheDir: join(dir, 'c'), now: () => t });
    const n = (i: number) => i.toString(16).padStart(64, '0');
    const cycle = async (i: number, owner: string): Promise<void> => {
      assert.equal(await s.issue(n(i), 60_000, 100), 'issued');
      assert.equal(await s.claim(n(i), owner, 40_000), 'claimed');
      assert.equal(await s.consume(n(i), owner), true);
    };
    await cycle(0, 'kept');
    await cycle(1, 'o1');
    s.forgetConsumed(n(1), 'o1');
    assert.equal(await s.consume(n(1), 'o1'), false, 'forgotten: a repeat is no longer recognised (the pipeline never repeats after forgetting)');
    assert.equal(await s.unconsume(n(1), 'o1'), false);
    assert.equal(await s.consume(n(0), 'kept'), true, 'the marker not forgotten still answers');
    // 10 000 attestations answered and forgotten behind the one marker that stays for its lease.
    for (let i = 2; i < 10_002; i++) {
      t += 1;
      await cycle(i, `o${i}`);
      s.forgetConsumed(n(i), `o${i}`);
    }
    const m = s.consumedMarkers;
    assert.equal(m.live, 1, 'only the marker never forgotten is live');
    assert.ok(m.held <= 1024, `forgotten markers are not held behind it (${m.held} held)`);
    assert.equal(await s.unconsume(n(0), 'kept'), true, 'and it still works');
    await s.close();
  });

  it('cleans stale temp files at open', async () => {
    const s = new EmbeddedStore({ stateDir: dir, cacheDir: join(dir, 'c') });
    await s.close();
    writeFileSync(join(dir, 'policies', '.tmp-deadbeef'), 'half a policy');
    new EmbeddedStore({ stateDir: dir, cacheDir: join(dir, 'c') });
    assert.equal(existsSync(join(dir, 'policies', '.tmp-deadbeef')), false);
  });
});

describe('embedded store: settings', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-embedded-cfg-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('TAS_STATE_DIR places the policies, TAS_CACHE_DIR the blobs', async () => {
    const cfg = testConfig({ TAS_STATE_DIR: join(dir, 'state'), TAS_CACHE_DIR: join(dir, 'cache') });
    assert.equal(cfg.get('store.backend'), 'embedded');
    const s = openStore(cfg, silent);
    await s.putPolicy('here', '{}');
    await s.putBlob('k', Buffer.from('v'));
    assert.ok(existsSync(join(dir, 'state', 'policies', 'policy.here.json')));
    assert.equal(readdirSync(join(dir, 'cache', 'blobs')).filter((f) => f.endsWith('.blob')).length, 1);
    assert.equal(s.info.persistence, resolve(dir, 'state'));
    await s.close();
  });

  it('defaults: $STATE_DIRECTORY / $CACHE_DIRECTORY (systemd), else ./.tas/state and <state>/cache', () => {
    const sd = testConfig({ STATE_DIRECTORY: '/var/lib/tas', CACHE_DIRECTORY: '/var/cache/tas' });
    assert.equal(sd.get('store.state_dir'), '/var/lib/tas');
    assert.equal(sd.get('kds.cache_dir'), '/var/cache/tas');
    const onlyState = testConfig({ TAS_STATE_DIR: join(dir, 'x') });
    assert.equal(onlyState.get('kds.cache_dir'), join(dir, 'x', 'cache'));
    const none = testConfig({});
    assert.equal(none.get('store.state_dir'), './.tas/state');
    assert.equal(none.get('kds.cache_dir'), join('./.tas/state', 'cache'));
  });
});
