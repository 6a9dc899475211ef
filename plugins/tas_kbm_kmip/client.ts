/**
 * KMIP client over mutual TLS: one persistent connection, requests serialized on it, version
 * negotiation with DiscoverVersions, request timeouts, reconnection with exponential backoff.
 *
 * Failure classes (KmipClientError.kind):
 * - `unavailable`: refused/reset connections, timeouts, server gone; retried on later calls
 *   after the backoff delay (never in a hot loop).
 * - `auth_failed`: the TLS handshake was refused (our certificate rejected, the server's not
 *   trusted) or the server answered AuthenticationNotSuccessful. This is STICKY: the client makes
 *   no further attempts until it is closed and a new one is opened (config reload), because
 *   repeating a rejected credential helps nobody and some servers lock identities.
 * - `protocol`: the server sent something malformed; the connection is dropped.
 * - `operation`: a well-formed failure reply (ResultStatus != Success), with reason and message.
 */
import { isIP } from 'node:net';
import { checkServerIdentity, connect, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { decodeTtlv, encodeTtlv, TTLV_HEADER_SIZE, TTLV_MAX_MESSAGE_SIZE, ttlvMessageLength, TtlvError, TtlvType, wipe, type TtlvItem } from './ttlv';
import { Operation, ResultReason, RESULT_REASON_NAMES, ObjectType, State } from './tags';
import {
  KMIP_1_2,
  SUPPORTED_VERSIONS,
  discoverVersionsPayload,
  getAttributesPayload,
  getPayload,
  isSuccess,
  locatePayload,
  nameOf,
  readDiscoverVersions,
  readGet,
  readGetAttributes,
  readLocate,
  readResponse,
  requestMessage,
  versionString,
  type BatchRequest,
  type BatchResult,
  type KmipAttribute,
  type KmipObject,
  type KmipVersion,
} from './messages';
import type { KmipConfig } from './config';

/** KmipClientErrorKind classifies client failures (see the file comment). */
export type KmipClientErrorKind = 'unavailable' | 'auth_failed' | 'protocol' | 'operation';

/** KmipClientError is what the client throws. Messages never hold key material. */
export class KmipClientError extends Error {
  constructor(
    readonly kind: KmipClientErrorKind,
    message: string,
    readonly resultReason?: number,
    opts: { cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'KmipClientError';
  }
}

/** KmipClientOptions configures a client: the connection part of the file configuration (config.ts) plus a logger. */
export interface KmipClientOptions extends Omit<KmipConfig, 'objectTypes'> {
  readonly log: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
}

/** KmipClientStats counts what happened (tests count, they do not clock). */
export interface KmipClientStats {
  connects: number;
  connectFailures: number;
  requests: number;
  /** Receive buffers zeroed after decoding (they can hold key material). */
  buffersWiped: number;
}

// TLS alerts and verification failures that mean "credentials or trust are wrong", not "down".
const AUTH_ERROR_CODES = new Set([
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE',
  'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED',
  'INVALID_PURPOSE',
]);

/** authReason turns a TLS failure code into advice an operator can act on. */
function authReason(code: string): string {
  if (code.startsWith('ERR_SSL_') && code.includes('ALERT')) {
    if (code.endsWith('UNKNOWN_CA')) return "the server does not trust the CA of our client certificate; check certfile/keyfile (must be signed by a CA the server trusts)";
    if (code.endsWith('UNSUPPORTED_CERTIFICATE')) return 'the server refused our client certificate as unsuitable; it needs extended key usage clientAuth';
    return 'the server refused our client certificate; check certfile/keyfile (signed by the server\'s CA, EKU clientAuth, not expired or revoked)';
  }
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return 'the server refused the handshake; check certfile/keyfile';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'the server certificate does not name server_name/host';
  return 'the server certificate is not trusted by ca_certs (or is expired, or not for TLS servers)';
}

function errCode(e: unknown): string {
  const c = (e as { code?: unknown })?.code;
  return typeof c === 'string' ? c : '';
}

/** Connection is one TLS connection with TTLV framing and at most one request in flight. */
class Connection {
  private chunks: Buffer[] = [];
  private have = 0;
  private pending: { resolve: (b: Buffer) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | undefined;
  private dead: Error | undefined;
  /** exchanges counts completed round trips (0 = fresh connection). */
  exchanges = 0;

  constructor(
    private readonly socket: TLSSocket,
    private readonly onDead: (c: Connection) => void,
  ) {
    socket.on('data', (d: Buffer) => this.onData(d));
    // Always handle 'error': an unhandled EPIPE/ECONNRESET would crash the daemon.
    socket.on('error', (e) => this.kill(new KmipClientError('unavailable', `connection error: ${e.message}`, undefined, { cause: e })));
    socket.on('close', () => this.kill(new KmipClientError('unavailable', 'connection closed by the server')));
    socket.on('end', () => this.kill(new KmipClientError('unavailable', 'connection closed by the server')));
  }

  get alive(): boolean {
    return this.dead === undefined;
  }

  private clear(): void {
    for (const c of this.chunks) c.fill(0);
    this.chunks = [];
    this.have = 0;
  }

  private onData(d: Buffer): void {
    if (this.dead) return;
    if (!this.pending) {
      d.fill(0);
      this.kill(new KmipClientError('protocol', 'unsolicited data from the server'));
      return;
    }
    this.chunks.push(d);
    this.have += d.length;
    if (this.have < TTLV_HEADER_SIZE) return;
    const head = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.have);
    let total: number;
    try {
      total = ttlvMessageLength(head);
    } catch (e) {
      this.kill(new KmipClientError('protocol', (e as Error).message));
      return;
    }
    if (total > TTLV_MAX_MESSAGE_SIZE) {
      this.kill(new KmipClientError('protocol', `response of ${total} bytes exceeds ${TTLV_MAX_MESSAGE_SIZE}`));
      return;
    }
    if (this.have < total) return;
    if (this.have > total) {
      this.kill(new KmipClientError('protocol', 'more bytes than one response message'));
      return;
    }
    const msg = Buffer.concat(this.chunks, this.have);
    if (head !== this.chunks[0]) head.fill(0);
    this.clear();
    const p = this.pending;
    this.pending = undefined;
    clearTimeout(p.timer);
    this.exchanges++;
    p.resolve(msg);
  }

  /** roundTrip sends one request and resolves with the raw response (the caller wipes it). */
  roundTrip(request: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.pending) return Promise.reject(new KmipClientError('protocol', 'request already in flight (bug)'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.kill(new KmipClientError('unavailable', `no response within ${timeoutMs} ms`)), timeoutMs);
      this.pending = { resolve, reject, timer };
      this.socket.write(request);
    });
  }

  kill(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    this.clear();
    const p = this.pending;
    this.pending = undefined;
    if (p) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.socket.destroy();
    this.onDead(this);
  }
}

