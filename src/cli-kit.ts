/**
 * What every `tas` command shares: exit codes and the wrapper that turns a command's result or
 * error into one. Separate from src/cli.ts (the registry) so that command modules can import it
 * without an import cycle.
 *
 * Exit codes (README "Exit codes"): 0 ok, 1 a check failed (e.g. `tas audit verify` found
 * tampering), 2 usage or configuration error, 3 startup failure or internal error.
 */
import { chownSync, chmodSync, existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { ConfigError, getInstalledConfigFile, loadConfig, type Config } from './config/load';
import { openStore, type Store } from './store';

export const EXIT = { OK: 0, CHECK_FAILED: 1, USAGE: 2, STARTUP: 3 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** CliError stops a command with a message on stderr and an exit code. */
export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** reportError prints an error the way every command does and returns its exit code. */
export function reportError(e: unknown): ExitCode {
  if (e instanceof ConfigError) {
    // One line per problem, each naming the setting: greppable, and readable in the journal.
    for (const p of e.problems) process.stderr.write(`tas: ${p}\n`);
    return EXIT.USAGE;
  }
  if (e instanceof CliError) {
    process.stderr.write(`tas: ${e.message}\n`);
    return e.exitCode;
  }
  // Anything else is unexpected: one line for people, the stack only at debug level.
  const err = e instanceof Error ? e : new Error(String(e));
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOTDIR') {
    // A file named on the command line (or in the configuration) that cannot be read.
    process.stderr.write(`tas: ${err.message}\n`);
    return EXIT.USAGE;
  }
  process.stderr.write(`tas: ${err.message}\n`);
  if (debugWanted()) process.stderr.write(`${err.stack ?? ''}\n`);
  else process.stderr.write('tas: (internal error; set TAS_OVERRIDE__logging__level=debug for the stack trace)\n');
  return EXIT.STARTUP;
}

/** debugWanted: the stack trace of an unexpected error is shown at log level debug or trace. */
function debugWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(debug|trace)$/i.test(env.TAS_OVERRIDE__logging__level ?? '');
}

export interface CommandSpec<U> {
  command: string | readonly string[];
  describe: string;
  builder?: (y: Argv) => Argv<U>;
  /** run returns the exit code (undefined = 0), or throws (CliError, ConfigError, anything = 3). */
  run: (argv: ArgumentsCamelCase<U>) => Promise<number | void> | number | void;
}

/** defineCommand makes a yargs command module whose result sets the process exit code. */
export function defineCommand<U>(spec: CommandSpec<U>): CommandModule<object, U> {
  return {
    command: spec.command,
    describe: spec.describe,
    builder: (spec.builder ?? ((y: Argv) => y)) as CommandModule<object, U>['builder'],
    handler: async (argv) => {
      // A long job (a KDS prefetch waiting out a Retry-After) may, at times, have nothing but
      // unref'd timers pending: node would then end the process mid-job with exit code 0. This
      // ref'd timer keeps it alive until the command has finished and set its exit code.
      const keepAlive = setInterval(() => undefined, 60_000);
      try {
        const code = await spec.run(argv);
        process.exitCode = code ?? EXIT.OK;
      } catch (e) {
        process.exitCode = reportError(e);
      } finally {
        clearInterval(keepAlive);
      }
    },
  };
}

/** group makes a parent command (`tas config ...`) out of sub-commands. */
export function group(command: string, describe: string, subs: ReadonlyArray<CommandModule<object, never>>): CommandModule {
  return {
    command,
    describe,
    builder: (y: Argv) => {
      let g = y;
      for (const s of subs) g = g.command(s as CommandModule);
      return g.demandCommand(1, `${command.split(' ')[0]}: name a sub-command (see --help)`);
    },
    handler: () => undefined,
  };
}

/**
 * toolConfig loads the configuration for a command that does not serve (kds, pcs, policy,
 * audit, verify): the same sources as `tas serve` (including /etc/tas/tas.yaml on an installed
 * host), but the API keys are not required (PROTOCOL.md §5 "CLI on an installed host").
 */
export function toolConfig(configFile: string | undefined): Config {
  return loadConfig({ ...(configFile !== undefined ? { configFile } : {}), keysOptional: true });
}

/** The system user of tas.service (User=tas in the unit, created by sysusers.d/tas.conf). */
export const SERVICE_USER = 'tas';

