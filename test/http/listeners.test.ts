/** Listeners: plaintext refusal, TLS and its reload, the separate management listener with mutual TLS, inherited fds. */
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { StartupError } from '../../src/daemon';
import { baseEnv, spawnDaemon, startTestDaemon, testConfig } from '../support/daemon';
import { CLIENT_KEY, MGMT_KEY, clientHeaders, mgmtHeaders } from './helpers';
import { httpsGet, makePki, type TestPki } from './tls';

describe('http: plain HTTP refusal (TAS_ALLOW_PLAINTEXT)', () => {
  for (const host of ['0.0.0.0', '::']) {
    it(`refuses plain HTTP on ${host}; starts with TAS_ALLOW_PLAINTEXT=true`, async () => {
      await assert.rejects(startTestDaemon({ TAS_SERVER_HOST: host }), (e: Error) => e instanceof StartupError && /TAS_ALLOW_PLAINTEXT/.test(e.message));
      const d = await startTestDaemon({ TAS_SERVER_HOST: host, TAS_ALLOW_PLAINTEXT: 'true' });
      try {
        const port = new URL(d.urls.main).port;
        const r = await fetch(`http://127.0.0.1:${port}/version`, { headers: clientHeaders });
        assert.equal(r.status, 200);
      } finally {
        await d.close();
      }
    });
  }

  it('refuses a plaintext management listener on a non-loopback address', async () => {
    await assert.rejects(startTestDaemon({ TAS_MANAGEMENT_HOST: '0.0.0.0', TAS_MANAGEMENT_PORT: '0' }), /management listener.*TAS_ALLOW_PLAINTEXT/);
  });
});

describe('http: TLS and the management listener', () => {
  let pki: TestPki;
  before(() => { pki = makePki(); });
  after(() => pki.cleanup());

  it('serves HTTPS on a non-loopback address, reloads the certificate on SIGHUP without a restart', async () => {
    const cert = `${pki.dir}/live.crt`;
    const key = `${pki.dir}/live.key`;
    copyFileSync(pki.serverCert, cert);
    copyFileSync(pki.serverKey, key);
    const env = { TAS_SERVER_HOST: '0.0.0.0', TAS_TLS_CERT_FILE: cert, TAS_TLS_KEY_FILE: key };
    const d = await startTestDaemon(env);
    try {
      const url = d.urls.main.replace('0.0.0.0', '127.0.0.1');
      assert.match(url, /^https:/);
      const a = await httpsGet(`${url}/version`, { ca: pki.caCert, headers: clientHeaders });
      assert.equal(a.status, 200);
      assert.equal(a.peerCN, 'tas-server-1');
      copyFileSync(pki.server2Cert, cert);
      copyFileSync(pki.server2Key, key);
      await d.reload(testConfig(env));
      const b = await httpsGet(`${url}/version`, { ca: pki.caCert, headers: clientHeaders });
      assert.equal(b.peerCN, 'tas-server-2');
    } finally {
      await d.close();
    }
  });

  it('a client that never completes the TLS handshake is cut (handshake timeout)', async () => {
    const d = await startTestDaemon({ TAS_TLS_CERT_FILE: pki.serverCert, TAS_TLS_KEY_FILE: pki.serverKey }, { limits: { headersTimeoutMs: 300, requestTimeoutMs: 600, connectionsCheckingIntervalMs: 50 } });
    try {
      const s = connect(Number(new URL(d.urls.main).port), '127.0.0.1');
      s.on('error', () => undefined);
      s.write(Buffer.from([0x16, 0x03, 0x01])); // the first bytes of a ClientHello, then silence
      let closedByServer = false;
      await new Promise<void>((r) => s.on('close', () => { closedByServer = true; r(); }));
      assert.ok(closedByServer);
    } finally {
      await d.close();
    }
  });

  it('separate management listener: management routes only there, client routes only on the main one', async () => {
    const d = await startTestDaemon({ TAS_MANAGEMENT_HOST: '127.0.0.1', TAS_MANAGEMENT_PORT: '0' });
    try {
      assert.ok(d.urls.management);
      assert.equal((await fetch(`${d.urls.main}/management/status`, { headers: mgmtHeaders })).status, 404);
      assert.equal((await fetch(`${d.urls.management}/management/status`, { headers: mgmtHeaders })).status, 200);
      assert.equal((await fetch(`${d.urls.management}/version`, { headers: clientHeaders })).status, 404);
      assert.equal((await fetch(`${d.urls.main}/version`, { headers: clientHeaders })).status, 200);
      assert.equal((await fetch(`${d.urls.management}/healthz`)).status, 200);
    } finally {
      await d.close();
    }
  });

  it('mutual TLS on the management listener: no or foreign client certificate is refused in the handshake', async () => {
    const d = await startTestDaemon({
      TAS_TLS_CERT_FILE: pki.serverCert, TAS_TLS_KEY_FILE: pki.serverKey,
      TAS_MANAGEMENT_HOST: '127.0.0.1', TAS_MANAGEMENT_PORT: '0', TAS_MANAGEMENT_CLIENT_CA_FILE: pki.caCert,
    });
    try {
      const url = `${d.urls.management}/management/status`;
      await assert.rejects(httpsGet(url, { ca: pki.caCert, headers: mgmtHeaders }), /certificate|handshake|socket hang up|ECONNRESET|alert/i);
      await assert.rejects(httpsGet(url, { ca: pki.caCert, cert: pki.rogueCert, key: pki.rogueKey, headers: mgmtHeaders }), /certificate|unknown ca|alert|ECONNRESET|socket hang up/i);
      const noKey = await httpsGet(url, { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey });
      assert.equal(noKey.status, 401, 'a client certificate does not replace the management key');
      const ok = await httpsGet(url, { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey, headers: mgmtHeaders });
      assert.equal(ok.status, 200);
      assert.equal(JSON.parse(ok.body).edge.management_keys, 1);
      // the main listener does not ask for client certificates
      const main = await httpsGet(`${d.urls.main}/version`, { ca: pki.caCert, headers: clientHeaders });
      assert.equal(main.status, 200);
    } finally {
      await d.close();
    }
  });

  it('a client CA without TLS or without a separate listener stops startup', () => {
    assert.throws(() => testConfig({ TAS_MANAGEMENT_CLIENT_CA_FILE: pki.caCert }), /TAS_MANAGEMENT_CLIENT_CA_FILE.*needs TAS_MANAGEMENT_HOST/s);
    assert.throws(() => testConfig({ TAS_MANAGEMENT_HOST: '127.0.0.1', TAS_MANAGEMENT_PORT: '0', TAS_MANAGEMENT_CLIENT_CA_FILE: pki.caCert }), /needs TAS_TLS_CERT_FILE/);
    assert.throws(() => testConfig({ TAS_TLS_CERT_FILE: pki.serverCert }), /TAS_TLS_KEY_FILE must be set/);
  });
});

