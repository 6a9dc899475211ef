/**
 * Per-peer connection caps (src/http/connections.ts) on real sockets: header-incomplete and open
 * connections per peer, a trusted proxy's larger caps, a peer that half-closes before its head is
 * closed at once, and the peer key (IPv4 address, IPv6 /64, trusted proxy). The whole-product flood
 * (2,000 connections while an agent attests) is test/hostile/connection-flood.test.ts.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { parseCidr } from '../../src/http/address';
import { PeerConnectionLimiter } from '../../src/http/connections';
import { MGMT_KEY, startTestDaemon, type TestDaemon } from '../support/daemon';

const LIMITS = {
  maxConnectionsPerPeer: 4, maxHeaderIncompletePerPeer: 2, maxConnectionsPerProxy: 8, maxHeaderIncompletePerProxy: 5, headerGraceMs: 150,
  // Long: the caps, not the header timeout, must be what frees or refuses slots here.
  headersTimeoutMs: 20_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 20_000,
};

interface Conn {
  s: Socket;
  got: () => string;
  closed: Promise<void>;
  isClosed: () => boolean;
}

function open(port: number, from: string): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', localAddress: from });
    let got = '';
    let isClosed = false;
    s.on('data', (d) => (got += d.toString()));
    s.on('error', () => undefined);
    const closed = new Promise<void>((r) => s.on('close', () => { isClosed = true; r(); }));
    s.once('connect', () => resolve({ s, got: () => got, closed, isClosed: () => isClosed }));
    s.once('error', reject);
  });
}

/** refusedAtOnce tells whether the server closed a fresh connection without answering a complete request on it. */
async function refusedAtOnce(port: number, from: string): Promise<boolean> {
  // The refusal is a reset at accept: it may arrive before the client's connect completes.
  const c = await open(port, from).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ECONNRESET') return undefined;
    throw e;
  });
  if (!c) return true;
  c.s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  const t = setTimeout(() => c.s.destroy(), 3000);
  // A served connection answers and stays open (keep-alive): stop waiting at the answer.
  await Promise.race([c.closed, new Promise<void>((r) => c.s.on('data', () => r()))]);
  clearTimeout(t);
  const refused = c.got() === '';
  c.s.destroy();
  return refused;
}

