/**
 * unitRuntime reads how the shipped systemd unit starts node: the Node flags of its ExecStart
 * (between the node binary and the script) and its Environment= assignments. The benchmark runs
 * the daemon the same way, so that what it measures is what the unit runs; the unit tests check
 * that the settings are there and take effect.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface UnitRuntime {
  readonly nodeFlags: string[];
  readonly env: Record<string, string>;
}

export function unitRuntime(root: string): UnitRuntime {
  const text = readFileSync(join(root, 'systemd', 'tas.service'), 'utf8');
  const exec = /^ExecStart=(.*)$/m.exec(text);
  if (!exec) throw new Error(`${root}/systemd/tas.service has no ExecStart=`);
  const words = exec[1]!.trim().split(/\s+/);
  if (!/\/node$/.test(words[0]!)) throw new Error(`ExecStart does not start node: ${exec[1]}`);
  const script = words.findIndex((w) => w.endsWith('/main.js'));
  if (script < 0) throw new Error(`ExecStart names no main.js: ${exec[1]}`);
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^Environment=(.*)$/gm)) {
    for (const kv of m[1]!.trim().split(/\s+/)) {
      const i = kv.indexOf('=');
      if (i < 1) throw new Error(`Environment=${m[1]}: ${kv} is not K=V`);
      env[kv.slice(0, i)] = kv.slice(i + 1);
    }
  }
  return { nodeFlags: words.slice(1, script), env };
}
