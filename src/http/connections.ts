/**
 * Per-peer connection caps, applied when a TCP connection is accepted, before any byte of HTTP.
 *
 * The listener's global cap (serverLimits.maxConnections) alone lets one address fill every slot
 * with connections that never finish their headers: new clients are then reset, and the rate
 * limit never sees them because it counts completed requests only. So each peer gets its own
 * bounds: open connections, and connections that have not yet delivered a complete request head
 * ("header-incomplete"). A connection over either bound is destroyed at once, without a byte
 * written: an attacker gains nothing by waiting for an answer, and a legitimate peer never comes
 * near the bounds (an agent uses one connection per request).
 *
 * The peer is the TCP peer address: X-Forwarded-For is not known yet at accept time (and can be
 * forged). IPv6 peers are grouped per /64 (as the rate limit does): one customer usually holds a
 * whole /64, so a per-address cap would be trivial to dodge. A trusted proxy carries many clients
 * on its connections and gets its own, larger caps; put a proxy in front to absorb floods (README
 * "Operations").
 */
import type { Socket } from 'node:net';
import { inAny, parseAddress, rateKey, type Cidr } from './address';

/** PeerCaps are the bounds per peer key. */
export interface PeerCaps {
  /** Open connections of one peer (IPv4 address or IPv6 /64). */
  open: number;
  /**
   * Connections of one peer that have not delivered a complete request head `headerGraceMs` after
   * they were accepted. Younger ones do not count: a burst of agents behind one NAT connects all at
   * once, and each head arrives milliseconds after its connect; the open cap bounds the burst.
   */
  headerIncomplete: number;
  /** How long a new connection may take for its head before it counts as header-incomplete. */
  headerGraceMs: number;
  /** Open connections of one trusted proxy (TAS_TRUSTED_PROXIES). */
  proxyOpen: number;
  /** Header-incomplete connections of one trusted proxy. */
  proxyHeaderIncomplete: number;
  /**
   * A connection must deliver its first request head within this, or it is destroyed. Node's own
   * headersTimeout is only checked every connectionsCheckingInterval and answers 408 first; this
   * one is per socket and silent.
   */
  headerTimeoutMs: number;
}

interface PeerCount {
  open: number;
  /** Accept times of the peer's connections still waiting for their first request head. */
  pending: Set<{ at: number }>;
}

/** Why a connection was refused (metric label). */
export type RefusalReason = 'open' | 'header_incomplete';

/** ConnectionStats are the counters of every listener of a daemon together (Edge.connectionStats). */
export interface ConnectionStats {
  /** Connections destroyed at accept, by reason (since start). */
  refused: Record<RefusalReason, number>;
  /** Connections destroyed because their first request head came too late. */
  headerTimeouts: number;
  /** Connections open now, and the most seen at once (since start). */
  open: number;
  peakOpen: number;
  /** Header-incomplete connections now. */
  headerIncomplete: number;
}

export function newConnectionStats(): ConnectionStats {
  return { refused: { open: 0, header_incomplete: 0 }, headerTimeouts: 0, open: 0, peakOpen: 0, headerIncomplete: 0 };
}

/**
 * PeerConnectionLimiter counts connections per peer key on one listener; `trusted` is read at each
 * accept so a SIGHUP reload applies to new connections, and `stats` may be shared by listeners.
 */
export class PeerConnectionLimiter {
  private readonly peers = new Map<string, PeerCount>();
  /** Sockets still waiting for their first complete request head, by "address|port" of the peer. */
  private readonly pending = new Map<string, { key: string; socket: Socket; timer: NodeJS.Timeout; mark: { at: number } }>();

  constructor(private readonly caps: PeerCaps, private readonly trusted: () => readonly Cidr[], readonly stats: ConnectionStats = newConnectionStats()) {}

  /** peerKey is the key a TCP peer is counted under: `proxy <addr>` for a trusted proxy, else rateKey. */
  peerKey(remoteAddress: string | undefined): string {
    const a = remoteAddress === undefined ? undefined : parseAddress(remoteAddress);
    if (!a) return `unknown ${remoteAddress ?? ''}`;
    if (inAny(a, this.trusted())) return `proxy ${a.toString()}`;
    return rateKey(a.toString());
  }

  /**
   * accept is called for every new TCP socket (the server's 'connection' event, before TLS and
   * HTTP). It either counts the socket, or destroys it and returns the reason.
   */
  accept(socket: Socket): RefusalReason | undefined {
    const key = this.peerKey(socket.remoteAddress);
    const proxy = key.startsWith('proxy ');
    const c = this.peers.get(key) ?? { open: 0, pending: new Set() };
    const now = Date.now();
    let stale = 0;
    for (const m of c.pending) if (now - m.at >= this.caps.headerGraceMs) stale++;
    const reason: RefusalReason | undefined =
      c.open >= (proxy ? this.caps.proxyOpen : this.caps.open) ? 'open'
        : stale >= (proxy ? this.caps.proxyHeaderIncomplete : this.caps.headerIncomplete) ? 'header_incomplete' : undefined;
    if (reason) {
      this.stats.refused[reason]++;
      // resetAndDestroy (RST) frees the kernel state at once; a FIN would leave TIME_WAIT on our side.
      if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
      else socket.destroy();
      return reason;
    }
    const mark = { at: now };
    c.open++;
    c.pending.add(mark);
    this.peers.set(key, c);
    this.stats.open++;
    this.stats.headerIncomplete++;
    if (this.stats.open > this.stats.peakOpen) this.stats.peakOpen = this.stats.open;
    const id = connId(socket);
    const timer = setTimeout(() => {
      if (!this.pending.has(id)) return;
      this.stats.headerTimeouts++;
      socket.destroy();
    }, this.caps.headerTimeoutMs);
    timer.unref();
    this.pending.set(id, { key, socket, timer, mark });
    // A peer that half-closes (FIN) before finishing its head will never finish it: close now
    // rather than hold the slot until the timeout.
    const onEnd = (): void => {
      if (this.pending.has(id)) socket.destroy();
    };
    socket.once('end', onEnd);
    socket.once('close', () => {
      this.headersDone(id);
      socket.removeListener('end', onEnd);
      this.stats.open--;
      const n = this.peers.get(key);
      if (!n) return;
      n.open--;
      if (n.open <= 0) this.peers.delete(key);
    });
    return undefined;
  }

  /**
   * requestHead is called when a request head has been parsed on a socket (the server's 'request'
   * event; for TLS the socket is the TLSSocket, whose address and port are the TCP peer's).
   */
  requestHead(socket: Socket): void {
    this.headersDone(connId(socket));
  }

  private headersDone(id: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(id);
    this.stats.headerIncomplete--;
    const n = this.peers.get(p.key);
    if (n) n.pending.delete(p.mark);
  }

  /** snapshot is for /management/status and tests: totals, never per-peer addresses. */
  snapshot(): { peers: number; open: number; header_incomplete: number } {
    let open = 0;
    let pending = 0;
    for (const c of this.peers.values()) {
      open += c.open;
      pending += c.pending.size;
    }
    return { peers: this.peers.size, open, header_incomplete: pending };
  }
}

/** connId names one TCP connection by its peer address and port (the same for the raw and the TLS socket). */
function connId(socket: Socket): string {
  return `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`;
}
