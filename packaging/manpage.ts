/**
 * manpage.ts MAIN_JS: print tas(8) in roff, made from the CLI's own `--help` output (the top level
 * and every command and sub-command), so the man page cannot drift from the binary it ships with.
 * Used by packaging/stage.sh: `node --import tsx packaging/manpage.ts dist/src/main.js | gzip`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const main = process.argv[2];
if (!main) {
  process.stderr.write('usage: manpage.ts path/to/dist/src/main.js\n');
  process.exit(2);
}

/**
 * help prints `tas ... --help` of the CLI next to main (dist/src/cli.js, or src/cli.ts under tsx)
 * in this process, 72 columns wide so that the indented text stays within 80 columns on a terminal.
 */
process.env.COLUMNS = '72';
const cliModule = join(dirname(resolve(main)), main.endsWith('.ts') ? 'cli.ts' : 'cli.js');
async function help(args: string[]): Promise<string> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { runCli } = require(cliModule) as { runCli: (a: readonly string[]) => Promise<void> };
  const chunks: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((c: string | Uint8Array) => (chunks.push(String(c)), true)) as typeof process.stdout.write;
  try {
    await runCli([...args, '--help']);
  } finally {
    process.stdout.write = write;
  }
  if (process.exitCode) throw new Error(`tas ${args.join(' ')} --help failed`);
  return chunks.join('');
}

/** packageJson: the nearest package.json above main. */
function packageJson(): string {
  let d = dirname(resolve(main!));
  while (!existsSync(join(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  return join(d, 'package.json');
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

const pkg = JSON.parse(readFileSync(packageJson(), 'utf8')) as { version: string };
async function manPage(): Promise<string> {
const top = await help([]);
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
  const text = await help(cmd);
  lines.push(`.SS "tas ${name}"`, '.nf', roff(text.trimEnd()), '.fi');
  queue.push(...commandsOf(text, cmd));
}
lines.push(
  '.SH ENVIRONMENT',
  'Every setting has an environment name',
  '.RB ( TAS_ *),',
  'a YAML path in the configuration file and a default; the full list is in',
  '.IR /usr/share/doc/tas/configuration.md .',
  'Environment values win over the file;',
  '.B TAS_OVERRIDE__a__b=value',
  'sets the nested path a.b above both.',
  '.TP',
  '.B TAS_CONFIG_FILE',
  'Configuration file (YAML or JSON). Default, when it exists:',
  '.IR /etc/tas/tas.yaml .',
  '.TP',
  '.BR TAS_API_KEY ", " TAS_MANAGEMENT_API_KEY',
  'API keys (lists for rotation; each at least 64 characters). Also as',
  '.B _FILE',
  'forms naming a file, or from',
  '.BR $CREDENTIALS_DIRECTORY .',
  'Only',
  '.B tas serve',
  'and',
  '.B tas config check',
  'need them.',
  '.TP',
  '.B CREDENTIALS_DIRECTORY',
  'Set by systemd (LoadCredential=): the API keys are read from it.',
  '.TP',
  '.BR STATE_DIRECTORY ", " CACHE_DIRECTORY',
  'Set by systemd: defaults of the state and certificate cache directories.',
  '.TP',
  '.BR NOTIFY_SOCKET ", " LISTEN_FDS ", " WATCHDOG_USEC',
  'Set by systemd: readiness and status notifications, socket activation, watchdog.',
  '.TP',
  '.B TAS_OVERRIDE__logging__level=debug',
  'More log detail; an unexpected error also prints its stack trace.',
  '.SH EXIT STATUS',
  '.TP',
  '.B 0',
  'Success.',
  '.TP',
  '.B 1',
  'A negative verdict: a report or policy that does not verify, a tampered audit',
  'file, files refused by',
  '.BR "tas kds import" .',
  '.TP',
  '.B 2',
  'Usage or configuration error: one line per problem, naming the setting and',
  'what to do.',
  '.TP',
  '.B 3',
  'Startup or runtime failure: a busy port, a failed self-test, KDS unreachable',
  'during',
  '.BR "tas kds prefetch" ,',
  'an internal error.',
  '.SH EXAMPLES',
  'Check the installed configuration as the service would load it:',
  '.PP',
  '.RS',
  '.B tas config check',
  '.RE',
  '.PP',
  'Prepare certificates for a host without internet, then import them there:',
  '.PP',
  '.RS',
  '.nf',
  '.B tas kds prefetch \\-\\-report vm1.bin',
  '.B tas kds import /media/usb/amd\\-certs',
  '.B tas kds status',
  '.fi',
  '.RE',
  '.PP',
  'Back up the stored policies:',
  '.PP',
  '.RS',
  '.B tas policy export \\-\\-out /root/policies',
  '.RE',
  '.PP',
  'Sign a policy and check it against the trusted keys:',
  '.PP',
  '.RS',
  '.nf',
  '.B tas policy sign web.json \\-\\-key /root/signer.key.pem',
  '.B tas policy verify web.json \\-\\-trust /etc/tas/policy\\-trust',
  '.fi',
  '.RE',
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
  '.TP',
  '.I /usr/share/doc/tas/',
  'Documentation: wire protocol, policies, configuration, operations, plugins,',
  'fleet, audit records, metrics, errors; drop-ins for the unit.',
  '.SH SEE ALSO',
  '.BR systemctl (1),',
  '.BR journalctl (1),',
  '.BR systemd.exec (5)',
  '',
);
return lines.join('\n');
}

void manPage().then((text) => process.stdout.write(text));