/** KmipClient is the long-lived client the broker uses. Safe for concurrent callers. */
export class KmipClient {
  readonly stats: KmipClientStats = { connects: 0, connectFailures: 0, requests: 0, buffersWiped: 0 };
  private conn: Connection | undefined;
  private negotiated: KmipVersion | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private failures = 0;
  private nextAttemptAt = 0;
  private lastFailure = '';
  private authFailure: string | undefined;
  private closed = false;

  constructor(private readonly opts: KmipClientOptions) {}

  /** version is the protocol version in use (undefined before the first connection in auto mode). */
  get version(): KmipVersion | undefined {
    return this.opts.version === 'auto' ? this.negotiated : this.opts.version;
  }

  /** authFailed is the sticky reason after a credential rejection, else undefined. */
  get authFailed(): string | undefined {
    return this.authFailure;
  }

  /** serialize runs fn after every earlier call finished (one request in flight per connection). */
  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private markAuthFailed(reason: string): KmipClientError {
    this.authFailure = reason;
    this.opts.log.error({ kmip: `${this.opts.host}:${this.opts.port}` }, `KMIP authentication failed, not retrying until reconfigured: ${reason}`);
    return new KmipClientError('auth_failed', reason);
  }

  private openSocket(): Promise<TLSSocket> {
    const o = this.opts;
    return new Promise((resolve, reject) => {
      const socket = connect({
        host: o.host,
        port: o.port,
        // SNI carries DNS names only (RFC 6066); for an IP, Node checks the IP SAN against host.
        ...(isIP(o.serverName) ? {} : { servername: o.serverName }),
        checkServerIdentity: (_host, cert) => checkServerIdentity(o.serverName, cert),
        ca: o.ca,
        cert: o.cert,
        key: o.key,
        minVersion: 'TLSv1.2',
        rejectUnauthorized: true,
      });
      let settled = false;
      const done = (e?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.removeListener('secureConnect', onOk);
        if (e) {
          socket.destroy();
          reject(e);
        } else resolve(socket);
      };
      const onOk = (): void => done();
      const timer = setTimeout(() => done(Object.assign(new Error(`TLS connect timed out after ${o.connectTimeoutMs} ms`), { code: 'ETIMEDOUT' })), o.connectTimeoutMs);
      socket.once('secureConnect', onOk);
      // Keep a permanent 'error' listener: errors after settle must never be unhandled.
      socket.on('error', (e) => done(e));
      socket.once('close', () => done(Object.assign(new Error('connection closed during the TLS handshake'), { code: 'ECONNRESET' })));
    });
  }

