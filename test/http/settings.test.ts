/**
 * One behavioural check per HTTP setting (PROTOCOL.md §5 names). Settings whose behaviour needs a
 * bigger set-up are exercised in the named files:
 *   server.tls.*, server.allow_plaintext, management.*  -> listeners.test.ts
 *   server.trusted_proxies, server.rate_limit, server.max_inflight -> edge.test.ts
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { loadConfig, settingByEnv } from '../../src/config';
import { CLIENT_KEY_2, startTestDaemon, testConfig } from '../support/daemon';
import { CLIENT_KEY, MGMT_KEY, clientHeaders, makeApp } from './helpers';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

describe('http: settings', () => {
  it('registers the PROTOCOL.md §5 names', () => {
    const expected: Record<string, string> = {
      TAS_API_KEY: 'auth.client_keys', TAS_MANAGEMENT_API_KEY: 'auth.management_keys', TAS_API_KEY_MIN_LENGTH: 'auth.min_key_length',
      TAS_SERVER_HOST: 'server.host', TAS_SERVER_PORT: 'server.port', TAS_TLS_CERT_FILE: 'server.tls.cert_file', TAS_TLS_KEY_FILE: 'server.tls.key_file',
      TAS_ALLOW_PLAINTEXT: 'server.allow_plaintext', TAS_MANAGEMENT_HOST: 'management.host', TAS_MANAGEMENT_PORT: 'management.port',
      TAS_MANAGEMENT_CLIENT_CA_FILE: 'management.client_ca_file', TAS_TRUSTED_PROXIES: 'server.trusted_proxies',
      TAS_CLIENT_RATE_LIMIT: 'server.rate_limit', TAS_MAX_INFLIGHT: 'server.max_inflight',
    };
    for (const [env, path] of Object.entries(expected)) assert.equal(settingByEnv(env)?.path, path, env);
    const cfg = testConfig();
    assert.equal(cfg.get('server.host'), '127.0.0.1');
    assert.equal(cfg.get('auth.min_key_length'), 64);
    assert.equal(cfg.get('server.rate_limit'), '200/minute');
    assert.equal(cfg.get('server.max_inflight'), 256);
    assert.equal(cfg.get('server.allow_plaintext'), false);
    assert.deepEqual(cfg.get('server.trusted_proxies'), []);
    assert.equal(testConfig({ TAS_SERVER_PORT: '5000' }).get('server.port'), 5000);
  });

  it('TAS_API_KEY takes a list (rotation): every listed key passes', async () => {
    const t = await makeApp({ TAS_API_KEY: `${CLIENT_KEY}, ${CLIENT_KEY_2}` });
    try {
      for (const k of [CLIENT_KEY, CLIENT_KEY_2]) assert.equal((await t.app.inject({ url: '/version', headers: { 'x-api-key': k } })).statusCode, 200);
    } finally {
      await t.app.close();
    }
  });

  it('TAS_MANAGEMENT_API_KEY is the management key; it is required, as is TAS_API_KEY', async () => {
    const other = `other-management-key-${'m'.repeat(60)}`;
    const t = await makeApp({ TAS_MANAGEMENT_API_KEY: other });
    try {
      assert.equal((await t.app.inject({ url: '/management/status', headers: { 'x-management-api-key': other } })).statusCode, 200);
      assert.equal((await t.app.inject({ url: '/management/status', headers: { 'x-management-api-key': MGMT_KEY } })).statusCode, 401);
    } finally {
      await t.app.close();
    }
    assert.throws(() => loadConfig({ env: { TAS_API_KEY: CLIENT_KEY } }), /TAS_MANAGEMENT_API_KEY.*required/);
    assert.throws(() => loadConfig({ env: { TAS_MANAGEMENT_API_KEY: MGMT_KEY } }), /TAS_API_KEY.*required/);
  });

  it('TAS_API_KEY_MIN_LENGTH moves the bar for every key', () => {
    assert.throws(() => testConfig({ TAS_API_KEY_MIN_LENGTH: '100' }), /shorter than 100/);
    const short = 's'.repeat(40);
    assert.throws(() => testConfig({ TAS_API_KEY: short }), /shorter than 64/);
    assert.deepEqual(testConfig({ TAS_API_KEY_MIN_LENGTH: '32', TAS_API_KEY: short }).get('auth.client_keys'), [short]);
    assert.throws(() => testConfig({ TAS_API_KEY_MIN_LENGTH: '8' }), />= 32/);
  });

  it('TAS_SERVER_HOST / TAS_SERVER_PORT choose the listening address (IPv6 loopback too)', async () => {
    const port = await freePort();
    const d = await startTestDaemon({ TAS_SERVER_HOST: '::1', TAS_SERVER_PORT: String(port) });
    try {
      assert.equal(d.urls.main, `http://[::1]:${port}`);
      assert.equal((await fetch(`http://[::1]:${port}/version`, { headers: clientHeaders })).status, 200);
      await assert.rejects(fetch(`http://127.0.0.1:${port}/version`, { headers: clientHeaders }));
    } finally {
      await d.close();
    }
  });

  it('refuses malformed values with the setting name', () => {
    assert.throws(() => testConfig({ TAS_CLIENT_RATE_LIMIT: 'lots' }), /TAS_CLIENT_RATE_LIMIT.*200\/minute/);
    assert.throws(() => testConfig({ TAS_TRUSTED_PROXIES: '10.0.0.0/8,banana' }), /TAS_TRUSTED_PROXIES.*banana/);
    assert.throws(() => testConfig({ TAS_TRUSTED_PROXIES: '10.0.0.0/33' }), /TAS_TRUSTED_PROXIES/);
    assert.throws(() => testConfig({ TAS_MAX_INFLIGHT: '0' }), /TAS_MAX_INFLIGHT/);
    assert.throws(() => testConfig({ TAS_SERVER_PORT: '70000' }), /TAS_SERVER_PORT/);
    assert.throws(() => testConfig({ TAS_MANAGEMENT_PORT: '9000' }), /TAS_MANAGEMENT_HOST must be set/);
    assert.throws(() => testConfig({ TAS_API_KEY: `${'k'.repeat(70)} with space` }), /printable ASCII/);
    assert.throws(() => testConfig({ TAS_ALLOW_PLAINTEXT: 'maybe' }), /TAS_ALLOW_PLAINTEXT/);
  });
});
