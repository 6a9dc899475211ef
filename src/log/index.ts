/**
 * Loggers: pino JSON lines, one per event, ISO time and level labels, no pretty printing (journald
 * and log shippers store the lines as they are). Output goes to stdout unless `logging.file` is
 * set; a file is appended to and reopened on SIGUSR1 so that logrotate can rename it first.
 *
 * Secrets never reach a line: the redaction paths below cover API-key headers, nonces, wrapping
 * keys, evidence and anything called secret/password/key material, wherever callers put them, and
 * the userinfo of every URL is masked.
 */
import pino, { type DestinationStream, type Logger } from 'pino';
import type { Config } from '../config';
import { maskUrlsDeep, maskUrlUserinfo } from '../config/mask';

export type { Logger } from 'pino';

/** Field names that must never be logged, at any of the nesting levels listed in REDACT_PATHS. */
const SECRET_FIELDS = [
  'x-api-key',
  'x-management-api-key',
  'authorization',
  'cookie',
  'nonce',
  'wrapping-key',
  'wrapping_key',
  'wrappingKey',
  'tee-evidence',
  'tee_evidence',
  'teeEvidence',
  'secret',
  'secret_key',
  'secretKey',
  'password',
  'apiKey',
  'api_key',
  'client_keys',
  'management_keys',
  'key_material',
  'pin',
];

/** REDACT_PATHS: every secret field at top level and up to three levels down (req.headers.x, req.body.x, ...). */
export const REDACT_PATHS: readonly string[] = SECRET_FIELDS.flatMap((f) => {
  const ident = /^[A-Za-z_$][\w$]*$/.test(f);
  const member = ident ? `.${f}` : `["${f}"]`;
  return [ident ? f : member, `*${member}`, `*.*${member}`, `*.*.*${member}`];
});

/** LogOptions lets tests and the CLI pick another destination. */
export interface LogOptions {
  /** Write here instead of stdout / logging.file (tests). */
  destination?: DestinationStream;
  /** Install the SIGUSR1 reopen handler (default true when logging.file is set). */
  reopenOnSignal?: boolean;
}

/** levelOf reads the configured level (the loader already mapped Python names to pino's). */
function levelOf(cfg: Config): string {
  return cfg.get<string>('logging.level') ?? 'info';
}

/** createLogger builds the process logger from the configuration. */
export function createLogger(cfg: Config, opts: LogOptions = {}): Logger {
  const file = cfg.get<string | undefined>('logging.file');
  let dest: DestinationStream;
  if (opts.destination) dest = opts.destination;
  else if (file !== undefined) {
    // sync: each line is one write(2) with O_APPEND, so a crash loses nothing already logged and
    // lines of concurrent writers never interleave.
    const boom = pino.destination({ dest: file, append: true, sync: true, mkdir: true });
    if (opts.reopenOnSignal !== false) onReopen(() => boom.reopen());
    dest = boom;
  } else dest = pino.destination({ fd: 1, sync: true });
  return pino(
    {
      level: levelOf(cfg),
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // URLs with credentials (TAS_REDIS_URL, TAS_KDS_PROXY, an error quoting one) lose their
      // userinfo in every field and in the message (src/config/mask.ts).
      formatters: { level: (label) => ({ level: label }), log: (obj) => maskUrlsDeep(obj) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((a) => (typeof a === 'string' ? maskUrlUserinfo(a) : a)) as Parameters<typeof method>);
        },
      },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    },
    dest,
  );
}

/** applyLogLevel sets the level of a logger from a (reloaded) configuration. */
export function applyLogLevel(log: Logger, cfg: Config): void {
  log.level = levelOf(cfg);
}

const reopeners: Array<() => void> = [];
let signalInstalled = false;

/**
 * onReopen registers a function run on SIGUSR1 (log and audit files are reopened after logrotate
 * renamed them). One process-wide handler, so that the default SIGUSR1 action (terminate) is
 * replaced only when something needs reopening.
 */
export function onReopen(fn: () => void): void {
  reopeners.push(fn);
  if (signalInstalled) return;
  signalInstalled = true;
  process.on('SIGUSR1', () => {
    for (const r of reopeners) {
      try {
        r();
      } catch (e) {
        process.stderr.write(`tas: reopen after SIGUSR1 failed: ${(e as Error).message}\n`);
      }
    }
  });
}

type LevelMethod = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
const LEVEL_METHODS: readonly LevelMethod[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

/**
 * lazyChild is the per-request logger: it behaves as `parent.child(bindings)` but builds that
 * child only when a line at an enabled level is actually written. Most requests log nothing, and
 * building a pino child costs a bindings pass through every compiled redaction path; with the
 * lazy form a request costs one small object, and at most one real child logger.
 */
export function lazyChild(parent: Logger, bindings: Record<string, unknown>): Logger {
  return new LazyChild(parent, bindings) as unknown as Logger;
}

/** LazyChild: one small object per request; the methods live on the prototype (no closures per request). */
class LazyChild {
  real: Logger | undefined;
  constructor(
    readonly parent: Logger,
    private readonly bindingsOf: Record<string, unknown>,
  ) {}
  get_(): Logger {
    return (this.real ??= this.parent.child(this.bindingsOf));
  }
  child(b: Record<string, unknown>, o?: Record<string, unknown>): Logger {
    return this.get_().child(b, o);
  }
  isLevelEnabled(l: string): boolean {
    return (this.real ?? this.parent).isLevelEnabled(l);
  }
  bindings(): Record<string, unknown> {
    return this.get_().bindings();
  }
  setBindings(b: Record<string, unknown>): void {
    this.get_().setBindings(b);
  }
  flush(cb?: (err?: Error) => void): void {
    (this.real ?? this.parent).flush(cb);
  }
  silent(): void {}
  get level(): string {
    return (this.real ?? this.parent).level;
  }
  set level(v: string) {
    this.get_().level = v;
  }
}
for (const m of LEVEL_METHODS) {
  Object.defineProperty(LazyChild.prototype, m, {
    value: function logAt(this: LazyChild, ...args: unknown[]): void {
      const target = this.real ?? this.parent;
      // The parent's level is read at call time: a SIGHUP level change applies to open requests too.
      if (!target.isLevelEnabled(m)) return;
      (this.get_()[m] as (...a: unknown[]) => void)(...args);
    },
    writable: true,
    configurable: true,
  });
}
