/**
 * buildServer assembles one fastify instance (one listener). A daemon runs one instance serving
 * every route, or two when a separate management listener is configured: `role` says which
 * routes an instance carries. Other modules add routes through `services.routes` and use the
 * exported auth hooks and body limits, so auth, limits, error mapping and metrics stay uniform.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyServerFactoryHandler } from 'fastify';
import { maskUrlsDeep } from '../config/mask';
import type { AppContext } from '../daemon/context';
import type { Attester } from '../attest/types';
import { TasError, toWire } from '../errors';
import { VERSION } from '../version';
import { lazyChild, type Logger } from '../log';
import { clientAddress, rateKey } from './address';
import { clientAuth, managementAuth } from './auth';
import { PeerConnectionLimiter } from './connections';
import type { Edge } from './edge';
import { installErrorHandling } from './errors';
import { registerGetSecret } from './get-secret';
import { bodyLimit, serverLimits, type ServerLimits } from './limits';
import { installMetrics } from './metrics';
import type { DeferredCharge } from './rate-limit';

declare module 'fastify' {
  interface FastifyInstance {
    /** tasEdge is the shared edge state (keys, limits) of the daemon. */
    tasEdge: Edge;
  }
  interface FastifyRequest {
    /** clientAddress is the address the request is accounted to (after trusted-proxy handling). */
    clientAddress: string;
    /**
     * The rate-limit hit of a `rateLimit: 'with-nonce'` route, not counted yet: the handler hands
     * it to the nonce issue (and clears it); if the request fails first, the error path counts it.
     */
    rateCharge: DeferredCharge | undefined;
  }
  interface FastifyContextConfig {
    /**
     * rateLimit false exempts a route (probes) from the per-client rate limit; 'with-nonce' lets
     * the route count it inside its nonce issue (get_nonce: one store round trip) when the rate
     * counter and the nonces share a store, and counts it here otherwise.
     */
    rateLimit?: boolean | 'with-nonce';
  }
}

/** RouteModule is how another module adds routes (e.g. get_nonce, policy routes). */
export interface RouteModule {
  readonly name: string;
  /** client routes go on the main listener; management routes on the management listener when there is one. */
  readonly scope: 'client' | 'management';
  register(app: FastifyInstance, ctx: AppContext): void | Promise<void>;
}

/** StatusProvider contributes one member of GET /management/status. */
export interface StatusProvider {
  readonly name: string;
  status(): unknown | Promise<unknown>;
}

/** HttpServices are the modules the edge calls. */
export interface HttpServices {
  attester: Attester;
  routes?: readonly RouteModule[];
  status?: readonly StatusProvider[];
}

/** TlsOptions configure HTTPS on a listener; `ca` + requestCert turn on mutual TLS. */
export interface TlsOptions {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

export interface BuildOptions {
  /** Which routes this instance serves: `all` (single listener), `main` or `management`. */
  role?: 'all' | 'main' | 'management';
  tls?: TlsOptions;
  limits?: Partial<ServerLimits>;
}

/** createNodeServer makes the Node server with every bound of `limits` applied. */
function createNodeServer(handler: FastifyServerFactoryHandler, tls: TlsOptions | undefined, limits: ServerLimits, edge: Edge, log: AppContext['log']): http.Server {
  const common: http.ServerOptions = {
    maxHeaderSize: limits.maxHeaderSize,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: limits.connectionsCheckingIntervalMs,
    requireHostHeader: false,
    joinDuplicateHeaders: false,
  };
  const server: http.Server = tls
    ? https.createServer({
      ...common, cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'],
      // A TLS handshake gets no more time than the request headers would (slow-loris before HTTP).
      handshakeTimeout: limits.headersTimeoutMs,
      ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}),
    }, handler)
    : http.createServer(common, handler);
  server.maxHeadersCount = limits.maxHeadersCount;
  server.maxConnections = limits.maxConnections;
  server.maxRequestsPerSocket = limits.maxRequestsPerSocket;
  server.setTimeout(limits.socketTimeoutMs);
  // Per-peer caps (src/http/connections.ts): 'connection' is the raw TCP socket, before TLS and HTTP.
  const peers = new PeerConnectionLimiter({
    open: limits.maxConnectionsPerPeer,
    headerIncomplete: limits.maxHeaderIncompletePerPeer,
    headerGraceMs: limits.headerGraceMs,
    proxyOpen: limits.maxConnectionsPerProxy,
    proxyHeaderIncomplete: limits.maxHeaderIncompletePerProxy,
    // A backstop behind Node's headersTimeout (checked every connectionsCheckingInterval, answers
    // 408): far enough behind that a busy event loop never lets it pre-empt Node's answer.
    headerTimeoutMs: 2 * limits.headersTimeoutMs + limits.connectionsCheckingIntervalMs,
  }, () => edge.trustedProxies, edge.connectionStats);
  let lastRefusalLog = 0;
  server.on('connection', (socket: Socket) => {
    const reason = peers.accept(socket);
    // One line per 10 s at most: a flood must not turn into a flood of log lines.
    if (reason && Date.now() - lastRefusalLog > 10_000) {
      lastRefusalLog = Date.now();
      log.warn({ peer: peers.peerKey(socket.remoteAddress), reason, refused: edge.connectionStats.refused }, 'connection refused: per-peer connection cap reached');
    }
  });
  server.on('request', (req: http.IncomingMessage) => peers.requestHead(req.socket));
  return server;
}

