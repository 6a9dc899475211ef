/** Test PKI made with the openssl CLI in a temp dir, and a small HTTPS client that can present a client certificate. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  caCert: string;
  /** server certificates for 127.0.0.1/localhost: `server` and `server2` (for reload) */
  serverCert: string;
  serverKey: string;
  server2Cert: string;
  server2Key: string;
  clientCert: string;
  clientKey: string;
  /** a client certificate from another CA */
  rogueCert: string;
  rogueKey: string;
  cleanup(): void;
}

function ossl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function issue(dir: string, name: string, ca: string, ext: string, cn: string): void {
  ossl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  writeFileSync(join(dir, `${name}.ext`), ext);
  ossl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`]);
}

/** makePki creates CA, two server certificates, a client certificate and a rogue client certificate. */
export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'tas-http-pki-'));
  for (const ca of ['ca', 'rogue-ca']) {
    ossl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=tas-test-${ca}`]);
  }
  const serverExt = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n';
  issue(dir, 'server', 'ca', serverExt, 'tas-server-1');
  issue(dir, 'server2', 'ca', serverExt, 'tas-server-2');
  issue(dir, 'client', 'ca', 'extendedKeyUsage=clientAuth\n', 'tas-operator');
  issue(dir, 'rogue', 'rogue-ca', 'extendedKeyUsage=clientAuth\n', 'tas-operator');
  const p = (f: string) => join(dir, f);
  return {
    dir, caCert: p('ca.crt'), serverCert: p('server.crt'), serverKey: p('server.key'), server2Cert: p('server2.crt'), server2Key: p('server2.key'),
    clientCert: p('client.crt'), clientKey: p('client.key'), rogueCert: p('rogue.crt'), rogueKey: p('rogue.key'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface HttpsResult {
  status: number;
  body: string;
  peerCN: string | undefined;
}

/** httpsGet makes one request; rejects on a TLS handshake failure. */
export function httpsGet(url: string, opts: { ca: string; cert?: string; key?: string; headers?: Record<string, string> }): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      ca: readFileSync(opts.ca),
      ...(opts.cert ? { cert: readFileSync(opts.cert), key: readFileSync(opts.key!) } : {}),
      headers: opts.headers ?? {},
      agent: false,
    }, (res) => {
      let body = '';
      const cn = (res.socket as import('node:tls').TLSSocket).getPeerCertificate?.()?.subject?.CN;
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, peerCN: typeof cn === 'string' ? cn : undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}