  /** connection returns the live connection, connecting (and negotiating) if needed. */
  private async connection(): Promise<Connection> {
    if (this.closed) throw new KmipClientError('unavailable', 'client is closed');
    if (this.authFailure) throw new KmipClientError('auth_failed', this.authFailure);
    if (this.conn?.alive) return this.conn;
    const now = Date.now();
    if (now < this.nextAttemptAt) {
      throw new KmipClientError('unavailable', `KMIP server unreachable (next attempt in ${this.nextAttemptAt - now} ms): ${this.lastFailure}`);
    }
    const where = `${this.opts.host}:${this.opts.port}`;
    let socket: TLSSocket;
    try {
      socket = await this.openSocket();
    } catch (e) {
      const code = errCode(e);
      const msg = (e as Error).message;
      if (AUTH_ERROR_CODES.has(code)) {
        throw this.markAuthFailed(`TLS handshake with ${where} failed: ${authReason(code)} (${code}: ${msg.split('\n')[0]!.slice(0, 200)})`);
      }
      this.backoff(`${code || 'error'}: ${msg}`);
      throw new KmipClientError('unavailable', `cannot connect to KMIP server ${where}: ${msg}`, undefined, { cause: e });
    }
    socket.setKeepAlive(true, 30_000);
    socket.setNoDelay(true);
    this.stats.connects++;
    const conn = new Connection(socket, (c) => {
      if (this.conn === c) this.conn = undefined;
    });
    this.conn = conn;
    this.opts.log.info({ kmip: where, tls: socket.getProtocol(), cipher: socket.getCipher().name }, 'KMIP connection established');
    // Negotiate on every new connection: the server behind the address may have been replaced.
    if (this.opts.version === 'auto') {
      try {
        const before = this.negotiated;
        this.negotiated = await this.negotiate(conn);
        if (before === undefined || versionString(before) !== versionString(this.negotiated)) {
          this.opts.log.info({ kmip: where, version: versionString(this.negotiated) }, 'KMIP version negotiated');
        }
      } catch (e) {
        // Never keep a connection whose version is unknown: the next call would guess one.
        conn.kill(new KmipClientError('protocol', 'version negotiation failed'));
        if (e instanceof KmipClientError && e.kind === 'unavailable') this.backoff(e.message);
        throw e;
      }
    }
    this.failures = 0;
    this.nextAttemptAt = 0;
    return conn;
  }

  private backoff(reason: string): void {
    this.stats.connectFailures++;
    this.failures++;
    const base = Math.min(this.opts.reconnectMaxMs, this.opts.reconnectInitialMs * 2 ** Math.min(this.failures - 1, 20));
    // Up to 20 % jitter so that a fleet of daemons does not reconnect in lock step.
    this.nextAttemptAt = Date.now() + Math.round(base * (0.8 + Math.random() * 0.2));
    this.lastFailure = reason;
    this.opts.log.warn({ kmip: `${this.opts.host}:${this.opts.port}`, failures: this.failures, retryInMs: this.nextAttemptAt - Date.now() }, `KMIP server unavailable: ${reason}`);
  }

  /** negotiate asks with a KMIP 1.2 header (understood by every server that has DiscoverVersions). */
  private async negotiate(conn: Connection): Promise<KmipVersion> {
    const [r] = await this.exchange(conn, KMIP_1_2, [{ operation: Operation.DiscoverVersions, payload: discoverVersionsPayload(SUPPORTED_VERSIONS) }]);
    if (!isSuccess(r!)) {
      // KMIP 1.0 servers lack DiscoverVersions: stay on the 1.2 baseline only if it said so politely.
      if (r!.reason === ResultReason.OperationNotSupported) return KMIP_1_2;
      this.failed(r!, 'DiscoverVersions');
    }
    const offered = readDiscoverVersions(r!.payload);
    const pick = SUPPORTED_VERSIONS.find((v) => offered.some((o) => o.major === v.major && o.minor === v.minor));
    if (!pick) throw new KmipClientError('protocol', `server supports none of ${SUPPORTED_VERSIONS.map(versionString).join(', ')} (offered ${offered.map(versionString).join(', ') || 'nothing'})`);
    return pick;
  }

