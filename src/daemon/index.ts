/**
 * The composition root: loads the configuration, builds every module, starts the listeners and
 * owns reload (SIGHUP) and graceful stop. Keep it small: modules do the work, this file wires.
 *
 * Listeners: the main listener serves client routes, probes and (unless a separate management
 * listener is configured) management routes. With TAS_MANAGEMENT_HOST/PORT the management routes
 * move to their own listener, with mutual TLS when TAS_MANAGEMENT_CLIENT_CA_FILE is set.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import '../config/all-settings';
import { loadConfig, type Config, type LoadOptions } from '../config';
import { UnavailableAttester } from '../attest';
import type { AuditLog } from '../audit/types';
import { buildServer, createEdge, type Edge, type HttpServices, type RateLimitStore, type ServerLimits } from '../http';
import type { AppContext } from './context';
import { openAudit } from '../audit';
import { createLogger } from '../log';
import { createLifecycle, createReadiness } from './runtime';
import { MTLS_WITHOUT_LISTENER, plaintextRefusal, readTls, StartupError } from './preflight';

export { StartupError } from './preflight';

/** ListenFd is an inherited socket (systemd socket activation); name `management` selects the management listener. */
export interface ListenFd {
  readonly name: string;
  readonly fd: number;
}

export interface DaemonOptions {
  /** An already loaded configuration; otherwise loaded from `load` (env, file). */
  config?: Config;
  load?: LoadOptions;
  /** Inherited listening sockets; when given, host/port settings are ignored. */
  listenFds?: readonly ListenFd[];
  /** Services supplied by the caller (tests, or `tas serve` once the attest pipeline exists). */
  services?: Partial<HttpServices> & { rateLimitStore?: RateLimitStore };
  /** Hook to register readiness checks, close hooks etc. on the context before listening. */
  configure?: (ctx: AppContext) => void | Promise<void>;
  log?: Logger;
  audit?: AuditLog;
  metrics?: Registry;
  /** Server bounds override (tests use short timeouts). */
  limits?: Partial<ServerLimits>;
  /** Install SIGHUP (reload) and SIGTERM/SIGINT (graceful stop) handlers. */
  handleSignals?: boolean;
  /** How long close() waits for in-flight requests before cutting connections. */
  drainTimeoutMs?: number;
}

export interface Daemon {
  readonly ctx: AppContext;
  readonly edge: Edge;
  readonly main: FastifyInstance;
  readonly management: FastifyInstance | undefined;
  /** Base URLs (`http(s)://host:port`) of the listeners. */
  readonly urls: { readonly main: string; readonly management: string | undefined };
  /** reload re-reads the configuration (or takes `next`) and applies it; a bad one is refused and the old one kept. */
  reload(next?: Config): Promise<void>;
  /** close stops accepting, drains in-flight requests, then runs the close hooks. Idempotent. */
  close(): Promise<void>;
}

function baseUrl(app: FastifyInstance, tls: boolean): string {
  const a = app.server.address();
  if (a === null || typeof a === 'string') return a ?? '';
  const host = (a as AddressInfo).family === 'IPv6' ? `[${a.address}]` : a.address;
  return `${tls ? 'https' : 'http'}://${host}:${a.port}`;
}

async function listen(app: FastifyInstance, target: { fd: number } | { host: string; port: number }): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    app.server.once('error', reject);
    app.server.listen(target, () => {
      app.server.off('error', reject);
      resolve();
    });
  });
}

/** refusePlaintext fails startup for plain HTTP on a non-loopback address unless explicitly allowed. */
function refusePlaintext(cfg: Config, what: string, host: string): void {
  const why = plaintextRefusal(cfg, what, host);
  if (why) throw new StartupError(why);
}

