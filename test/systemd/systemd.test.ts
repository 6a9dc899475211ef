/**
 * systemd integration: LISTEN_FDS parsing, sockaddr_un encoding, real sd_notify datagrams to a
 * python listener (path and abstract), and `tas serve` under systemd-socket-activate: READY=1
 * once the inherited socket serves, WATCHDOG=1 pings, STOPPING=1 on SIGTERM and a clean exit.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenFds, notify, ready, sockaddrUn, status, stopping, watchdogInterval } from '../../src/systemd';
import { exited, freePort, get, Lines, NotifyListener, ROOT, tasArgs } from './harness';

const KEY = 'systemd-test-client-key-0123456789abcdef0123456789abcdef0123456789';
const MKEY = 'systemd-test-management-key-0123456789abcdef0123456789abcdef012345';

describe('systemd: socket activation and sd_notify', function () {
  this.timeout(180_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-systemd-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('listenFds: takes LISTEN_FDS for this pid only, with names, and unsets the variables', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: '2', LISTEN_PID: '4242', LISTEN_FDNAMES: 'http:management', OTHER: 'x' };
    assert.deepEqual(listenFds(env, 4242), [{ fd: 3, name: 'http' }, { fd: 4, name: 'management' }]);
    assert.deepEqual(Object.keys(env), ['OTHER']);
    const foreign: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: '1' };
    assert.deepEqual(listenFds(foreign, 4242), []);
    assert.deepEqual(Object.keys(foreign), []);
    assert.deepEqual(listenFds({ LISTEN_FDS: '1', LISTEN_PID: '7' }, 7), [{ fd: 3, name: 'unknown' }]);
    assert.throws(() => listenFds({ LISTEN_FDS: 'x', LISTEN_PID: '7' }, 7), /LISTEN_FDS/);
    assert.deepEqual(listenFds({}, 7), []);
  });

  it('sockaddrUn: AF_UNIX + NUL-terminated path, or leading NUL for @abstract; too long refused', () => {
    const p = sockaddrUn('/run/x');
    assert.equal(p.readUInt16LE(0), 1);
    assert.deepEqual(p.subarray(2), Buffer.from('/run/x\0'));
    const a = sockaddrUn('@tas');
    assert.deepEqual(a.subarray(2), Buffer.from('\0tas'));
    assert.throws(() => sockaddrUn(`/${'x'.repeat(200)}`), /not a valid unix socket address/);
    assert.throws(() => sockaddrUn(''), /not a valid/);
  });

  it('watchdogInterval: WATCHDOG_USEC in ms, only for WATCHDOG_PID = this pid', () => {
    assert.equal(watchdogInterval({ WATCHDOG_USEC: '3000000' }, 9), 3000);
    assert.equal(watchdogInterval({ WATCHDOG_USEC: '3000000', WATCHDOG_PID: '9' }, 9), 3000);
    assert.equal(watchdogInterval({ WATCHDOG_USEC: '3000000', WATCHDOG_PID: '8' }, 9), undefined);
    assert.equal(watchdogInterval({}, 9), undefined);
  });

  for (const kind of ['path', 'abstract'] as const) {
    it(`notify: sends datagrams from this pid to a ${kind} NOTIFY_SOCKET; no-op when unset`, async () => {
      const address = kind === 'path' ? join(dir, 'notify.sock') : `@tas-test-${process.pid}-${Date.now()}`;
      const l = new NotifyListener(address);
      const saved = process.env.NOTIFY_SOCKET;
      try {
        await l.bound();
        delete process.env.NOTIFY_SOCKET;
        assert.equal(ready('nobody listens'), false);
        process.env.NOTIFY_SOCKET = address;
        assert.equal(ready('serving\nsomething'), true);
        assert.equal(status('degraded: store'), true);
        assert.equal(stopping(), true);
        const m = await l.waitMsg(/^STOPPING=1$/, 'STOPPING=1');
        const msgs = l.messages().map((x) => x.msg);
        assert.deepEqual(msgs, [`READY=1\nSTATUS=serving something\nMAINPID=${process.pid}`, 'STATUS=degraded: store', 'STOPPING=1']);
        assert.equal(m.pid, process.pid);
        assert.equal(notify('X=1', { NOTIFY_SOCKET: join(dir, 'nobody-here.sock') }), false);
      } finally {
        if (saved === undefined) delete process.env.NOTIFY_SOCKET;
        else process.env.NOTIFY_SOCKET = saved;
        l.stop();
      }
    });
  }

  it('tas serve under systemd-socket-activate: READY after the socket serves, WATCHDOG pings, RELOADING/READY on SIGHUP, STOPPING on SIGTERM', async () => {
    const sock = join(dir, 'serve-notify.sock');
    const l = new NotifyListener(sock);
    await l.bound();
    const port = await freePort();
    const env = {
      NOTIFY_SOCKET: sock,
      WATCHDOG_USEC: '400000',
      TAS_API_KEY: KEY,
      TAS_MANAGEMENT_API_KEY: MKEY,
      TAS_STATE_DIR: join(dir, 'state'),
      TAS_AUDIT_FILE: join(dir, 'audit.log'),
      TAS_KBM_CONFIG_FILE: join(dir, 'kbm.yaml'),
    };
    writeFileSync(env.TAS_KBM_CONFIG_FILE, 'secrets:\n  k1: { value_utf8: "systemd test secret" }\n');
    const sa: ChildProcess = spawn(
      'systemd-socket-activate',
      ['-l', `127.0.0.1:${port}`, '--fdname=http', ...Object.entries(env).flatMap(([k, v]) => ['-E', `${k}=${v}`]), process.execPath, ...tasArgs('serve')],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const out = new Lines(sa.stdout!);
    const err = new Lines(sa.stderr!);
    try {
      await err.wait((x) => x.includes(`Listening on 127.0.0.1:${port}`), 'systemd-socket-activate to listen', 20_000);
      assert.equal(l.messages().length, 0, 'nothing before the first connection');
      // The first connection makes systemd-socket-activate exec tas on the listening socket (fd 3);
      // it waits in the backlog until tas serves it.
      const first = await get(`http://127.0.0.1:${port}/version`, { 'x-api-key': KEY });
      assert.equal(first.status, 200, first.body);
      const readyMsg = await l.waitMsg(/^READY=1/m, 'READY=1');
      assert.match(readyMsg.msg, /STATUS=serving http:\/\/127\.0\.0\.1:\d+/);
      assert.match(readyMsg.msg, new RegExp(`MAINPID=${sa.pid}`));
      assert.equal(readyMsg.pid, sa.pid, 'READY must come from the main pid (systemd-socket-activate execs tas)');
      // READY means serving: an immediate request is answered.
      assert.equal((await get(`http://127.0.0.1:${port}/version`, { 'x-api-key': KEY })).status, 200);
      assert.match(out.text(), /socket activation: serving inherited sockets/);
      const before = l.messages().filter((m) => m.msg === 'WATCHDOG=1').length;
      await l.waitMsg(/^WATCHDOG=1$/, 'WATCHDOG=1');
      for (let i = 0; i < 400 && l.messages().filter((m) => m.msg === 'WATCHDOG=1').length < before + 3; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(l.messages().filter((m) => m.msg === 'WATCHDOG=1').length >= 3, 'at least three WATCHDOG=1 pings');
      // SIGHUP: RELOADING=1, then READY=1 again once the new configuration applies.
      const readies = l.messages().filter((m) => m.msg.startsWith('READY=1')).length;
      sa.kill('SIGHUP');
      await l.waitMsg(/^RELOADING=1/, 'RELOADING=1');
      await l.lines.wait((x) => x.includes('"msg"') && l.messages().filter((m) => m.msg.startsWith('READY=1')).length > readies, 'READY=1 after the reload');
      assert.match(l.messages().filter((m) => m.msg.startsWith('READY=1')).at(-1)!.msg, /configuration reloaded/);
      sa.kill('SIGTERM');
      await l.waitMsg(/^STOPPING=1$/, 'STOPPING=1');
      assert.equal(await exited(sa), 0);
      const msgs = l.messages().map((m) => m.msg.split('\n')[0]);
      assert.equal(msgs[0], 'READY=1', 'READY is the first message');
      assert.equal(msgs.at(-1), 'STOPPING=1', 'STOPPING is the last message');
      assert.ok(l.messages().every((m) => m.pid === sa.pid));
    } finally {
      sa.kill('SIGKILL');
      l.stop();
    }
  });
});

describe('systemd: STATUS= for degraded dependencies', function () {
  this.timeout(120_000);
  it('tas serve with an unreachable Redis: READY=1 (serving), then STATUS= naming the failed dependency', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tas-status-'));
    const sock = join(dir, 'notify.sock');
    const l = new NotifyListener(sock);
    await l.bound();
    const [port, deadRedis] = [await freePort(), await freePort()];
    writeFileSync(join(dir, 'kbm.yaml'), 'secrets:\n  k1: { value_utf8: "s" }\n');
    const child = spawn(process.execPath, tasArgs('serve', '--port', String(port)), {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '', NOTIFY_SOCKET: sock, TAS_API_KEY: KEY, TAS_MANAGEMENT_API_KEY: MKEY,
        TAS_KBM_CONFIG_FILE: join(dir, 'kbm.yaml'), TAS_STORE: 'redis', TAS_REDIS_URL: `redis://127.0.0.1:${deadRedis}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = new Lines(child.stdout!);
    const err = new Lines(child.stderr!);
    try {
      const first = await Promise.race([
        l.waitMsg(/^(READY=1|STATUS=)/, 'READY or STATUS', 100_000),
        exited(child).then((c) => {
          throw new Error(`tas serve exited ${c}:\n${out.text()}\n${err.text()}`);
        }),
      ]);
      assert.match(first.msg, /^READY=1/);
      const degraded = await l.waitMsg(/^STATUS=.*degraded: .*store/, 'STATUS= naming the store', 60_000);
      assert.equal(degraded.pid, child.pid);
      const r = await get(`http://127.0.0.1:${port}/readyz`);
      assert.equal(r.status, 503);
      assert.match(r.body, /store/);
    } finally {
      child.kill('SIGKILL');
      l.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('tas serve with no key broker configured: serving but not ready, the reason in STATUS= and /readyz, no exit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tas-nokbm-'));
    const sock = join(dir, 'notify.sock');
    const l = new NotifyListener(sock);
    await l.bound();
    const port = await freePort();
    const child = spawn(process.execPath, tasArgs('serve', '--port', String(port)), {
      cwd: dir,
      // The shipped /etc/tas/tas.yaml leaves kbm commented out: no TAS_KBM_PLUGIN, no TAS_KBM_CONFIG_FILE.
      env: { PATH: process.env.PATH ?? '', NOTIFY_SOCKET: sock, TAS_API_KEY: KEY, TAS_MANAGEMENT_API_KEY: MKEY, TAS_STATE_DIR: join(dir, 'state') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = new Lines(child.stdout!);
    const err = new Lines(child.stderr!);
    try {
      const first = await Promise.race([
        l.waitMsg(/^READY=1/, 'READY', 100_000),
        exited(child).then((c) => {
          throw new Error(`tas serve exited ${c} (a restart loop under systemd):\n${out.text()}\n${err.text()}`);
        }),
      ]);
      assert.equal(first.pid, child.pid);
      const st = await l.waitMsg(/^STATUS=.*degraded: .*kbm: no key broker configured/, 'STATUS= naming the missing key broker', 60_000);
      assert.match(st.msg, /set kbm\.plugin and kbm\.config_file/);
      const r = await get(`http://127.0.0.1:${port}/readyz`);
      assert.equal(r.status, 503);
      assert.match(r.body, /kbm/);
      assert.equal(child.exitCode, null, 'still running');
    } finally {
      child.kill('SIGKILL');
      l.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