  /** exchange does one request/response on conn and checks the response against the request. */
  private async exchange(conn: Connection, version: KmipVersion, items: readonly BatchRequest[]): Promise<BatchResult[]> {
    const req = encodeTtlv(requestMessage(version, items));
    this.stats.requests++;
    const raw = await conn.roundTrip(req, this.opts.requestTimeoutMs);
    let msg: TtlvItem | undefined;
    try {
      msg = decodeTtlv(raw);
    } catch (e) {
      conn.kill(new KmipClientError('protocol', `malformed response: ${(e as Error).message}`));
      throw new KmipClientError('protocol', `malformed response from the KMIP server: ${(e as TtlvError).message}`);
    } finally {
      raw.fill(0);
      this.stats.buffersWiped++;
    }
    let resp;
    try {
      resp = readResponse(msg);
    } catch (e) {
      wipe(msg);
      conn.kill(new KmipClientError('protocol', (e as Error).message));
      throw new KmipClientError('protocol', `unexpected response from the KMIP server: ${(e as Error).message}`);
    }
    // An authentication failure is answered with a single batch item whatever we asked.
    const authFail = resp.items.find((r) => !isSuccess(r) && r.reason === ResultReason.AuthenticationNotSuccessful);
    if (authFail) {
      conn.kill(new KmipClientError('auth_failed', 'authentication failed'));
      throw this.markAuthFailed(
        `KMIP server ${this.opts.host}:${this.opts.port} refused our client certificate (AuthenticationNotSuccessful: ${authFail.message ?? ''}); the certificate needs EKU clientAuth and an identity (CN) the server accepts`,
      );
    }
    if (resp.items.length !== items.length) {
      wipe(msg);
      throw new KmipClientError('protocol', `asked ${items.length} operations, got ${resp.items.length} results`);
    }
    // Match results to requests: by UniqueBatchItemId when batching, and the operation must agree.
    const out: BatchResult[] = new Array(items.length);
    resp.items.forEach((r, i) => {
      let idx = i;
      if (items.length > 1) {
        if (r.uniqueBatchItemId === undefined || r.uniqueBatchItemId.length !== 4) throw new KmipClientError('protocol', 'batch result without our UniqueBatchItemId');
        idx = r.uniqueBatchItemId.readUInt32BE(0);
        if (idx >= items.length || out[idx] !== undefined) throw new KmipClientError('protocol', 'unknown or repeated UniqueBatchItemId');
      }
      if (r.operation !== undefined && r.operation !== items[idx]!.operation) throw new KmipClientError('protocol', `result for operation ${r.operation}, asked ${items[idx]!.operation}`);
      out[idx] = r;
    });
    return out;
  }

  private failed(r: BatchResult, what: string): never {
    const reasonName = r.reason === undefined ? 'no reason' : (RESULT_REASON_NAMES.get(r.reason) ?? `reason 0x${r.reason.toString(16)}`);
    throw new KmipClientError('operation', `${what} failed: ${reasonName}${r.message ? ` (${r.message})` : ''}`, r.reason);
  }

  /**
   * call runs one batch on the shared connection. The batch is built only once the connection
   * (and so the negotiated version) is known: a 1.x payload under a 2.0 header is read by the
   * server as a different request (PyKMIP then ignores the Locate filters). A request that dies
   * before any answer on a connection that already served requests is retried once on a fresh
   * connection: servers close idle connections, and every operation tas sends is a read.
   */
  private call(build: (v: KmipVersion) => BatchRequest[]): Promise<BatchResult[]> {
    return this.serialize(async () => {
      for (let attempt = 0; ; attempt++) {
        const conn = await this.connection();
        const reused = conn.exchanges > 0;
        const v = this.version ?? KMIP_1_2;
        try {
          return await this.exchange(conn, v, build(v));
        } catch (e) {
          const stale = e instanceof KmipClientError && e.kind === 'unavailable' && !/no response within/.test(e.message);
          if (attempt === 0 && reused && stale && !this.closed) {
            this.opts.log.debug({ err: e.message }, 'KMIP connection went stale; retrying once on a new connection');
            continue;
          }
          throw e;
        }
      }
    });
  }

  /** discoverVersions returns the versions the server shares with tas (also the health probe). */
  async discoverVersions(): Promise<KmipVersion[]> {
    const [r] = await this.call(() => [{ operation: Operation.DiscoverVersions, payload: discoverVersionsPayload(SUPPORTED_VERSIONS) }]);
    if (!isSuccess(r!)) this.failed(r!, 'DiscoverVersions');
    return readDiscoverVersions(r!.payload);
  }

