/**
 * `tas serve`: the service process. Order matters for systemd (Type=notify):
 *   1. take inherited sockets (LISTEN_FDS) before anything can spawn a child;
 *   2. load and validate the configuration (exit 2 on problems, naming the setting);
 *   3. run the startup self-test (src/snp selfTest() and src/tdx tdxSelfTest(); exit 3 when either fails);
 *   4. start the daemon (src/daemon startDaemon) and listen;
 *   5. only then READY=1, then WATCHDOG=1 pings and STATUS= lines for degraded dependencies.
 * SIGHUP reloads (RELOADING=1 ... READY=1), SIGTERM/SIGINT drain and stop (STOPPING=1).
 *
 * Contract with the daemon (edge engineer, src/daemon/index.ts): serve passes the logger, audit
 * stream, configuration, load options and inherited sockets, handles the signals itself
 * (handleSignals: false) and calls daemon.reload()/daemon.close().
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { CliError, defineCommand, EXIT, reportError } from '../cli-kit';
import { ConfigError, loadConfig, type Config, type LoadOptions } from '../config';
import { DEV_KBM_FILE, DEV_KEYS_FILE, devKeys, keepPrivate, writeSecretFile } from '../config/keys';
import { applyLogLevel, createLogger, type Logger } from '../log';
import { openAudit, type AuditStream } from '../audit';
import { listenFds, ready, reloading, startWatchdog, status, stopping, type ListenFd } from './index';

interface ServeArgs {
  config?: string;
  host?: string;
  port?: number;
  dev: boolean;
}

/** How often readiness is re-checked for STATUS= updates. */
const STATUS_INTERVAL_MS = 15_000;

export const serveCommand = defineCommand<ServeArgs>({
  command: 'serve',
  describe: 'Run the attestation service (systemd: Type=notify, socket activation supported)',
  builder: (y) =>
    y
      .example('$0 serve --dev --port 5001', 'development: generated keys and a mock key broker, on port 5001')
      .option('config', { type: 'string', describe: 'Config file (YAML or JSON); default $TAS_CONFIG_FILE, else /etc/tas/tas.yaml when installed' })
      .option('host', { type: 'string', describe: 'Listen address (server.host); ignored under socket activation' })
      .option('port', { type: 'number', describe: 'Listen port (server.port); ignored under socket activation' })
      .option('dev', {
        type: 'boolean',
        default: false,
        describe: `Development: without configured keys, generate them into ./${DEV_KEYS_FILE} (mode 0600) and use them`,
      }) as never,
  run: (argv) => serve(argv),
});

