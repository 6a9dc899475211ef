/**
 * manpage.ts MAIN_JS: print tas(8) in roff, made from the CLI's own `--help` output (the top level
 * and every command and sub-command), so the man page cannot drift from the binary it ships with.
 * Used by packaging/stage.sh: `node --import tsx packaging/manpage.ts dist/src/main.js | gzip`.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const main = process.argv[2];
if (!main) {
  process.stderr.write('usage: manpage.ts path/to/dist/src/main.js\n');
  process.exit(2);
}

function help(args: string[]): string {
  return execFileSync(process.execPath, [main!, ...args, '--help'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '80' } });
}

/** commandsOf lists the sub-commands named in a help text's "Commands:" block. */
function commandsOf(text: string, prefix: string[]): string[][] {
  const out: string[][] = [];
  let inBlock = false;
  for (const line of text.split('\n')) {
    if (/^Commands:/.test(line)) inBlock = true;
    else if (inBlock && /^\S/.test(line)) inBlock = false;
    else if (inBlock) {
      const m = /^\s+tas\s+(.+?)(?:\s{2,}|$)/.exec(line);
      if (!m) continue;
      const words = m[1]!.split(/\s+/).filter((w) => !w.startsWith('<') && !w.startsWith('['));
      if (words.length > prefix.length) out.push(words);
    }
  }
  return out;
}

/** roff escapes text for a roff body line. */
function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l).replace(/-/g, '\\-'))
    .join('\n');
}

const pkg = JSON.parse(readFileSync(join(main, '..', '..', '..', 'package.json'), 'utf8')) as { version: string };
const top = help([]);
const lines: string[] = [
  `.TH TAS 8 "" "tas ${pkg.version}" "System Administration"`,
  '.SH NAME',
  'tas \\- hardened TEE attestation appliance (AMD SEV\\-SNP key release)',
  '.SH SYNOPSIS',
  '.B tas',
  '.I command',
  '[options]',
  '.SH DESCRIPTION',
  'tas verifies AMD SEV\\-SNP attestation reports of confidential VMs against AMD\'s certificate chain',
  'and a signed policy, and releases a key from a key broker wrapped for the VM.',
  'On an installed host it runs as',
  '.B tas.service',
  '(socket activated by',
  '.BR tas.socket ),',
  'configured by',
  '.IR /etc/tas/tas.yaml .',
  '.PP',
  '.nf',
  roff(top.trimEnd()),
  '.fi',
  '.SH COMMANDS',
];
const queue = commandsOf(top, []);
const seen = new Set<string>();
while (queue.length) {
  const cmd = queue.shift()!;
  const name = cmd.join(' ');
  if (seen.has(name)) continue;
  seen.add(name);
  const text = help(cmd);
  lines.push(`.SS "tas ${name}"`, '.nf', roff(text.trimEnd()), '.fi');
  queue.push(...commandsOf(text, cmd));
}
lines.push(
  '.SH FILES',
  '.TP',
  '.I /etc/tas/tas.yaml',
  'Configuration (a conffile: kept on upgrade).',
  '.TP',
  '.IR /etc/tas/api\\-key ", " /etc/tas/management\\-api\\-key',
  'API keys (mode 0600), passed to the service as systemd credentials.',
  '.TP',
  '.IR /etc/tas/tls.crt ", " /etc/tas/tls.key',
  'TLS certificate and key (self\\-signed at first install; replace with yours).',
  '.TP',
  '.I /var/lib/tas',
  'State (embedded store).',
  '.TP',
  '.I /var/cache/tas',
  'AMD certificates and CRLs.',
  '.SH SEE ALSO',
  '.BR systemctl (1),',
  '.BR journalctl (1),',
  '.BR systemd.exec (5)',
  '',
);
process.stdout.write(lines.join('\n'));
