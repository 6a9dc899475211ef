/**
 * tasInProcess runs one `tas` command line in this process with exactly the TAS_* environment
 * given, capturing stdout/stderr and the exit code (much faster than a child process under tsx).
 */
import { buildCli } from '../../src/cli';
import { reportError } from '../../src/cli-kit';

export async function tasInProcess(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const saved = { ...process.env };
  const out: string[] = [];
  const err: string[] = [];
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string | Uint8Array) => (out.push(String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => (err.push(String(s)), true)) as typeof process.stderr.write;
  process.exitCode = undefined;
  for (const k of Object.keys(process.env)) if (k.startsWith('TAS_')) delete process.env[k];
  Object.assign(process.env, env);
  try {
    await buildCli(args).parseAsync();
  } catch (e) {
    process.exitCode = reportError(e);
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { code, out: out.join(''), err: err.join('') };
}
