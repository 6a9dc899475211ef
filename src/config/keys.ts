/**
 * API keys: generation for `tas keys generate` and for `tas serve --dev`. A key is 48 random bytes
 * in base64url: 64 characters, the minimum length PROTOCOL.md asks for, with 384 bits of entropy.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants as fsc, existsSync, fchmodSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CliError, defineCommand, EXIT, group, withFormat } from '../cli-kit';

/** newKey returns one fresh API key. */
export function newKey(): string {
  return randomBytes(48).toString('base64url');
}

/** Default directory of the installed product's keys (PROTOCOL.md §5 fixed paths). */
export const DEFAULT_KEY_DIR = '/etc/tas';
export const CLIENT_KEY_FILE = 'api-key';
export const MANAGEMENT_KEY_FILE = 'management-api-key';

/**
 * writeSecretFile writes `text` to `path` with mode 0600. The bytes go to a new file with a random
 * name in the target directory, created with O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600 (then fchmod
 * 0600 whatever the umask), written and fsynced; only then does it take the name `path`: by rename
 * when `overwrite` (atomic, and a symlink or a loose mode at `path` is replaced, not followed or
 * kept), by link otherwise (which fails if `path` exists, as O_EXCL would). So no reader ever sees
 * a partial key, nothing planted at a predictable temporary path is followed, and the result is
 * always a regular 0600 file.
 */
export function writeSecretFile(path: string, text: string | Buffer, overwrite: boolean): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(12).toString('hex')}.tmp`);
  const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | (fsc.O_NOFOLLOW ?? 0), 0o600);
  try {
    try {
      fchmodSync(fd, 0o600);
      writeSync(fd, typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (overwrite) renameSync(tmp, path);
    else linkSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/**
 * keepPrivate sets an existing secret file back to 0600 when group or others may read or write it
 * (a file copied in by hand, an older tas). Returns the mode it had when it changed it.
 */
export function keepPrivate(path: string): number | undefined {
  const mode = lstatSync(path).mode & 0o777;
  if ((mode & 0o077) === 0) return undefined;
  chmodSync(path, 0o600);
  return mode;
}

interface GenerateArgs {
  format: string;
  dir: string;
  force: boolean;
  rotate: boolean;
}

const generate = defineCommand<GenerateArgs>({
  command: 'generate',
  describe: 'Write new client and management API keys to files (mode 0600) for TAS_API_KEY_FILE / TAS_MANAGEMENT_API_KEY_FILE',
  builder: (y) =>
    withFormat(y)
      .example('$0 keys generate --rotate', 'adds a new key in front of the ones in /etc/tas (both valid until the old line is removed)')
      .option('dir', { type: 'string', default: DEFAULT_KEY_DIR, describe: 'Directory of the key files' })
      .option('force', { type: 'boolean', default: false, describe: 'Replace existing key files' })
      .option('rotate', { type: 'boolean', default: false, describe: 'Add a new key in front of the existing ones (both stay valid until you remove the old line and send SIGHUP)' }) as never,
  run: (argv) => {
    if (argv.force && argv.rotate) throw new CliError(EXIT.USAGE, '--force and --rotate exclude each other');
    const dir = resolve(argv.dir);
    const files = [join(dir, CLIENT_KEY_FILE), join(dir, MANAGEMENT_KEY_FILE)];
    if (!argv.force && !argv.rotate) {
      const existing = files.filter((f) => existsSync(f));
      if (existing.length) throw new CliError(EXIT.USAGE, `refusing to overwrite ${existing.join(', ')} (use --force to replace, --rotate to add a key)`);
    }
    for (const f of files) {
      // Read through the link check: --rotate keeps the old keys, never a symlink's target.
      if (argv.rotate && existsSync(f) && lstatSync(f).isSymbolicLink()) throw new CliError(EXIT.USAGE, `${f} is a symbolic link: refusing to rotate through it`);
      let text = `${newKey()}\n`;
      if (argv.rotate && existsSync(f)) text += readFileSync(f, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => `${l}\n`).join('');
      writeSecretFile(f, text, argv.force || argv.rotate);
    }
    if (argv.format === 'json') {
      process.stdout.write(`${JSON.stringify({ ok: true, files: { TAS_API_KEY_FILE: files[0], TAS_MANAGEMENT_API_KEY_FILE: files[1] } }, null, 2)}\n`);
      return EXIT.OK;
    }
    process.stdout.write(
      [
        `wrote ${files[0]} and ${files[1]} (mode 0600; the keys are not printed)`,
        'use them with:',
        `  TAS_API_KEY_FILE=${files[0]}`,
        `  TAS_MANAGEMENT_API_KEY_FILE=${files[1]}`,
        '',
      ].join('\n'),
    );
    return EXIT.OK;
  },
});

export const keysCommand = group('keys <command>', 'Manage API keys', [generate as never]);

/** Development keys of `tas serve --dev` (never used by an installed service). */
export const DEV_KEYS_FILE = '.tas/dev-keys.env';
/** Secrets of the mock key broker under `tas serve --dev` when TAS_KBM_CONFIG_FILE is unset. */
export const DEV_KBM_FILE = '.tas/dev-kbm-mock.yaml';

/**
 * devKeys reads `file` (an env file: TAS_API_KEY=..., TAS_MANAGEMENT_API_KEY=...) or creates it
 * with fresh keys, mode 0600. Returns the keys and whether they were created now.
 */
export function devKeys(file: string): { client: string; management: string; created: boolean } {
  if (existsSync(file)) {
    keepPrivate(file);
    const vars = Object.fromEntries(
      readFileSync(file, 'utf8')
        .split('\n')
        .map((l) => /^\s*([A-Z_]+)=(.*)$/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1], m[2]!.trim()]),
    );
    if (vars.TAS_API_KEY && vars.TAS_MANAGEMENT_API_KEY) return { client: vars.TAS_API_KEY, management: vars.TAS_MANAGEMENT_API_KEY, created: false };
    throw new CliError(EXIT.USAGE, `${file} does not hold TAS_API_KEY and TAS_MANAGEMENT_API_KEY; delete it to have new development keys generated`);
  }
  const client = newKey();
  const management = newKey();
  writeSecretFile(file, `# development keys of \`tas serve --dev\`; never use them in production\nTAS_API_KEY=${client}\nTAS_MANAGEMENT_API_KEY=${management}\n`, false);
  return { client, management, created: true };
}