/** settle waits past the grace after which a connection without a complete head counts. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 250));

describe('http: per-peer connection caps', () => {
  let d: TestDaemon;
  let port: number;
  const conns: Conn[] = [];
  before(async () => {
    d = await startTestDaemon({ TAS_TRUSTED_PROXIES: '127.0.0.9' }, { limits: LIMITS });
    port = Number(new URL(d.urls.main).port);
  });
  afterEach(async () => {
    for (const c of conns.splice(0)) c.s.destroy();
    await settle();
  });
  after(() => d.close());

  it('header-incomplete: a peer holds at most its cap; the next is refused without an answer; other peers are served', async () => {
    for (let i = 0; i < LIMITS.maxHeaderIncompletePerPeer; i++) {
      const c = await open(port, '127.0.0.1');
      c.s.write('POST /kb/v0/get_secret HTTP/1.1\r\nHost: x\r\n');
      conns.push(c);
    }
    await settle();
    assert.equal(await refusedAtOnce(port, '127.0.0.1'), true, 'one more from the same address is refused');
    assert.equal(await refusedAtOnce(port, '127.0.0.2'), false, 'another address is served');
    // One of them finishes its head: its slot is free again.
    conns[0]!.s.write('Content-Length: 0\r\n\r\n');
    await settle();
    assert.equal(await refusedAtOnce(port, '127.0.0.1'), false, 'a slot freed by a completed head');
    for (const c of conns) assert.equal(c.isClosed(), false, 'the held connections were not closed by the refusals');
  });

  it('a burst of fresh connections (agents behind one NAT) is bounded by the open cap only, not the header-incomplete cap', async () => {
    const burst = await Promise.all(Array.from({ length: LIMITS.maxConnectionsPerPeer }, () => open(port, '127.0.0.5')));
    conns.push(...burst);
    const answers = await Promise.all(burst.map((c) => {
      c.s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      return new Promise<string>((r) => { c.s.once('data', (d) => r(d.toString())); c.s.once('close', () => r('')); });
    }));
    for (const a of answers) assert.match(a, /^HTTP\/1\.1 200 /);
  });

  it('open: a peer holds at most its cap of open (keep-alive) connections', async () => {
    for (let i = 0; i < LIMITS.maxConnectionsPerPeer; i++) {
      const c = await open(port, '127.0.0.3');
      c.s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await new Promise<void>((r) => c.s.once('data', () => r()));
      conns.push(c);
    }
    assert.equal(await refusedAtOnce(port, '127.0.0.3'), true);
    conns.pop()!.s.destroy();
    await settle();
    assert.equal(await refusedAtOnce(port, '127.0.0.3'), false, 'a closed connection frees its slot');
  });

  it('a peer that half-closes before finishing its head is closed at once, and its slot is free', async () => {
    const c = await open(port, '127.0.0.4');
    c.s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    c.s.end(); // FIN: it can never finish the head
    const t0 = Date.now();
    await c.closed;
    assert.ok(Date.now() - t0 < LIMITS.headersTimeoutMs / 2, 'closed by the FIN, not by the header timeout');
    for (let i = 0; i < LIMITS.maxHeaderIncompletePerPeer; i++) {
      const h = await open(port, '127.0.0.4');
      h.s.write('GET /healthz HTTP/1.1\r\n');
      conns.push(h);
    }
    await settle();
    for (const h of conns) assert.equal(h.isClosed(), false, 'the half-closed connection no longer counts');
  });

  it('a trusted proxy gets its own, larger caps', async () => {
    for (let i = 0; i < LIMITS.maxHeaderIncompletePerProxy; i++) {
      const c = await open(port, '127.0.0.9');
      c.s.write('GET /healthz HTTP/1.1\r\n');
      conns.push(c);
    }
    await settle();
    for (const c of conns) assert.equal(c.isClosed(), false, 'more than a peer\'s cap held by the proxy');
    assert.equal(await refusedAtOnce(port, '127.0.0.9'), true, 'the proxy\'s cap holds too');
  });

  it('counters: /management/status and /metrics show refusals, never addresses', async () => {
    const status = (await (await fetch(`${d.urls.main}/management/status`, { headers: { 'x-management-api-key': MGMT_KEY } })).json()) as { edge: { connections: { refused: { open: number; header_incomplete: number } } } };
    assert.ok(status.edge.connections.refused.open >= 1 && status.edge.connections.refused.header_incomplete >= 2, JSON.stringify(status.edge));
    assert.ok(!JSON.stringify(status).includes('127.0.0.'), 'no peer address in the status');
    const metrics = await (await fetch(`${d.urls.main}/metrics`)).text();
    assert.match(metrics, /tas_http_connections_refused_total\{reason="header_incomplete"\} [1-9]/);
  });
});

describe('http: the peer key of the connection caps', () => {
  const lim = (trusted: string[]): PeerConnectionLimiter => new PeerConnectionLimiter(
    { open: 1, headerIncomplete: 1, headerGraceMs: 0, proxyOpen: 2, proxyHeaderIncomplete: 2, headerTimeoutMs: 1000 }, () => trusted.map(parseCidr));

  it('IPv4 per address, IPv6 per /64, IPv4-mapped as IPv4, trusted proxies by address', () => {
    const l = lim(['10.9.0.0/16', '2001:db8:ffff::/48']);
    assert.equal(l.peerKey('192.0.2.1'), '192.0.2.1');
    assert.notEqual(l.peerKey('192.0.2.1'), l.peerKey('192.0.2.2'));
    assert.equal(l.peerKey('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(l.peerKey('2001:db8:1:2::1'), l.peerKey('2001:db8:1:2:ffff:ffff:ffff:ffff'));
    assert.notEqual(l.peerKey('2001:db8:1:2::1'), l.peerKey('2001:db8:1:3::1'));
    assert.equal(l.peerKey('10.9.1.1'), 'proxy 10.9.1.1');
    assert.notEqual(l.peerKey('10.9.1.1'), l.peerKey('10.9.1.2'), 'each proxy has its own cap');
    assert.equal(l.peerKey('2001:db8:ffff::5'), 'proxy 2001:db8:ffff::5');
  });
});
