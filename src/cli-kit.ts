/**
 * What every `tas` command shares: exit codes and the wrapper that turns a command's result or
 * error into one. Separate from src/cli.ts (the registry) so that command modules can import it
 * without an import cycle.
 *
 * Exit codes (README "Exit codes"): 0 ok, 1 a check failed (e.g. `tas audit verify` found
 * tampering), 2 usage or configuration error, 3 startup failure or internal error.
 */
import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { ConfigError } from './config/load';

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
    process.stderr.write(`tas: ${e.message}\n`);
    return EXIT.USAGE;
  }
  if (e instanceof CliError) {
    process.stderr.write(`tas: ${e.message}\n`);
    return e.exitCode;
  }
  process.stderr.write(`tas: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return EXIT.STARTUP;
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
      try {
        const code = await spec.run(argv);
        process.exitCode = code ?? EXIT.OK;
      } catch (e) {
        process.exitCode = reportError(e);
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
