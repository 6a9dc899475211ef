/**
 * Logs: JSON lines with ISO time and level labels; logging.level (Python names too) and
 * logging.file, reopened on SIGUSR1 after a rename (child process, real signal); redaction.
 */
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import '../../src/config/all-settings';
import { loadConfig } from '../../src/config';
import { applyLogLevel, createLogger, lazyChild } from '../../src/log';

const keys = { TAS_API_KEY: 'a'.repeat(64), TAS_MANAGEMENT_API_KEY: 'b'.repeat(64) };

function captured(env: Record<string, string> = {}) {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const cfg = loadConfig({ env: { ...keys, ...env } });
  return { log: createLogger(cfg, { destination: sink }), lines, cfg };
}

function readLines(f: string): Array<Record<string, unknown>> {
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : [];
}

describe('log: pino JSON lines', () => {
  it('writes one JSON object per line with an ISO time and a level label', () => {
    const { log, lines } = captured();
    log.info({ a: 1 }, 'hello');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, 'info');
    assert.equal(lines[0]!.msg, 'hello');
    assert.match(String(lines[0]!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('logging.level: default info hides debug; TAS_OVERRIDE__logging__level=DEBUG (Python name) shows it', () => {
    const a = captured();
    a.log.debug('hidden');
    a.log.info('shown');
    assert.deepEqual(a.lines.map((l) => l.msg), ['shown']);
    const b = captured({ TAS_OVERRIDE__logging__level: 'DEBUG' });
    b.log.debug('now shown');
    assert.deepEqual(b.lines.map((l) => l.msg), ['now shown']);
    const c = captured({ TAS_OVERRIDE__logging__level: 'WARNING' });
    c.log.info('hidden');
    c.log.warn('warned');
    assert.deepEqual(c.lines.map((l) => [l.msg, l.level]), [['warned', 'warn']]);
    // SIGHUP path: a reloaded configuration changes the level of the running logger.
    applyLogLevel(c.log, loadConfig({ env: { ...keys, TAS_OVERRIDE__logging__level: 'info' } }));
    c.log.info('after reload');
    assert.equal(c.lines.at(-1)!.msg, 'after reload');
  });

  it('redacts API-key headers, nonces, wrapping keys, evidence and secrets wherever they appear', () => {
    const { log, lines } = captured();
    const material = ['K'.repeat(64), 'M'.repeat(64), 'ab'.repeat(32), 'WRAPKEY', 'EVIDENCE', 'S3CRET', 'PASSW0RD'];
    log.info({
      req: { headers: { 'x-api-key': material[0], 'x-management-api-key': material[1], authorization: `Bearer ${material[0]}` }, body: { nonce: material[2], 'wrapping-key': material[3], 'tee-evidence': material[4] } },
      secret: material[5],
      redis: { password: material[6] },
      nonce: material[2],
    }, 'request');
    const text = JSON.stringify(lines);
    for (const m of material) assert.ok(!text.includes(m), `${m} leaked`);
    assert.match(text, /\[redacted\]/);
  });

  it('logging.file: appends to the file and reopens it on SIGUSR1 after logrotate renamed it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tas-log-'));
    const file = join(dir, 'tas.log');
    const child: ChildProcess = fork(join(__dirname, 'child-logger.ts'), [], {
      env: { PATH: process.env.PATH ?? '', ...keys, TAS_OVERRIDE__logging__file: file },
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    const next = (): Promise<unknown> => new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (c) => reject(new Error(`child exited ${c}`)));
    });
    const say = async (msg: string): Promise<void> => {
      const p = next();
      child.send({ msg });
      await p;
    };
    try {
      await next(); // ready
      await say('one');
      renameSync(file, `${file}.1`);
      await say('two'); // still the renamed file: the descriptor is open
      child.kill('SIGUSR1');
      for (let i = 0; i < 2000 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 5));
      await say('three');
      assert.deepEqual(readLines(`${file}.1`).map((l) => l.msg), ['one', 'two']);
      assert.deepEqual(readLines(file).map((l) => l.msg), ['three']);
      assert.equal(stdout, '', 'nothing goes to stdout when logging.file is set');
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lazyChild (per-request logger): builds no pino child while nothing is logged, at most one when lines are, with bindings and redaction', () => {
    const { log, lines } = captured({ TAS_OVERRIDE__logging__level: 'warn' });
    let children = 0;
    const child = log.child.bind(log);
    log.child = ((b: Record<string, unknown>, o?: Record<string, unknown>) => (children++, child(b, o as never))) as typeof log.child;
    const req = lazyChild(log, { reqId: 'req-1' });
    req.info({ a: 1 }, 'below the level');
    req.debug('below the level');
    assert.equal(children, 0, 'no child for lines below the level');
    assert.equal(lines.length, 0);
    assert.equal(req.level, 'warn');
    assert.equal(req.isLevelEnabled('info'), false);
    req.warn({ headers: { 'x-api-key': 'k'.repeat(40) }, nonce: 'n'.repeat(64) }, 'refused');
    req.error('again');
    assert.equal(children, 1, 'exactly one child, reused');
    assert.equal(lines.length, 2);
    assert.equal(lines[0]!.reqId, 'req-1');
    assert.equal(lines[1]!.reqId, 'req-1');
    assert.deepEqual(lines[0]!.headers, { 'x-api-key': '[redacted]' });
    assert.equal(lines[0]!.nonce, '[redacted]');
    // A reloaded level applies to the loggers of requests already under way.
    applyLogLevel(log, loadConfig({ env: { ...keys, TAS_OVERRIDE__logging__level: 'info' } }));
    const later = lazyChild(log, { reqId: 'req-2' });
    later.info('now enabled');
    assert.equal(lines.at(-1)!.reqId, 'req-2');
    assert.equal(lines.at(-1)!.msg, 'now enabled');
  });

  it('masks the userinfo of URLs in every field and in the message (also inside errors)', () => {
    const { log, lines } = captured();
    const err = new Error('connect to redis://tas:r3dis-pw@10.0.0.1:6379 failed');
    log.warn({ url: 'http://u:pr0xy-pw@proxy:3128', nested: { list: ['https://kds-token@mirror/x'] }, err }, 'fetch via http://u:m5g-pw@proxy:3128 failed');
    const text = JSON.stringify(lines);
    for (const leak of ['r3dis-pw', 'pr0xy-pw', 'kds-token', 'm5g-pw']) assert.ok(!text.includes(leak), `${leak} in ${text}`);
    assert.equal(lines[0]!.url, 'http://***@proxy:3128');
    assert.match(String(lines[0]!.msg), /^fetch via http:\/\/\*\*\*@proxy:3128 failed$/);
    assert.match(JSON.stringify(lines[0]!.err), /redis:\/\/\*\*\*@10\.0\.0\.1:6379/);
    // Text that is not a URL with userinfo is left alone.
    log.info({ email: 'ops@example.com', path: '/a@b' }, 'mail ops@example.com');
    assert.equal(lines[1]!.email, 'ops@example.com');
    assert.equal(lines[1]!.msg, 'mail ops@example.com');
  });
});

