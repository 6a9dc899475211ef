/**
 * The executable entry of `tas` (bin/tas execs node on the compiled form of this file). The
 * process exit code is set by the command; `tas serve` keeps running until SIGTERM.
 */
import { runCli } from './cli';

void runCli(process.argv.slice(2));