/** startDaemon builds everything and starts listening. */
export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  let config = opts.config ?? loadConfig(opts.load);
  const log = opts.log ?? createLogger(config);
  const audit = opts.audit ?? openAudit(config);
  const metrics = opts.metrics ?? new Registry();
  if (!opts.metrics) collectDefaultMetrics({ register: metrics });
  const lifecycle = createLifecycle();
  const ctx: AppContext = { config: () => config, log, audit, metrics, readiness: createReadiness(), lifecycle };

  const edge = createEdge(config, audit, opts.services?.rateLimitStore);
  const services: HttpServices = {
    attester: opts.services?.attester ?? new UnavailableAttester(),
    routes: opts.services?.routes ?? [],
    status: opts.services?.status ?? [],
  };
  await opts.configure?.(ctx);

  const mgmtHost = config.get<string | undefined>('management.host');
  const mgmtFd = opts.listenFds?.find((f) => f.name === 'management');
  const mainFds = (opts.listenFds ?? []).filter((f) => f.name !== 'management');
  if (mainFds.length > 1) throw new StartupError(`socket activation: ${mainFds.length} listening sockets for the main listener; expected one (name the management socket "management")`);
  const separateMgmt = mgmtHost !== undefined || mgmtFd !== undefined;
  const tlsMain = readTls(config, false);
  const tlsMgmt = separateMgmt ? readTls(config, true) : undefined;
  if (config.get<string | undefined>('management.client_ca_file') !== undefined && !tlsMgmt?.ca) {
    throw new StartupError(MTLS_WITHOUT_LISTENER);
  }
  if (!tlsMain && mainFds.length === 0) refusePlaintext(config, 'main listener', config.get<string>('server.host'));
  if (!tlsMgmt && mgmtHost !== undefined && !mgmtFd) refusePlaintext(config, 'management listener', mgmtHost);

  const main = await buildServer(ctx, edge, services, { role: separateMgmt ? 'main' : 'all', ...(tlsMain ? { tls: tlsMain } : {}), ...(opts.limits ? { limits: opts.limits } : {}) });
  const management = separateMgmt
    ? await buildServer(ctx, edge, services, { role: 'management', ...(tlsMgmt ? { tls: tlsMgmt } : {}), ...(opts.limits ? { limits: opts.limits } : {}) })
    : undefined;

  const started: FastifyInstance[] = [];
  try {
    await listen(main, mainFds[0] ? { fd: mainFds[0].fd } : { host: config.get<string>('server.host'), port: config.get<number>('server.port') });
    started.push(main);
    if (management) {
      await listen(management, mgmtFd ? { fd: mgmtFd.fd } : { host: mgmtHost!, port: config.get<number>('management.port') });
      started.push(management);
    }
    // Inherited sockets: the address is only known now. Unix sockets (string address) are local.
    for (const [app, tls] of [[main, tlsMain], [management, tlsMgmt]] as const) {
      const a = app?.server.address();
      if (app && !tls && a && typeof a !== 'string') refusePlaintext(config, 'inherited socket', a.address);
    }
  } catch (e) {
    for (const app of started) app.server.close();
    await Promise.all([main.close(), management?.close()]);
    throw e;
  }

  const urls = { main: baseUrl(main, tlsMain !== undefined), management: management ? baseUrl(management, tlsMgmt !== undefined) : undefined };
  log.info({ urls, tls: tlsMain !== undefined, mtls: tlsMgmt?.ca !== undefined }, 'tas listening');

  // SIGHUP: keys, rate limit, proxies (edge) and TLS certificates; other modules register their own hooks.
  lifecycle.onReload((next) => {
    edge.reload(next);
    const t1 = readTls(next, false);
    if (t1 && tlsMain) (main.server as unknown as import('node:tls').Server).setSecureContext({ cert: t1.cert, key: t1.key });
    const t2 = management ? readTls(next, true) : undefined;
    if (t2 && tlsMgmt && management) (management.server as unknown as import('node:tls').Server).setSecureContext({ cert: t2.cert, key: t2.key, ...(t2.ca ? { ca: t2.ca } : {}) });
  });

  let closing: Promise<void> | undefined;
  const signals: Array<[NodeJS.Signals, () => void]> = [];
  const daemon: Daemon = {
    ctx, edge, main, management, urls,
    async reload(next?: Config) {
      let cfg: Config;
      try {
        cfg = next ?? loadConfig(opts.load);
      } catch (e) {
        log.error({ err: (e as Error).message }, 'reload refused: configuration invalid; keeping the running one');
        throw e;
      }
      const previous = config;
      config = cfg;
      const errors = await lifecycle.runReload(cfg);
      if (errors.length) {
        config = previous;
        for (const e of errors) log.error({ err: e.message }, 'reload hook failed');
        throw new Error(`reload failed: ${errors.map((e) => e.message).join('; ')}`);
      }
      audit.record({ event: 'reload', outcome: 'allow', reason: 'SIGHUP' });
      log.info('configuration reloaded');
    },
    close() {
      closing ??= (async () => {
        for (const [sig, fn] of signals) process.off(sig, fn);
        const drainMs = opts.drainTimeoutMs ?? 10_000;
        await Promise.all(started.map((app) => new Promise<void>((resolve) => {
          const cut = setTimeout(() => app.server.closeAllConnections(), drainMs);
          app.server.close(() => { clearTimeout(cut); resolve(); });
          app.server.closeIdleConnections();
        })));
        await Promise.all([main.close(), management?.close()]);
        const errors = await lifecycle.runClose();
        for (const e of errors) log.error({ err: e.message }, 'close hook failed');
        log.info('tas stopped');
        await audit.close();
      })();
      return closing;
    },
  };

  if (opts.handleSignals) {
    const onHup = (): void => void daemon.reload().catch(() => undefined);
    const onStop = (): void => void daemon.close().then(() => { process.exitCode ??= 0; });
    signals.push(['SIGHUP', onHup], ['SIGTERM', onStop], ['SIGINT', onStop]);
    for (const [sig, fn] of signals) process.on(sig, fn);
  }
  return daemon;
}