/** serve runs until a signal stops it; resolves with the exit code of the startup (0 when serving). */
export async function serve(argv: ServeArgs): Promise<number> {
  const fds = listenFds();
  const load: LoadOptions = {
    ...(argv.config !== undefined ? { configFile: argv.config } : {}),
    cli: { 'server.host': argv.host, 'server.port': argv.port },
  };
  const { config, notes } = argv.dev ? loadDev(load) : { config: loadConfig(load), notes: [] };

  // Every check `tas config check` makes, with the same words, before anything opens or binds.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { preflight } = require('../daemon/preflight') as typeof import('../daemon/preflight');
  const pre = await preflight(config, { inheritedMain: fds.some((f) => f.name !== 'management'), inheritedManagement: fds.some((f) => f.name === 'management') });
  if (pre.problems.length) {
    for (const p of pre.problems) process.stderr.write(`tas: ${p}\n`);
    status(`refusing to start: ${pre.problems[0]}${pre.problems.length > 1 ? ` (and ${pre.problems.length - 1} more)` : ''}`);
    return EXIT.USAGE;
  }

  const log = createLogger(config);
  for (const w of pre.warnings) log.warn(w);
  const audit = openAudit(config);
  for (const n of notes) log.warn(n);
  if (fds.length) log.info({ sockets: fds }, 'socket activation: serving inherited sockets');

  const selftest = await runSelfTest(log);
  if (selftest === 'failed') {
    audit.record({ event: 'startup', outcome: 'error', reason: 'SELFTEST_FAILED' });
    await audit.close();
    return EXIT.STARTUP;
  }

  let daemon: import('../daemon').Daemon;
  try {
    // Loaded here, not at the top: other commands (`tas audit verify`, ...) do not need the server.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { startDaemon } = require('../daemon') as typeof import('../daemon');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { assemble } = require('../daemon/assemble') as typeof import('../daemon/assemble');
    const asm = await assemble(config);
    daemon = await startDaemon({
      config,
      load,
      listenFds: fds,
      log,
      audit,
      handleSignals: false,
      services: asm.services,
      configure: async (ctx: import('../daemon/context').AppContext) => {
        await asm.configure(ctx);
        // Log level follows SIGHUP like keys and certificates do.
        ctx.lifecycle.onReload((cfg: Config) => applyLogLevel(log, cfg));
        ctx.readiness.register('audit', () => ((audit as AuditStream).failures > 0 ? `${(audit as AuditStream).failures} audit records could not be written` : undefined));
      },
    });
  } catch (e) {
    const err = startupFailure(e, config);
    log.error({ err: err.message }, 'startup failed');
    log.debug({ stack: (e as Error).stack }, 'startup failure stack');
    audit.record({ event: 'startup', outcome: 'error', reason: 'STARTUP_FAILED', details: { error: err.message } });
    await audit.close();
    status(`startup failed: ${err.message}`);
    const code = reportError(err) === EXIT.USAGE ? EXIT.USAGE : EXIT.STARTUP;
    // A half-started dependency (a Redis connection, a KMIP socket) must not keep a failed
    // service alive: systemd has to see the exit code. The timer is unref'd, so a clean
    // shutdown exits earlier on its own.
    setTimeout(() => process.exit(code), 2_000).unref();
    return code;
  }

  audit.record({ event: 'startup', outcome: 'allow', reason: 'SERVING', details: { urls: daemon.urls, selftest } });
  // READY only once the startup record was handed to the kernel (the audit writer is asynchronous).
  await audit.whenWritten();
  const base = `serving ${daemon.urls.main}${daemon.urls.management ? `, management ${daemon.urls.management}` : ''}`;
  ready(selftest === 'passed' ? base : `${base}; self-test unavailable`);
  const stopWatchdog = startWatchdog();
  const stopStatus = watchReadiness(daemon, base);

  let stoppingNow = false;
  const stop = (sig: NodeJS.Signals): void => {
    if (stoppingNow) return;
    stoppingNow = true;
    stopping();
    log.info({ signal: sig }, 'stopping: draining in-flight requests');
    stopWatchdog();
    stopStatus();
    process.off('SIGHUP', onHup);
    daemon.close().then(
      () => process.exit(EXIT.OK),
      (e: unknown) => {
        process.stderr.write(`tas: shutdown failed: ${(e as Error).message}\n`);
        process.exit(EXIT.STARTUP);
      },
    );
  };
  const onHup = (): void => {
    reloading();
    log.info('SIGHUP: reloading configuration');
    daemon.reload().then(
      () => ready(`${base}; configuration reloaded`),
      (e: unknown) => {
        // The daemon keeps the running configuration; say so where operators look.
        const msg = e instanceof ConfigError ? e.problems.join('; ') : (e as Error).message;
        log.error({ problems: e instanceof ConfigError ? e.problems : [msg] }, 'reload refused; keeping the running configuration');
        ready(`${base}; reload refused: ${msg}`);
      },
    );
  };
  process.on('SIGHUP', onHup);
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return EXIT.OK;
}

/**
 * startupFailure turns what stopped startup into an error for people: a busy port names the
 * address and suggests --port; a key broker that cannot be opened is a configuration error (2).
 */
function startupFailure(e: unknown, config: Config): Error {
  const err = e as NodeJS.ErrnoException & { kind?: string };
  if (err?.code === 'EADDRINUSE' || err?.code === 'EACCES') {
    const where = err.code === 'EADDRINUSE' ? 'is already in use (another tas, or another service, listens there)' : 'may not be bound by this user (ports below 1024 need privileges)';
    const a = err as { address?: string; port?: number };
    const host = a.address ?? config.get<string>('server.host');
    const port = a.port ?? config.get<number>('server.port');
    const mgmt = config.get<number | undefined>('management.port') === port && config.get<string | undefined>('management.host') !== undefined;
    const setting = mgmt ? 'TAS_MANAGEMENT_PORT (management.port)' : '--port or TAS_SERVER_PORT (server.port)';
    return new CliError(EXIT.STARTUP, `port ${port} on ${host} ${where}: stop the other service, or choose another port with ${setting}`);
  }
  if (err?.name === 'KbmError' && err.kind === 'config') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { kbmProblem } = require('../daemon/preflight') as typeof import('../daemon/preflight');
    return new CliError(EXIT.USAGE, kbmProblem(e, config.get<string>('kbm.plugin')));
  }
  if (err?.name === 'StoreOpenError') return new CliError(EXIT.USAGE, `TAS_STORE=${config.get<string>('store.backend')}: ${err.message}`);
  if (err?.name === 'StartupError') return new CliError(EXIT.STARTUP, err.message);
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * loadDev loads the configuration for `tas serve --dev`: when the only problem is missing API
 * keys, development keys are used (created once in ./.tas/dev-keys.env, mode 0600); when the mock
 * key broker has no config file, a development one with one random secret is created next to
 * them. The keys are never logged; the notes name the files.
 */
