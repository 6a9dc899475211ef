/**
 * Client addresses: which address a request is accounted to (rate limits, audit `client`).
 * X-Forwarded-For is believed only when the TCP peer is a trusted proxy, and then only up to the
 * right-most hop that is not itself trusted: everything left of it was written by the client and
 * can be forged.
 */
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

type Addr = ipaddr.IPv4 | ipaddr.IPv6;
/** Cidr is a parsed network (address + prefix length). */
export type Cidr = [Addr, number];

/**
 * parseAddress accepts only canonical textual addresses (net.isIP): ipaddr.js alone also takes
 * forms like `1.2.3` or octal parts, which proxies never write and which would let one client
 * appear under many spellings. IPv4-mapped IPv6 becomes IPv4.
 */
export function parseAddress(text: string): Addr | undefined {
  let t = text.trim();
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  const zone = t.indexOf('%');
  if (zone >= 0) t = t.slice(0, zone);
  if (isIP(t) === 0) return undefined;
  return ipaddr.process(t);
}

/** parseCidr parses `a.b.c.d/n`, `x::/n` or a single address (full-length prefix); throws on bad input. */
export function parseCidr(text: string): Cidr {
  const [a, n, ...rest] = text.trim().split('/');
  const addr = parseAddress(a ?? '');
  if (!addr || rest.length) throw new Error(`not an address or CIDR: ${text}`);
  const written = a!.includes(':') ? 128 : 32;
  if (n === undefined) return [addr, addr.kind() === 'ipv4' ? 32 : 128];
  if (!/^\d{1,3}$/.test(n) || Number(n) > written) throw new Error(`bad prefix length in ${text}`);
  // A mapped IPv6 CIDR (::ffff:10.0.0.0/104) was turned into IPv4 by parseAddress: adjust its prefix.
  if (written === 128 && addr.kind() === 'ipv4') {
    if (Number(n) < 96) throw new Error(`prefix of an IPv4-mapped network must be at least 96 in ${text}`);
    return [addr, Number(n) - 96];
  }
  return [addr, Number(n)];
}

/** inAny tells whether an address is inside one of the networks. */
export function inAny(addr: Addr, nets: readonly Cidr[]): boolean {
  return nets.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits));
}

/** isLoopbackHost tells whether a listen host is a loopback address (`localhost` counts). */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const a = parseAddress(host);
  return a !== undefined && a.range() === 'loopback';
}

/**
 * clientAddress returns the address a request is accounted to. `peer` is the TCP peer; `xff` the
 * X-Forwarded-For header value(s). A malformed hop stops the walk at the last trusted sender: a
 * well-behaved proxy never writes one, so the closest address we can vouch for is that proxy.
 */
export function clientAddress(peer: string | undefined, xff: string | string[] | undefined, trusted: readonly Cidr[]): string {
  // Nothing to walk: the answer depends on the peer text alone, the same for every request of a
  // connection (two address parses per request otherwise, #16).
  if (xff === undefined || trusted.length === 0) return peer === undefined ? 'unknown' : peerAddress(peer);
  const p = peer === undefined ? undefined : parseAddress(peer);
  if (!p) return peer ?? 'unknown';
  let current = p;
  if (xff !== undefined && trusted.length && inAny(p, trusted)) {
    const hops = (Array.isArray(xff) ? xff.join(',') : xff).split(',').map((h) => h.trim()).filter((h) => h !== '');
    for (let i = hops.length - 1; i >= 0; i--) {
      if (!inAny(current, trusted)) break;
      const hop = parseAddress(hops[i]!);
      if (!hop) break;
      current = hop;
    }
  }
  return current.toString();
}

/**
 * rateKey groups addresses for the rate limit: IPv4 per address, IPv6 per /64 (one customer
 * usually holds a whole /64, so per-address limits would be trivial to dodge).
 */
export const rateKey = memo(rateKeyOf);

function rateKeyOf(address: string): string {
  const a = parseAddress(address);
  if (!a) return address;
  if (a.kind() === 'ipv4') return a.toString();
  const parts = (a as ipaddr.IPv6).parts.slice(0, 4).map((x) => x.toString(16));
  return `${parts.join(':')}::/64`;
}

/** peerAddress is the canonical text of a TCP peer address (the peer text itself if it does not parse). */
const peerAddress = memo((peer: string): string => parseAddress(peer)?.toString() ?? peer);

/**
 * memo caches a pure string function for the per-request path. Bounded: the inputs are the peers
 * currently connecting (a flood of distinct ones only restarts the cache, never grows it).
 */
export function memo(f: (s: string) => string, max = 4096): (s: string) => string {
  const cache = new Map<string, string>();
  return (s) => {
    let r = cache.get(s);
    if (r === undefined) {
      r = f(s);
      if (cache.size >= max) cache.clear();
      cache.set(s, r);
    }
    return r;
  };
}
