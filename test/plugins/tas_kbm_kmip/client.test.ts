/**
 * KmipClient transport behaviour that a well-behaved PyKMIP cannot show: a misbehaving KMIP
 * peer (a local TLS server with the harness's certificates, answering with PyKMIP's captured
 * responses or with garbage) checks framing limits, request timeouts, unsolicited data and the
 * one transparent retry after the server closed an idle connection.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import pino from 'pino';
import { makeCerts, type PyKmipCerts } from '../../support/pykmip';
import { KmipClient, KmipClientError } from '../../../plugins/tas_kbm_kmip/client';
import { KMIP_1_2 } from '../../../plugins/tas_kbm_kmip/messages';
import { Tag } from '../../../plugins/tas_kbm_kmip/tags';
import { dateTime, encodeTtlv, enumeration, integer, structure, textString } from '../../../plugins/tas_kbm_kmip/ttlv';

type Behaviour = (sock: TLSSocket, request: Buffer, n: number) => void;

const capture = JSON.parse(readFileSync(join(__dirname, '..', '..', 'fixtures', 'kmip', 'pykmip-1.2.json'), 'utf8')) as {
  frames: Record<string, { response: string }>;
};
const discoverResponse = Buffer.from(capture.frames.DiscoverVersions!.response, 'hex');

describe('KmipClient transport (misbehaving peer)', function () {
  this.timeout(30_000);
  let dir: string;
  let certs: PyKmipCerts;
  let server: Server;
  let port: number;
  let behaviour: Behaviour;
  let requests = 0;
  let connections = 0;
  const clients: KmipClient[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tas-kmip-client-'));
    certs = makeCerts(dir);
    server = createServer({
      cert: readFileSync(certs.serverCert),
      key: readFileSync(certs.serverKey),
      ca: readFileSync(certs.ca),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    });
    server.on('secureConnection', (sock) => {
      connections++;
      sock.on('error', () => undefined);
      let buf = Buffer.alloc(0);
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 8) {
          const total = 8 + buf.readUInt32BE(4);
          if (buf.length < total) return;
          const req = buf.subarray(0, total);
          buf = buf.subarray(total);
          behaviour(sock, req, ++requests);
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    for (const c of clients) await c.close();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    requests = 0;
    connections = 0;
  });

  const client = (over: Partial<ConstructorParameters<typeof KmipClient>[0]> = {}): KmipClient => {
    const c = new KmipClient({
      host: '127.0.0.1',
      port,
      serverName: '127.0.0.1',
      ca: readFileSync(certs.ca),
      cert: readFileSync(certs.client.cert),
      key: readFileSync(certs.client.key),
      version: KMIP_1_2,
      connectTimeoutMs: 3000,
      requestTimeoutMs: 3000,
      reconnectInitialMs: 10,
      reconnectMaxMs: 20,
      log: pino({ level: 'silent' }),
      ...over,
    });
    clients.push(c);
    return c;
  };
  const isKind = (kind: string, re: RegExp) => (e: unknown): boolean => e instanceof KmipClientError && e.kind === kind && re.test(e.message);

  it('talks to a peer answering with PyKMIP bytes, on one persistent connection', async () => {
    behaviour = (sock) => sock.write(discoverResponse);
    const c = client();
    for (let i = 0; i < 5; i++) assert.equal((await c.discoverVersions()).length, 3);
    assert.equal(connections, 1);
    assert.equal(c.stats.requests, 5);
  });

  it('serializes concurrent callers: one request in flight at a time, all answered', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    behaviour = (sock) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setImmediate(() => {
        inFlight--;
        sock.write(discoverResponse);
      });
    };
    const c = client();
    const all = await Promise.all(Array.from({ length: 20 }, () => c.discoverVersions()));
    assert.equal(all.length, 20);
    assert.equal(maxInFlight, 1);
  });

  it('request timeout: unavailable, the connection is dropped and the next call reconnects', async () => {
    behaviour = (sock, _req, n) => {
      if (n > 1) sock.write(discoverResponse); // first request never answered
    };
    const c = client({ requestTimeoutMs: 200 });
    await assert.rejects(c.discoverVersions(), isKind('unavailable', /no response within 200 ms/));
    assert.equal((await c.discoverVersions()).length, 3);
    assert.equal(connections, 2);
  });

  it('an idle connection closed by the server is replaced transparently (one retry, same call)', async () => {
    behaviour = (sock, _req, n) => {
      if (n === 2) sock.destroy(); // second request: server hangs up instead of answering
      else sock.write(discoverResponse);
    };
    const c = client();
    await c.discoverVersions();
    assert.equal((await c.discoverVersions()).length, 3);
    assert.equal(connections, 2);
    assert.equal(c.stats.requests, 3);
  });

  it('a fresh connection that dies is not retried in a loop (unavailable)', async () => {
    behaviour = (sock) => sock.destroy();
    const c = client();
    await assert.rejects(c.discoverVersions(), isKind('unavailable', /closed|error/));
    assert.equal(requests, 1);
  });

  it('an announced response larger than 1 MiB is refused before it is read', async () => {
    behaviour = (sock) => {
      const h = Buffer.from('42007b0100000000', 'hex');
      h.writeUInt32BE(2 * 1024 * 1024, 4);
      sock.write(h);
    };
    const c = client();
    await assert.rejects(c.discoverVersions(), isKind('protocol', /exceeds 1048576/));
  });

  it('garbage, a non-response message and trailing bytes are protocol errors', async () => {
    const c = client();
    behaviour = (sock) => sock.write(Buffer.from('42007b01000000084200200200000004', 'hex')); // truncated child
    await assert.rejects(c.discoverVersions(), isKind('protocol', /malformed response/));
    behaviour = (sock) => sock.write(Buffer.from('42007801000000104200200200000004000000010000000000', 'hex').subarray(0, 24));
    await assert.rejects(c.discoverVersions(), isKind('protocol', /not a ResponseMessage/));
    behaviour = (sock) => sock.write(Buffer.concat([discoverResponse, Buffer.alloc(8)]));
    await assert.rejects(c.discoverVersions(), isKind('protocol', /more bytes than one response/));
  });

  it('AuthenticationNotSuccessful in a reply is a sticky auth_failed (no further requests)', async () => {
    // What PyKMIP answers when a handshake-accepted certificate fails its own checks (session.py).
    const reply = encodeTtlv(
      structure(Tag.ResponseMessage, [
        structure(Tag.ResponseHeader, [
          structure(Tag.ProtocolVersion, [integer(Tag.ProtocolVersionMajor, 1), integer(Tag.ProtocolVersionMinor, 0)]),
          dateTime(Tag.TimeStamp, 1_800_000_000n),
          integer(Tag.BatchCount, 1),
        ]),
        structure(Tag.BatchItem, [
          enumeration(Tag.ResultStatus, 1),
          enumeration(Tag.ResultReason, 3),
          textString(Tag.ResultMessage, 'Error verifying the client certificate.'),
        ]),
      ]),
    );
    behaviour = (sock) => sock.write(reply);
    const c = client();
    await assert.rejects(c.discoverVersions(), isKind('auth_failed', /refused our client certificate \(AuthenticationNotSuccessful/));
    await assert.rejects(c.discoverVersions(), isKind('auth_failed', /AuthenticationNotSuccessful/));
    assert.equal(requests, 1);
    assert.match(c.authFailed ?? '', /EKU clientAuth/);
  });

  it('auto: a server sharing no version with tas is refused, and the connection is not kept', async () => {
    const onlyV10 = encodeTtlv(
      structure(Tag.ResponseMessage, [
        structure(Tag.ResponseHeader, [
          structure(Tag.ProtocolVersion, [integer(Tag.ProtocolVersionMajor, 1), integer(Tag.ProtocolVersionMinor, 2)]),
          integer(Tag.BatchCount, 1),
        ]),
        structure(Tag.BatchItem, [
          enumeration(Tag.Operation, 0x1e),
          enumeration(Tag.ResultStatus, 0),
          structure(Tag.ResponsePayload, [structure(Tag.ProtocolVersion, [integer(Tag.ProtocolVersionMajor, 1), integer(Tag.ProtocolVersionMinor, 0)])]),
        ]),
      ]),
    );
    behaviour = (sock) => sock.write(onlyV10);
    const c = client({ version: 'auto' });
    await assert.rejects(c.discoverVersions(), isKind('protocol', /supports none of 2\.0, 1\.4, 1\.2 \(offered 1\.0\)/));
    await assert.rejects(c.discoverVersions(), isKind('protocol', /supports none/));
    assert.equal(connections, 2, 'the second call must negotiate on a new connection');
    assert.equal(c.version, undefined);
    // With a server offering 2.0 (PyKMIP's capture) negotiation picks it.
    behaviour = (sock) => sock.write(discoverResponse);
    await c.discoverVersions();
    assert.deepEqual(c.version, { major: 2, minor: 0 });
  });

  it('a response for another operation is refused', async () => {
    const get = Buffer.from(capture.frames.Get!.response, 'hex');
    behaviour = (sock) => sock.write(get);
    const c = client();
    await assert.rejects(c.discoverVersions(), isKind('protocol', /result for operation 10, asked 30/));
  });
});