/** serviceAccount returns the uid and gid of the service user, or undefined when it does not exist. */
export function serviceAccount(passwd = '/etc/passwd'): { uid: number; gid: number } | undefined {
  let text: string;
  try {
    text = readFileSync(passwd, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === SERVICE_USER && f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!)) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

/**
 * handOverToService prepares a command that writes into the service's state or cache directory
 * (`tas kds import|prefetch`, `tas policy import`). Run as root on an installed host, what it
 * writes must belong to the service user with the service's modes (UMask=0077: directories 0700,
 * files 0600), or the service (User=tas) could not read or replace it. Call before writing; call
 * the returned function when done (also after a failure). Elsewhere (not root, a source checkout,
 * no service user) it does nothing. Directories that existed before keep their owner; files and
 * directories below them that root owns are handed over.
 */
export function handOverToService(cfg: Config, opts: { account?: { uid: number; gid: number } | undefined; euid?: number } = {}): () => void {
  const euid = opts.euid ?? process.geteuid?.() ?? -1;
  const account = 'account' in opts ? opts.account : serviceAccount();
  if (euid !== 0 || account === undefined || getInstalledConfigFile() === undefined) return () => undefined;
  if (cfg.get<string>('store.backend') !== 'embedded') return () => undefined;
  const roots = [cfg.get<string>('store.state_dir'), cfg.get<string>('kds.cache_dir')];
  const existed = new Map(roots.map((r) => [r, existsSync(r)]));
  const previousUmask = process.umask(0o077);
  return () => {
    process.umask(previousUmask);
    for (const r of roots) {
      if (!existsSync(r)) continue;
      give(r, existed.get(r) === false, account);
    }
  };
}

/** ServiceStore is the configured store opened by a command, handed over to the service when closed. */
export interface ServiceStore {
  readonly store: Store;
  /** close runs `before` (e.g. closing a fetcher), closes the store and hands what was written over (also after a failure). */
  close(before?: () => Promise<void>): Promise<void>;
}

/**
 * openServiceStore opens the configured store (TAS_STORE) for a command that writes the service's
 * state (`tas kds|pcs|policy ...`), with handOverToService around it; warnings go to stderr.
 */
export function openServiceStore(cfg: Config, log: Logger = pino({ level: 'warn' }, pino.destination(2))): ServiceStore {
  const handOver = handOverToService(cfg);
  let store: Store;
  try {
    store = openStore(cfg, log);
  } catch (e) {
    handOver();
    throw e;
  }
  return {
    store,
    close: async (before) => {
      try {
        await before?.();
        await store.close();
      } finally {
        handOver();
      }
    },
  };
}

function give(path: string, self: boolean, to: { uid: number; gid: number }): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return;
  if (self && st.uid === 0) {
    chownSync(path, to.uid, to.gid);
    chmodSync(path, st.isDirectory() ? 0o700 : 0o600);
  }
  if (st.isDirectory()) for (const n of readdirSync(path)) give(join(path, n), true, to);
}

/**
 * filesIn expands command-line paths: a file stands for itself, a directory for its regular files
 * whose names `keep` accepts, sorted; a missing path is a usage error (`what` names the option).
 */
export function filesIn(paths: readonly string[], keep: (name: string) => boolean = () => true, what?: string): string[] {
  const out: string[] = [];
  for (const p of paths) {
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) throw new CliError(EXIT.USAGE, `${what === undefined ? '' : `${what} `}${p}: no such file or directory`);
    if (st.isDirectory()) out.push(...readdirSync(p).sort().filter(keep).map((f) => join(p, f)).filter((f) => statSync(f).isFile()));
    else out.push(p);
  }
  return out;
}

/** FORMATS: every command's output selection (`--format json|text`; `--json` is an alias). */
export const FORMATS = ['text', 'json'] as const;
export type Format = (typeof FORMATS)[number];

/** withFormat adds `--format text|json` (and the `--json` alias) to a command. */
export function withFormat<T>(y: Argv<T>): Argv<T & { format: Format; json?: boolean }> {
  return y
    .option('format', { choices: FORMATS as unknown as string[], default: 'text', describe: 'Output format' })
    .option('json', { type: 'boolean', describe: 'Same as --format json' })
    .middleware((argv) => {
      if (argv.json === true) (argv as { format: string }).format = 'json';
    }) as never;
}
