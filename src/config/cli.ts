/**
 * `tas config check`: loads the configuration exactly as `tas serve` would — the API keys as the
 * service gets them ($CREDENTIALS_DIRECTORY, else the files the unit's LoadCredential= names when
 * readable) — then runs serve's own startup checks up to binding the port (src/daemon/preflight:
 * plugin and its config, TLS files, plain HTTP off loopback, trust directories, writable state and
 * cache directories; the key backend is contacted only with --connect). Prints every setting with
 * its value (secrets masked) and source. Exit 0 when serve would start, 2 when it would refuse
 * (one line per problem, the same lines serve prints).
 */
import { defineCommand, EXIT, group, withFormat } from '../cli-kit';
import { settingByPath } from './registry';
import { ConfigError, loadConfig, serviceCredentialFiles, type Config } from './load';

/** Settings that make tas trust test roots: flagged loudly wherever the configuration is shown. */
export const TEST_ROOT_SETTINGS = ['snp.extra_trust_dir', 'tdx.extra_trust_dir'];

interface CheckArgs {
  config?: string;
  format: string;
  connect: boolean;
}

const check = defineCommand<CheckArgs>({
  command: 'check',
  describe: 'Run the checks `tas serve` makes before it listens, and print the effective value and source of every setting (secrets masked)',
  builder: (y) =>
    withFormat(y)
      .example('$0 config check', 'on an installed host: checks /etc/tas/tas.yaml and the keys the service gets')
      .option('config', { type: 'string', describe: 'Config file (YAML or JSON); default $TAS_CONFIG_FILE, else /etc/tas/tas.yaml when installed' })
      .option('connect', { type: 'boolean', default: false, describe: 'Also open the key broker and ask its backend (KMIP server, HSM) whether it is ready' }) as never,
  run: async (argv) => {
    const json = argv.format === 'json';
    const fail = (problems: readonly string[], warnings: readonly string[] = [], file?: string): number => {
      if (json) process.stdout.write(`${JSON.stringify({ ok: false, file: file ?? null, problems, warnings }, null, 2)}\n`);
      else for (const p of problems) process.stderr.write(`tas: ${p}\n`);
      return EXIT.USAGE;
    };
    let cfg: Config;
    try {
      cfg = loadConfig({ ...(argv.config !== undefined ? { configFile: argv.config } : {}), credentialFiles: serviceCredentialFiles() });
    } catch (e) {
      if (e instanceof ConfigError) return fail(e.problems);
      throw e;
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { preflight } = require('../daemon/preflight') as typeof import('../daemon/preflight');
    const listenFds = Number(process.env.LISTEN_FDS ?? 0) > 0;
    const pre = await preflight(cfg, { connect: argv.connect, inheritedMain: listenFds });
    if (pre.problems.length) return fail(pre.problems, pre.warnings, cfg.file);
    const rows = cfg.effective();
    const testRoots = TEST_ROOT_SETTINGS.filter((p) => settingByPath(p) && cfg.values[p] !== undefined);
    if (json) {
      process.stdout.write(`${JSON.stringify({ ok: true, file: cfg.file ?? null, test_roots: testRoots, warnings: pre.warnings, settings: rows }, null, 2)}\n`);
      return EXIT.OK;
    }
    const show = (v: unknown): string => (v === undefined ? '(unset)' : typeof v === 'string' ? v : JSON.stringify(v));
    const table = rows.map((r) => [r.path, r.env ?? `TAS_OVERRIDE__${r.path.split('.').join('__')}`, show(r.value), r.source + (testRoots.includes(r.path) ? '  <-- TEST ROOTS TRUSTED' : '')]);
    const widths = [0, 1, 2].map((i) => Math.min(48, Math.max(...table.map((t) => t[i]!.length), 8)));
    const out = [`configuration OK${cfg.file ? ` (file ${cfg.file})` : ''}${argv.connect ? '; key broker reachable' : ''}`, ''];
    out.push(['setting', 'environment', 'value', 'source'].map((h, i) => (i < 3 ? h.padEnd(widths[i]!) : h)).join('  '));
    for (const t of table) out.push(t.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join('  '));
    if (testRoots.length) out.push('', `WARNING: ${testRoots.join(', ')} set: certificates chaining to test roots are accepted (labs and tests only)`);
    for (const w of pre.warnings) out.push(`warning: ${w}`);
    process.stdout.write(`${out.join('\n')}\n`);
    return EXIT.OK;
  },
});

export const configCommand = group('config <command>', 'Inspect the configuration', [check as never]);