describe('http: inherited listening sockets (socket activation)', () => {
  function listeningFd(host: string): Promise<{ server: Server; fd: number; port: number }> {
    return new Promise((resolve) => {
      const server = createServer();
      server.listen({ host, port: 0 }, () => {
        const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
        resolve({ server, fd, port: (server.address() as { port: number }).port });
      });
    });
  }

  it('serves on inherited fds (main + named management) and ignores host/port', async () => {
    const main = await listeningFd('127.0.0.1');
    const mgmt = await listeningFd('127.0.0.1');
    const d = await spawnDaemon(baseEnv({ TAS_SERVER_PORT: '1' }), { fds: [{ name: 'https', fd: main.fd }, { name: 'management', fd: mgmt.fd }] });
    // The child holds its own copies now; stop this process from accepting on them.
    main.server.close();
    mgmt.server.close();
    try {
      assert.equal(Number(new URL(d.urls.main).port), main.port);
      assert.equal((await fetch(`http://127.0.0.1:${main.port}/version`, { headers: { 'x-api-key': CLIENT_KEY } })).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${mgmt.port}/management/status`, { headers: { 'x-management-api-key': MGMT_KEY } })).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${main.port}/management/status`, { headers: { 'x-management-api-key': MGMT_KEY } })).status, 404);
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });

  it('refuses an inherited plaintext socket on a non-loopback address', async () => {
    const s = await listeningFd('0.0.0.0');
    try {
      await assert.rejects(spawnDaemon(baseEnv(), { fds: [{ name: 'http', fd: s.fd }] }), /inherited socket.*TAS_ALLOW_PLAINTEXT/);
    } finally {
      s.server.close();
    }
  });
});
