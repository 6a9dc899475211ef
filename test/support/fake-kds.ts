/**
 * A fake AMD KDS: a real HTTP server on a free loopback port serving VCEKs, cert_chain bodies and
 * CRLs the way kdsintf.amd.com does (DER for VCEKs and CRLs, PEM for cert_chain), with fault
 * injection (status codes, Retry-After, delays, hangs) and a count of every request, so tests can
 * assert "exactly one upstream fetch" and the fetcher's behaviour under 429/500/404/timeouts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Fault {
  status?: number;
  retryAfter?: string;
  /** Answer after this many ms. */
  delayMs?: number;
  /** Never answer (the client's timeout must cut it). */
  hang?: boolean;
  /** Apply to this many requests, then stop (default: until cleared). */
  times?: number;
}

export class FakeKds {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly bodies = new Map<string, { body: Buffer; type: string; headers?: Record<string, string> }>();
  private readonly faults = new Map<string, Fault>();
  /** Requests seen, by path (with query). */
  readonly hits = new Map<string, number>();
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** serve registers a body for a path (query included for VCEKs; order of parameters is normalised). */
  serve(path: string, body: Buffer | string, type = 'application/octet-stream', headers?: Record<string, string>): this {
    this.bodies.set(norm(path), { body: Buffer.isBuffer(body) ? body : Buffer.from(body), type, ...(headers ? { headers } : {}) });
    return this;
  }

  /** fault makes requests whose path starts with `prefix` misbehave. */
  fault(prefix: string, f: Fault): this {
    this.faults.set(prefix, { ...f });
    return this;
  }

  clearFaults(): void {
    this.faults.clear();
  }

  total(prefix = '/'): number {
    let n = 0;
    for (const [p, c] of this.hits) if (p.startsWith(prefix)) n += c;
    return n;
  }

  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** stop closes the listener and every connection (clients then see connection refused). */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const c of this.sockets) c.destroy();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = norm(req.url ?? '/');
    this.hits.set(path, (this.hits.get(path) ?? 0) + 1);
    for (const [prefix, f] of this.faults) {
      if (!path.startsWith(prefix)) continue;
      if (f.times !== undefined) {
        if (f.times <= 0) continue;
        f.times--;
      }
      if (f.hang) return; // the client's timeout must end this
      const answer = () => {
        if (f.status !== undefined) {
          res.writeHead(f.status, f.retryAfter !== undefined ? { 'retry-after': f.retryAfter } : {});
          res.end(`fault ${f.status}`);
        } else this.answer(path, res);
      };
      if (f.delayMs) setTimeout(answer, f.delayMs);
      else answer();
      return;
    }
    this.answer(path, res);
  }

  private answer(path: string, res: ServerResponse): void {
    const b = this.bodies.get(path);
    if (!b) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    res.writeHead(200, { ...b.headers, 'content-type': b.type, 'content-length': b.body.length });
    res.end(b.body);
  }
}

/** norm sorts query parameters so that registration and request order need not match. */
function norm(pathWithQuery: string): string {
  const [p, q] = pathWithQuery.split('?', 2) as [string, string | undefined];
  if (!q) return p;
  const params = [...new URLSearchParams(q).entries()].sort(([a], [b]) => a.localeCompare(b));
  return `${p}?${new URLSearchParams(params).toString()}`;
}
