import assert from 'node:assert/strict';
import { clientAddress, isLoopbackHost, parseCidr, rateKey } from '../../src/http';
import { memo } from '../../src/http/address';

describe('http: client addresses', () => {
  const trusted = ['10.0.0.0/8', '2001:db8:ffff::/48', '192.0.2.10'].map(parseCidr);

  it('normalises IPv4-mapped IPv6 and groups IPv6 by /64', () => {
    assert.equal(clientAddress('::ffff:198.51.100.1', undefined, []), '198.51.100.1');
    assert.equal(rateKey('198.51.100.1'), '198.51.100.1');
    assert.equal(rateKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(rateKey('2001:0db8:0001:0002::'), '2001:db8:1:2::/64');
    assert.equal(rateKey('::ffff:198.51.100.1'), '198.51.100.1');
  });

  it('the per-connection answers are cached, the same on every call, and the cache stays bounded', () => {
    const peers = ['::ffff:198.51.100.1', '198.51.100.1', '2001:0db8:0001:0002::7', 'not-an-address', '[::1]', 'fe80::1%eth0'];
    const want = ['198.51.100.1', '198.51.100.1', '2001:db8:1:2::7', 'not-an-address', '::1', 'fe80::1'];
    for (let round = 0; round < 3; round++) {
      peers.forEach((p, i) => assert.equal(clientAddress(p, undefined, []), want[i], `${p} (call ${round + 1})`));
      assert.equal(clientAddress(undefined, undefined, []), 'unknown');
      // With trusted proxies and a header, the walk still runs (never the cached peer text).
      assert.equal(clientAddress('10.1.2.3', '203.0.113.9', trusted), '203.0.113.9');
      assert.equal(rateKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    }
    let calls = 0;
    const f = memo((s) => (calls++, s.toUpperCase()), 8);
    for (let i = 0; i < 20; i++) assert.equal(f(`k${i % 10}`), `K${i % 10}`);
    // 10 distinct keys through a cache of 8: it restarted once, so some keys were computed twice.
    assert.ok(calls > 10 && calls <= 20, `${calls} computations`);
    assert.equal(f('k9'), 'K9');
  });

  it('believes X-Forwarded-For only from trusted peers, walking from the right', () => {
    assert.equal(clientAddress('10.1.2.3', '203.0.113.5', trusted), '203.0.113.5');
    assert.equal(clientAddress('10.1.2.3', '6.6.6.6, 203.0.113.5, 10.9.9.9', trusted), '203.0.113.5');
    assert.equal(clientAddress('10.1.2.3', ['6.6.6.6', '203.0.113.5'], trusted), '203.0.113.5');
    assert.equal(clientAddress('2001:db8:ffff:1::1', '[2001:db8:5::1]', trusted), '2001:db8:5::1');
    assert.equal(clientAddress('192.0.2.10', '203.0.113.5', trusted), '203.0.113.5', 'single-address entry');
    assert.equal(clientAddress('192.0.2.11', '203.0.113.5', trusted), '192.0.2.11', 'untrusted peer: header ignored');
    assert.equal(clientAddress('10.1.2.3', '10.4.4.4, 10.5.5.5', trusted), '10.4.4.4', 'all hops trusted: the left-most');
    assert.equal(clientAddress('10.1.2.3', '203.0.113.5, garbage', trusted), '10.1.2.3', 'malformed hop: the proxy that wrote it');
    assert.equal(clientAddress('10.1.2.3', '1.2.3', trusted), '10.1.2.3', 'non-canonical IPv4 is malformed');
    assert.equal(clientAddress('10.1.2.3', '', trusted), '10.1.2.3');
    assert.equal(clientAddress(undefined, '1.1.1.1', trusted), 'unknown');
  });

  it('parses CIDRs strictly, mapped IPv6 networks included', () => {
    const [a, bits] = parseCidr('::ffff:10.0.0.0/104');
    assert.equal(a.kind(), 'ipv4');
    assert.equal(bits, 8);
    assert.equal(parseCidr('fe80::1')[1], 128);
    for (const bad of ['10.0.0.0/33', '10.0.0/8', 'x/8', '10.0.0.0/8/1', '::/129', '10.0.0.0/-1', '']) assert.throws(() => parseCidr(bad), bad);
  });

  it('recognises loopback listen hosts', () => {
    for (const h of ['127.0.0.1', '127.8.9.10', '::1', 'localhost', 'LOCALHOST', '[::1]']) assert.ok(isLoopbackHost(h), h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.org', '::ffff:0.0.0.0']) assert.ok(!isLoopbackHost(h), h);
  });
});
