/**
 * `tas config check`: loads the configuration exactly as `tas serve` would and prints every
 * setting with its value (secrets masked) and where it came from. Exit 0 when valid, 2 when not.
 */
import { defineCommand, EXIT, group } from '../cli-kit';
import { settingByPath } from './registry';
import { loadConfig } from './load';

/** Settings that make tas trust test roots: flagged loudly wherever the configuration is shown. */
export const TEST_ROOT_SETTINGS = ['snp.extra_trust_dir', 'tdx.extra_trust_dir'];

interface CheckArgs {
  config?: string;
  json?: boolean;
}

const check = defineCommand<CheckArgs>({
  command: 'check',
  describe: 'Validate the configuration and print the effective value and source of every setting (secrets masked)',
  builder: (y) =>
    y
      .option('config', { type: 'string', describe: 'Config file (YAML or JSON); default $TAS_CONFIG_FILE' })
      .option('json', { type: 'boolean', default: false, describe: 'Print JSON instead of a table' }) as never,
  run: (argv) => {
    const cfg = loadConfig(argv.config !== undefined ? { configFile: argv.config } : {});
    const rows = cfg.effective();
    const testRoots = TEST_ROOT_SETTINGS.filter((p) => settingByPath(p) && cfg.values[p] !== undefined);
    if (argv.json) {
      process.stdout.write(`${JSON.stringify({ ok: true, file: cfg.file ?? null, test_roots: testRoots, settings: rows }, null, 2)}\n`);
      return EXIT.OK;
    }
    const show = (v: unknown): string => (v === undefined ? '(unset)' : typeof v === 'string' ? v : JSON.stringify(v));
    const table = rows.map((r) => [r.path, r.env ?? `TAS_OVERRIDE__${r.path.split('.').join('__')}`, show(r.value), r.source + (testRoots.includes(r.path) ? '  <-- TEST ROOTS TRUSTED' : '')]);
    const widths = [0, 1, 2].map((i) => Math.min(48, Math.max(...table.map((t) => t[i]!.length), 8)));
    const out = [`configuration OK${cfg.file ? ` (file ${cfg.file})` : ''}`, ''];
    out.push(['setting', 'environment', 'value', 'source'].map((h, i) => (i < 3 ? h.padEnd(widths[i]!) : h)).join('  '));
    for (const t of table) out.push(t.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join('  '));
    if (testRoots.length) out.push('', `WARNING: ${testRoots.join(', ')} set: certificates chaining to test roots are accepted (labs and tests only)`);
    process.stdout.write(`${out.join('\n')}\n`);
    return EXIT.OK;
  },
});

export const configCommand = group('config <command>', 'Inspect the configuration', [check as never]);