/**
 * clientError answers malformed HTTP (bad framing, oversized headers, header timeout) with a
 * catalogue body and closes the connection; it runs before any route, so it logs only the code.
 */
function clientError(this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const code = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'HTTP_TIMEOUT' : 'HTTP_HEADER_INVALID';
  const wire = toWire(new TasError(code, err.message));
  this.log.info({ code, detail: err.code ?? err.message }, 'malformed request refused');
  if (socket.writable) {
    const body = JSON.stringify(wire.body);
    socket.write(`HTTP/1.1 ${wire.status} ${http.STATUS_CODES[wire.status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}

/** buildServer returns a ready-to-listen fastify instance (call listen through the daemon, or inject()). */
export async function buildServer(ctx: AppContext, edge: Edge, services: HttpServices, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const role = opts.role ?? 'all';
  const limits: ServerLimits = { ...serverLimits, ...opts.limits };
  // The cast drops pino's Logger generic: routes see the plain FastifyBaseLogger.
  const app = Fastify({
    loggerInstance: ctx.log,
    serverFactory: (handler) => createNodeServer(handler, opts.tls, limits, edge, ctx.log),
    bodyLimit: bodyLimit.default,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    routerOptions: { maxParamLength: 512, ignoreTrailingSlash: false, ignoreDuplicateSlashes: false },
    // Per-request lines come from the error mapping (refusals) and metrics; no URL/header dumps.
    logController: new LogController({ disableRequestLogging: true }),
    // One logger per request at most, and only when the request writes a line (most write none).
    childLoggerFactory: (logger, bindings, childOpts) =>
      Object.keys(childOpts).length > 0 ? logger.child(bindings, childOpts) : lazyChild(logger as unknown as Logger, bindings),
    requestIdHeader: false,
    clientErrorHandler: clientError,
    frameworkErrors: (err, request, reply) => {
      const { status, body, headers } = toWire(new TasError('HTTP_BAD_REQUEST', `${err.code}: ${err.message}`));
      request.log.info({ code: err.code }, 'malformed request refused');
      void (reply as FastifyReply).code(status).headers(headers).send(body);
    },
    return503OnClosing: true,
  }) as unknown as FastifyInstance;

  app.decorate('tasEdge', edge);
  app.decorateRequest('clientAddress', '');
  app.decorateRequest('rateCharge', undefined);

  // Strict JSON: only application/json, one document, prototype poisoning refused (400).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));

  // Audit durability: no reply leaves before the audit records written so far were handed to the
  // kernel (the writer is asynchronous; docs/audit.md). Usually nothing is pending: no promise then.
  app.addHook('onSend', (_request, _reply, payload, done) => {
    const pending = ctx.audit.whenWritten?.();
    if (pending === undefined) done(null, payload);
    else void pending.then(() => done(null, payload));
  });

  installErrorHandling(app, async (request) => {
    // A deferred rate-limit hit the handler never took (e.g. a refused key) still counts, and an
    // exhausted budget answers 429 as it would have before the route ran.
    const c = request.rateCharge;
    if (c === undefined) return;
    request.rateCharge = undefined;
    await edge.rateLimiter.settle(c);
  });
  installMetrics(app, ctx.metrics, edge);

  app.addHook('onRequest', async (request) => {
    request.clientAddress = clientAddress(request.raw.socket.remoteAddress, request.headers['x-forwarded-for'], edge.trustedProxies);
    // Mutual TLS is enforced in the handshake; this re-check keeps a misconfigured context failing closed.
    if (opts.tls?.ca && !(request.raw.socket as TLSSocket).authorized) {
      throw new TasError('AUTH_CLIENT_CERT', 'management listener: no valid client certificate');
    }
    // Unknown paths count too: a scanner should run out of budget like any other client.
    const rl = request.routeOptions.config?.rateLimit;
    if (rl === false) return;
    if (rl === 'with-nonce' && edge.rateLimiter.chargesWithNonces) {
      request.rateCharge = edge.rateLimiter.charge(rateKey(request.clientAddress));
      return;
    }
    await edge.rateLimiter.check(rateKey(request.clientAddress));
  });

  // Probes: no auth, no rate limit (orchestrators poll them; bind the listener where operators choose).
  app.get('/healthz', { config: { rateLimit: false } }, async () => ({ status: 'ok' }));
  // /readyz needs no key: on a listener the VMs reach it names the failed dependencies only (their
  // reasons can quote hosts, users and backend errors); the reasons are on /management/status, and
  // on /readyz of a separate management listener (an operators' network, optionally mTLS).
  app.get('/readyz', { config: { rateLimit: false } }, async (_request, reply) => {
    const r = await ctx.readiness.check();
    if (r.ready) return { status: 'ready' };
    const names = Object.keys(r.failed).sort();
    const body = role === 'management' ? { status: 'not ready', failed: names, reasons: maskUrlsDeep(r.failed) } : { status: 'not ready', failed: names };
    return reply.code(503).header('retry-after', '5').send(body);
  });
  app.get('/metrics', { config: { rateLimit: false } }, async (_request, reply) => {
    return reply.type(ctx.metrics.contentType).send(await ctx.metrics.metrics());
  });

  const serveClient = role !== 'management';
  const serveManagement = role !== 'main';
  if (serveClient) {
    app.get('/version', { onRequest: clientAuth }, async () => ({ version: VERSION }));
    registerGetSecret(app, services.attester);
  }
  if (serveManagement) {
    app.get('/management/status', { onRequest: managementAuth }, async () => {
      const out: Record<string, unknown> = {
        version: VERSION,
        edge: {
          inflight: edge.inflight.inflight, max_inflight: edge.inflight.capacity, client_keys: edge.clientKeys.size, management_keys: edge.managementKeys.size,
          connections: {
            open: edge.connectionStats.open, peak_open: edge.connectionStats.peakOpen, header_incomplete: edge.connectionStats.headerIncomplete,
            refused: edge.connectionStats.refused, header_timeouts: edge.connectionStats.headerTimeouts,
          },
        },
      };
      const r = await ctx.readiness.check();
      out.readiness = { ready: r.ready, failed: r.failed };
      for (const p of services.status ?? []) {
        try {
          out[p.name] = await p.status();
        } catch (e) {
          out[p.name] = { error: (e as Error).message };
        }
      }
      // Providers show settings (kds.base_url, store URLs) and error texts that may quote a URL
      // with credentials: mask their userinfo here, once, for every provider (src/config/mask.ts).
      return maskUrlsDeep(out);
    });
  }
  for (const m of services.routes ?? []) {
    if ((m.scope === 'client' && serveClient) || (m.scope === 'management' && serveManagement)) await m.register(app, ctx);
  }
  await app.ready();
  return app;
}