function loadDev(load: LoadOptions): { config: Config; notes: string[] } {
  const notes: string[] = [];
  const env = { ...process.env };
  load.env = env;
  let config: Config;
  try {
    config = loadConfig(load);
  } catch (e) {
    const keyPaths = ['auth.client_keys', 'auth.management_keys'];
    if (!(e instanceof ConfigError && e.missing.length > 0 && e.missing.every((p) => keyPaths.includes(p)))) throw e;
    const file = resolve(DEV_KEYS_FILE);
    const keys = devKeys(file);
    if (e.missing.includes('auth.client_keys')) env.TAS_API_KEY = keys.client;
    if (e.missing.includes('auth.management_keys')) env.TAS_MANAGEMENT_API_KEY = keys.management;
    config = loadConfig(load);
    notes.push(`development keys ${keys.created ? 'generated into' : 'read from'} ${file} (TAS_API_KEY, TAS_MANAGEMENT_API_KEY)`);
  }
  if (config.get<string>('kbm.plugin') === 'tas_kbm_mock' && config.get<string | undefined>('kbm.config_file') === undefined) {
    const file = resolve(DEV_KBM_FILE);
    if (existsSync(file)) keepPrivate(file);
    else {
      writeSecretFile(file, `# development secrets of \`tas serve --dev\` (tas_kbm_mock); never use them in production\nsecrets:\n  dev-key-1: { value_hex: "${randomBytes(32).toString('hex')}" }\n`, false);
    }
    env.TAS_KBM_CONFIG_FILE = file;
    config = loadConfig(load);
    notes.push(`development key broker: tas_kbm_mock with secrets from ${file}`);
  }
  return { config, notes };
}

/**
 * runSelfTest calls the startup self-test of src/snp (verify one genuine AMD report against the
 * pinned roots) when that module provides it. Looked up at run time so that serve works while
 * the module is being built; its absence is logged and shown in STATUS=.
 */
async function runSelfTest(log: Logger): Promise<'passed' | 'failed' | 'unavailable'> {
  let fn: (() => unknown) | undefined;
  for (const mod of ['../snp', '../snp/selftest']) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const m = require(mod) as { selfTest?: () => unknown };
      if (typeof m.selfTest === 'function') {
        fn = m.selfTest;
        break;
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') {
        log.error({ err: (e as Error).message }, 'self-test module failed to load');
        return 'failed';
      }
    }
  }
  if (!fn) {
    log.warn('startup self-test unavailable (src/snp selfTest() not found)');
    return 'unavailable';
  }
  try {
    const r = await fn();
    if (r === false) throw new Error('selfTest() returned false');
    // Self-tests report {ok, checks}: a failed check must stop the start, not only `false`.
    const failedChecks = (x: unknown): string | undefined => {
      const o = x as { ok?: unknown; checks?: Array<{ name: string; ok: boolean; detail: string }> } | null;
      if (!o || typeof o !== 'object' || o.ok !== false) return undefined;
      return (o.checks ?? []).filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`).join('; ') || 'failed';
    };
    const snpFail = failedChecks(r);
    if (snpFail) throw new Error(`SEV-SNP self-test: ${snpFail}`);
    // Intel TDX: the pinned root and one genuine quote with its collateral (src/tdx/selftest.ts).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { tdxSelfTest } = require('../tdx/selftest') as typeof import('../tdx/selftest');
    const tdxFail = failedChecks(await tdxSelfTest());
    if (tdxFail) throw new Error(`Intel TDX self-test: ${tdxFail}`);
    log.info('startup self-test passed');
    return 'passed';
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'startup self-test failed: refusing to start');
    return 'failed';
  }
}

/** watchReadiness sends STATUS= when the set of failed dependencies changes. */
function watchReadiness(daemon: { ctx: { readiness: { check(): Promise<{ ready: boolean; failed: Record<string, string> }> } } }, base: string): () => void {
  let last = '';
  const tick = (): void => {
    daemon.ctx.readiness.check().then(
      (r) => {
        const text = r.ready ? base : `${base}; degraded: ${Object.entries(r.failed).map(([k, v]) => `${k}: ${v}`).join(', ')}`;
        if (text !== last) {
          last = text;
          status(text);
        }
      },
      () => undefined,
    );
  };
  tick();
  const timer = setInterval(tick, STATUS_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}

export type { ListenFd };
