/** The composition root: graceful stop, reload, and the real child process with signals. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLIENT_KEY_2, baseEnv, spawnDaemon, startTestDaemon, testConfig } from '../support/daemon';
import { BlockingAttester, CLIENT_KEY, MGMT_KEY, clientHeaders, validBody } from './helpers';

function post(url: string, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = request(url, { method: 'POST', agent: false, headers: { ...clientHeaders, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let b = '';
      res.on('data', (d: Buffer) => (b += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

describe('daemon: graceful stop and reload', () => {
  it('close() stops accepting, lets the in-flight request finish, then runs close hooks in reverse order', async () => {
    const att = new BlockingAttester();
    const events: string[] = [];
    const d = await startTestDaemon({}, {
      services: { attester: att },
      configure: (ctx) => {
        ctx.lifecycle.onClose(() => void events.push('store closed'));
        ctx.lifecycle.onClose(() => void events.push('kbm closed'));
      },
    });
    const inflight = post(`${d.urls.main}/kb/v0/get_secret`, validBody());
    await att.whenStarted(1);
    const closing = d.close();
    await new Promise((r) => setTimeout(r, 50));
    await assert.rejects(fetch(`${d.urls.main}/healthz`), 'no new connections while draining');
    assert.deepEqual(events, [], 'close hooks wait for the in-flight request');
    att.release();
    assert.equal((await inflight).status, 200, 'the in-flight request completed normally');
    await closing;
    assert.deepEqual(events, ['kbm closed', 'store closed']);
    await d.close(); // idempotent
  });

  it('reload() rotates keys; an invalid new configuration is refused and the old keys stay', async () => {
    const d = await startTestDaemon();
    try {
      await d.reload(testConfig({ TAS_API_KEY: CLIENT_KEY_2 }));
      assert.equal((await fetch(`${d.urls.main}/version`, { headers: { 'x-api-key': CLIENT_KEY_2 } })).status, 200);
      assert.equal((await fetch(`${d.urls.main}/version`, { headers: { 'x-api-key': CLIENT_KEY } })).status, 401);
      // a hook failure (here: a key ring the edge refuses) rolls the reload back
      const bad = Object.create(testConfig(), { get: { value: (p: string) => (p === 'auth.client_keys' ? ['short'] : testConfig().get(p)) } });
      await assert.rejects(d.reload(bad), /shorter than 64/);
      assert.equal((await fetch(`${d.urls.main}/version`, { headers: { 'x-api-key': CLIENT_KEY_2 } })).status, 200);
      assert.ok(d.audit.records.some((r) => r.event === 'reload' && r.outcome === 'allow'));
    } finally {
      await d.close();
    }
  });
});

describe('daemon: child process with signals', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'tas-daemon-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('SIGHUP re-reads key files (rotation without restart); a bad file keeps the old keys; SIGTERM exits 0', async () => {
    const keyFile = join(dir, 'client-keys');
    writeFileSync(keyFile, `${CLIENT_KEY}\n`);
    const env = baseEnv({ TAS_API_KEY_FILE: keyFile });
    delete (env as Record<string, string>).TAS_API_KEY;
    const d = await spawnDaemon(env);
    try {
      const version = (key: string) => fetch(`${d.urls.main}/version`, { headers: { 'x-api-key': key } }).then((r) => r.status);
      assert.equal(await version(CLIENT_KEY), 200);
      assert.equal(await version(CLIENT_KEY_2), 401);
      writeFileSync(keyFile, `${CLIENT_KEY_2}\n`);
      d.child.kill('SIGHUP');
      let status = 401;
      for (let i = 0; i < 100 && status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 50));
        status = await version(CLIENT_KEY_2);
      }
      assert.equal(status, 200, 'rotated-in key accepted after SIGHUP');
      assert.equal(await version(CLIENT_KEY), 401, 'rotated-out key refused');
      writeFileSync(keyFile, 'too-short\n');
      d.child.kill('SIGHUP');
      for (let i = 0; i < 100 && !d.output().includes('reload refused'); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(d.output(), /reload refused/);
      assert.equal(await version(CLIENT_KEY_2), 200, 'old keys kept after a bad reload');
      assert.ok(!d.output().includes(CLIENT_KEY_2) && !d.output().includes(MGMT_KEY), 'keys never logged');
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });

  it('a child with an invalid configuration refuses to start and says why', async () => {
    await assert.rejects(spawnDaemon(baseEnv({ TAS_API_KEY: 'short' })), /TAS_API_KEY.*shorter than 64/);
  });
});
