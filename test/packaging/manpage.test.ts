/**
 * tas(8) and `--help`: the man page (made from the CLI's own help by packaging/manpage.ts) has
 * the sections operators look for and fits 80 columns when rendered; every command's --help shows
 * an example; output selection is `--format json|text` (with `--json` as an alias) wherever a
 * command prints results.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTas } from '../cli/in-process';

const ROOT = join(__dirname, '..', '..');

/** Leaf commands that print nothing to select a format for, and why. */
const NO_FORMAT: Record<string, string> = {
  serve: 'runs the service; logs are JSON lines already',
};

/** leaves walks `tas --help` and every sub-command's help: the commands that take no sub-command. */
async function leaves(prefix: string[] = []): Promise<Array<{ cmd: string[]; help: string }>> {
  const h = await runTas(...prefix, '--help');
  assert.equal(h.code, 0, `${prefix.join(' ')} --help: ${h.err}`);
  const subs: string[][] = [];
  let inBlock = false;
  for (const line of h.out.split('\n')) {
    if (/^Commands:/.test(line)) inBlock = true;
    else if (inBlock && /^\S/.test(line)) inBlock = false;
    else if (inBlock) {
      const m = /^\s+tas\s+(.+?)(?:\s{2,}|$)/.exec(line);
      if (!m) continue;
      const words = m[1]!.split(/\s+/).filter((w) => !w.startsWith('<') && !w.startsWith('['));
      if (words.length > prefix.length) subs.push(words);
    }
  }
  if (!subs.length) return [{ cmd: prefix, help: h.out }];
  const out: Array<{ cmd: string[]; help: string }> = [];
  for (const s of subs) out.push(...(await leaves(s)));
  return out;
}

describe('man page and --help', function () {
  this.timeout(120_000);

  it('every command shows an example in --help; results come as --format json|text (--json alias)', async () => {
    const all = await leaves();
    assert.ok(all.length >= 12, all.map((l) => l.cmd.join(' ')).join(', '));
    for (const { cmd, help } of all) {
      const name = cmd.join(' ');
      assert.match(help, /^Examples:\n\s+tas /m, `tas ${name} --help shows no example`);
      if (NO_FORMAT[name] === undefined) assert.match(help, /--format\s.*\[choices: "(text", "json|json", "text)"\]/, `tas ${name}: --format json|text`);
    }
    const k = await runTas('kds', 'status', '--json', '--help');
    assert.match(k.out, /--json\s+Same as --format json/);
  });

  it('tas(8) has ENVIRONMENT, FILES, EXIT STATUS and EXAMPLES and fits 80 columns', () => {
    const roff = execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'packaging/manpage.ts'), join(ROOT, 'src/main.ts')], { encoding: 'utf8', cwd: ROOT });
    for (const s of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'ENVIRONMENT', 'EXIT STATUS', 'EXAMPLES', 'FILES', 'SEE ALSO']) {
      assert.match(roff, new RegExp(`^\\.SH "?${s}"?$`, 'm'), `section ${s}`);
    }
    const dir = mkdtempSync(join(tmpdir(), 'tas-man-'));
    try {
      writeFileSync(join(dir, 'tas.8'), roff);
      // -P-cbou: plain text (no overstrike for bold or underline, no SGR), as columns on a terminal.
      const text = execFileSync('groff', ['-man', '-Tutf8', '-rLL=80n', '-P-cbou', join(dir, 'tas.8')], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C.UTF-8' } });
      const long = text.split('\n').filter((l) => [...l].filter((ch) => ch >= ' ').length > 80);
      assert.deepEqual(long, [], 'lines wider than 80 columns');
      assert.match(text, /EXIT STATUS[\s\S]*\b3\b\s+Startup or runtime failure/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
