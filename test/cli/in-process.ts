/**
 * runTas runs one `tas` command line in this process (yargs, the real command handlers) and
 * captures what it writes, so that CLI tests do not pay a node start-up per case. `tas serve` is
 * tested in child processes instead (signals, sockets).
 */
import { runCli } from '../../src/cli';

export interface TasResult {
  code: number;
  out: string;
  err: string;
}

export async function runTas(...args: string[]): Promise<TasResult> {
  const out: string[] = [];
  const err: string[] = [];
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  const saved = process.exitCode;
  process.exitCode = undefined;
  process.stdout.write = ((chunk: string | Uint8Array) => (out.push(String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => (err.push(String(chunk)), true)) as typeof process.stderr.write;
  let code: number;
  try {
    await runCli(args);
    code = Number(process.exitCode ?? 0);
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
    process.exitCode = saved;
  }
  return { code, out: out.join(''), err: err.join('') };
}
