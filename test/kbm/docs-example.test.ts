/**
 * The custom plugin example of docs/plugins.md, extracted verbatim, loaded the way the daemon loads
 * plugins from TAS_EXTRA_PLUGIN_DIR, and run through the full KBM contract: the documentation
 * cannot drift from a working plugin.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { discoverPlugins, KBM_HELPERS, loadPlugin } from '../../src/kbm';
import { kbmContract } from './contract';

const DOC = join(__dirname, '..', '..', 'docs', 'plugins.md');

function extractExample(): string {
  const text = readFileSync(DOC, 'utf8');
  const m = /<!-- example:tas_kbm_example\.js -->\n```js\n([\s\S]*?)```\n<!-- end example -->/.exec(text);
  assert.ok(m, 'docs/plugins.md lost its example block');
  return m[1]!;
}

const dir = mkdtempSync(join(tmpdir(), 'tas-kbm-docs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

kbmContract('docs/plugins.md example (tas_kbm_example)', async () => {
  writeFileSync(join(dir, 'tas_kbm_example.js'), extractExample());
  const secrets = { 'demo-key': Buffer.from('documented secret'), 'demo/2': Buffer.from([1, 2, 3, 4, 5]) };
  const cfg = join(dir, 'secrets.json');
  writeFileSync(cfg, JSON.stringify(Object.fromEntries(Object.entries(secrets).map(([k, v]) => [k, v.toString('base64')]))));
  const [candidate] = discoverPlugins('tas_kbm', [dir]);
  assert.equal(candidate?.name, 'tas_kbm_example');
  const plugin = loadPlugin(candidate);
  return { broker: await plugin.open(cfg, { log: pino({ level: 'silent' }), helpers: KBM_HELPERS }), secrets, form: 'aes-gcm' };
});
