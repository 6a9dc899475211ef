/**
 * API-key authentication (PROTOCOL.md §1). Client keys (`X-API-KEY`) and management keys
 * (`X-MANAGEMENT-API-KEY`) are separate key rings: a client key never grants management and a
 * management key never passes a client route. The first-dialect policy routes accept the
 * management key in `X-API-KEY` too.
 *
 * Comparison is constant-time: the presented key and every configured key are reduced to
 * HMAC-SHA-256 digests under a per-process random key, and every configured digest is compared
 * with crypto.timingSafeEqual. Equal-length digests mean the time never depends on the length or
 * content of either side, and the loop never exits early, so it does not reveal which key matched.
 */
import * as crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TasError } from '../errors';
import type { Edge } from './edge';

/** KeyRing holds the digests of the keys accepted for one kind of route. */
export class KeyRing {
  private readonly hmacKey = crypto.randomBytes(32);
  private digests: Buffer[] = [];
  /** generation changes with every replace(): verdicts cached under an older one are void. */
  private gen = 0;
  /**
   * Accepted keys per keep-alive connection (keyed by its socket): a later request on the same
   * connection presenting the same key is accepted by one constant-time compare instead of the
   * HMAC and the loop over every configured key. Keyed by generation, so SIGHUP rotation bites on
   * the very next request; entries go with their sockets.
   */
  private readonly perConnection = new WeakMap<object, { gen: number; key: Buffer }>();

  constructor(readonly name: string, keys: readonly string[], minLength: number) {
    this.replace(keys, minLength);
  }

  /** replace swaps the accepted keys at once (rotation on SIGHUP); throws if any key is too short. */
  replace(keys: readonly string[], minLength: number): void {
    if (keys.length === 0) throw new Error(`${this.name}: at least one key is required`);
    keys.forEach((k, i) => {
      if (k.length < minLength) throw new Error(`${this.name}: key number ${i + 1} is shorter than ${minLength} characters`);
    });
    this.digests = keys.map((k) => this.digest(k));
    this.gen++;
  }

  get generation(): number {
    return this.gen;
  }

  get size(): number {
    return this.digests.length;
  }

  /** matches tells whether `presented` is one of the keys, in time independent of where or whether it matches. */
  matches(presented: string): boolean {
    const d = this.digest(presented);
    let ok = false;
    for (const k of this.digests) {
      // Evaluate every comparison: `ok || timingSafeEqual(...)` would short-circuit after a hit.
      const eq = crypto.timingSafeEqual(d, k);
      ok = eq || ok;
    }
    return ok;
  }

  /**
   * matchesOn is matches() for a request on connection `conn`, remembering an accepted key for the
   * connection's later requests. The cached compare is constant-time in the content; it reveals
   * only whether the length equals that of a key this same connection already presented.
   */
  matchesOn(conn: object, presented: string): boolean {
    const c = this.perConnection.get(conn);
    if (c !== undefined && c.gen === this.gen) {
      const p = Buffer.from(presented, 'utf8');
      if (p.length === c.key.length && crypto.timingSafeEqual(p, c.key)) return true;
    }
    const ok = this.matches(presented);
    if (ok) this.perConnection.set(conn, { gen: this.gen, key: Buffer.from(presented, 'utf8') });
    else if (c !== undefined) this.perConnection.delete(conn);
    return ok;
  }

  private digest(key: string): Buffer {
    return crypto.createHmac('sha256', this.hmacKey).update(key, 'utf8').digest();
  }
}

/**
 * singleHeader returns a header that must be sent at most once. Node joins repeated custom headers
 * with ", "; a repeated key header is refused outright rather than compared as a joined string.
 */
export function singleHeader(request: FastifyRequest, name: string): string | undefined {
  const raw = request.raw.rawHeaders;
  let count = 0;
  let value: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === name) {
      count++;
      value = raw[i + 1];
    }
  }
  const parsed = request.headers[name];
  if (Array.isArray(parsed)) count = Math.max(count, parsed.length);
  // Keys never contain ',' (settings refuse it), so a comma means a joined duplicate header.
  if (count > 1 || (typeof parsed === 'string' && parsed.includes(','))) throw new TasError('HTTP_HEADER_INVALID', `header ${name} sent more than once`);
  return value ?? (typeof parsed === 'string' ? parsed : undefined);
}

type Scope = 'client' | 'management' | 'policy';

function check(edge: Edge, request: FastifyRequest, scope: Scope): void {
  const clientHeader = scope !== 'management' ? singleHeader(request, 'x-api-key') : undefined;
  const mgmtHeader = scope !== 'client' ? singleHeader(request, 'x-management-api-key') : undefined;
  let ok: boolean;
  if (scope === 'client') ok = clientHeader !== undefined && edge.clientKeys.matchesOn(request.raw.socket, clientHeader);
  else {
    // Both headers are checked when both are sent (no short-circuit): the result is "either is a management key".
    const a = mgmtHeader !== undefined && edge.managementKeys.matches(mgmtHeader);
    const b = clientHeader !== undefined && edge.managementKeys.matches(clientHeader);
    ok = a || b;
  }
  if (ok) return;
  const missing = clientHeader === undefined && mgmtHeader === undefined;
  const code = missing ? 'AUTH_MISSING' : 'AUTH_INVALID';
  edge.audit.record({ event: 'auth', outcome: 'deny', reason: code, requestId: request.id, client: request.clientAddress, details: { scope, route: request.routeOptions.url } });
  throw new TasError(code, `${scope} route ${request.routeOptions.url}: ${missing ? 'no key header' : 'key not accepted'}`);
}

/** clientAuth is an onRequest/preHandler hook accepting only client keys in X-API-KEY. */
export async function clientAuth(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
  check(request.server.tasEdge, request, 'client');
}

/** managementAuth is an onRequest/preHandler hook accepting only management keys in X-MANAGEMENT-API-KEY. */
export async function managementAuth(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
  check(request.server.tasEdge, request, 'management');
}

/** policyAuth (first-dialect /policy/v0/*) accepts a management key in X-MANAGEMENT-API-KEY or X-API-KEY. */
export async function policyAuth(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
  check(request.server.tasEdge, request, 'policy');
}
