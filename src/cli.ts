/**
 * `tas` command line (yargs). Every command lives with the module it belongs to and is registered
 * here with one import and one entry of COMMANDS. Exit codes: src/cli-kit.ts (README "Exit codes").
 */
import yargs, { type CommandModule } from 'yargs';
import './config/all-settings';
import { CliError, EXIT, reportError } from './cli-kit';
import { VERSION } from './version';
import { serveCommand } from './systemd/serve';
import { configCommand } from './config/cli';
import { keysCommand } from './config/keys';
import { auditCommand } from './audit/cli';
import { policyCommand } from './policy/cli';
import { verifyCommand } from './verify';
import { pcsCommand } from './tdx/cli';
import { kdsCommand } from './kds/cli';
import { certCommand } from './cert/cli';

/** COMMANDS: one entry per top-level command (add yours here). */
export const COMMANDS: ReadonlyArray<CommandModule<object, never>> = [
  serveCommand,
  configCommand,
  keysCommand,
  auditCommand,
  policyCommand,
  verifyCommand,
  kdsCommand,
  pcsCommand,
  certCommand,
] as ReadonlyArray<CommandModule<object, never>>;

/** buildCli returns the parser (tests call parseAsync on it). */
export function buildCli(args: readonly string[]) {
  let y = yargs([...args])
    .scriptName('tas')
    .usage('$0 <command> [options]\n\nA hardened TEE attestation appliance (AMD SEV-SNP, Intel TDX).')
    .version(VERSION)
    .help()
    .alias('h', 'help')
    .strict()
    .demandCommand(1, 'name a command (see --help)')
    .epilog('Exit codes: 0 ok, 1 check failed, 2 usage or configuration error, 3 startup failure.')
    .wrap(Math.min(110, process.stdout.columns || Number(process.env.COLUMNS) || 100))
    .exitProcess(false)
    .fail((msg, err) => {
      // Usage errors (unknown option, missing argument) stop here with exit 2; errors thrown by
      // a command keep their own code.
      if (err) throw err;
      throw new CliError(EXIT.USAGE, `${msg}\nRun 'tas --help' for usage.`);
    });
  for (const c of COMMANDS) y = y.command(c as CommandModule);
  return y;
}

/** runCli parses and runs one command line; resolves once the command's handler has finished. */
export async function runCli(args: readonly string[]): Promise<void> {
  try {
    await buildCli(args).parseAsync();
  } catch (e) {
    process.exitCode = reportError(e);
  }
}