  /**
   * locate finds the Active objects of the given types named `name`, in one batched request
   * (one Locate per object type). It returns every id found; the caller decides what 0 or >1 mean.
   */
  async locate(name: string, objectTypes: readonly number[] = [ObjectType.SymmetricKey]): Promise<string[]> {
    const results = await this.call((v) =>
      objectTypes.map((objectType) => ({
        operation: Operation.Locate,
        // MaximumItems 2: one is the answer, a second already means "ambiguous".
        payload: locatePayload(v, { name, objectType, state: State.Active, maximumItems: 2 }),
      })),
    );
    const ids: string[] = [];
    for (const r of results) {
      if (!isSuccess(r)) {
        if (r.reason === ResultReason.ItemNotFound) continue;
        this.failed(r, 'Locate');
      }
      ids.push(...readLocate(r.payload));
    }
    return ids;
  }

  private readGetResult(r: BatchResult, uid: string): KmipObject {
    try {
      if (!isSuccess(r)) this.failed(r, 'Get');
      const obj = readGet(r.payload);
      if (obj.uid !== uid) throw new KmipClientError('protocol', `Get returned object ${JSON.stringify(obj.uid)} for ${JSON.stringify(uid)}`);
      return obj;
    } catch (e) {
      if (r.payload) wipe(r.payload);
      if (e instanceof TtlvError) throw new KmipClientError('protocol', `Get response: ${e.message}`);
      throw e;
    }
  }

  /** get fetches an object's key material; the caller must zero `material` after use. */
  async get(uid: string): Promise<KmipObject> {
    const [r] = await this.call(() => [{ operation: Operation.Get, payload: getPayload(uid) }]);
    return this.readGetResult(r!, uid);
  }

  /**
   * getVerified fetches an object together with its Name, State and Object Type (GetAttributes
   * and Get in one batch, so no extra round trip) and releases the material only if the object
   * really is an Active object of an allowed type carrying `name`. This does not trust the
   * server's Locate filtering (PyKMIP skips filters on attributes an object lacks), and closes
   * the race with a key deactivated between Locate and Get. Mismatch: KmipClientError
   * `operation` with reason ItemNotFound, and the material is zeroed.
   */
  async getVerified(uid: string, name: string, objectTypes: readonly number[]): Promise<KmipObject> {
    const [ga, g] = await this.call((v) => [
      { operation: Operation.GetAttributes, payload: getAttributesPayload(v, uid, ['Object Type', 'State', 'Name']) },
      { operation: Operation.Get, payload: getPayload(uid) },
    ]);
    const obj = this.readGetResult(g!, uid);
    try {
      if (!isSuccess(ga!)) this.failed(ga!, 'GetAttributes');
      let attrs: KmipAttribute[];
      try {
        attrs = readGetAttributes(ga!.payload).attributes;
      } catch (e) {
        throw new KmipClientError('protocol', `GetAttributes response: ${(e as Error).message}`);
      }
      const enumOf = (n: string): number[] => attrs.filter((a) => a.name === n && a.value.type === TtlvType.Enumeration).map((a) => a.value.value as number);
      const names = attrs.filter((a) => a.name === 'Name').map((a) => {
        try {
          return nameOf(a.value);
        } catch {
          return undefined;
        }
      });
      const state = enumOf('State');
      const type = enumOf('Object Type');
      const problems: string[] = [];
      if (!names.includes(name)) problems.push('name differs');
      if (state.length !== 1 || state[0] !== State.Active) problems.push(`state ${state.join(',') || 'missing'} is not Active`);
      if (type.length !== 1 || type[0] !== obj.objectType || !objectTypes.includes(type[0]!)) problems.push(`object type ${type.join(',') || 'missing'} not allowed`);
      if (problems.length > 0) {
        throw new KmipClientError('operation', `object ${uid} found for ${JSON.stringify(name)} does not match (${problems.join('; ')})`, ResultReason.ItemNotFound);
      }
      return obj;
    } catch (e) {
      obj.material.fill(0);
      throw e;
    }
  }

  /** getAttributes reads named attributes (1.x names; the 2.0 form is mapped back to names). */
  async getAttributes(uid: string, names: readonly string[]): Promise<KmipAttribute[]> {
    const [r] = await this.call((v) => [{ operation: Operation.GetAttributes, payload: getAttributesPayload(v, uid, names) }]);
    if (!isSuccess(r!)) this.failed(r!, 'GetAttributes');
    try {
      return readGetAttributes(r!.payload).attributes;
    } catch (e) {
      throw new KmipClientError('protocol', `GetAttributes response: ${(e as Error).message}`);
    }
  }

  /** close drops the connection; later calls fail as `unavailable`. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    this.conn?.kill(new KmipClientError('unavailable', 'client is closed'));
    this.conn = undefined;
    await this.queue.catch(() => undefined);
  }
}
