/**
 * src/kbm/settings.ts: the PROTOCOL.md §5 names, defaults and checks of the key broker settings.
 */
import assert from 'node:assert/strict';
import { settingByEnv, settingByPath } from '../../src/config';
import '../../src/kbm/settings';

describe('kbm settings', () => {
  it('registers the PROTOCOL.md §5 names and defaults', () => {
    const rows: Array<[string, string, unknown]> = [
      ['TAS_KBM_PLUGIN', 'kbm.plugin', 'tas_kbm_mock'],
      ['TAS_KBM_CONFIG_FILE', 'kbm.config_file', undefined],
      ['TAS_PLUGIN_PREFIX', 'kbm.prefix', 'tas_kbm'],
      ['TAS_EXTRA_PLUGIN_DIR', 'kbm.extra_dir', undefined],
    ];
    for (const [env, path, def] of rows) {
      assert.equal(settingByEnv(env)?.path, path);
      assert.equal(settingByPath(path)?.default, def);
    }
  });

  it('refuses plugin names that are paths or outside the prefix, and bad prefixes', () => {
    const plugin = settingByPath('kbm.plugin')!;
    const get = (p: string): unknown => (p === 'kbm.prefix' ? 'tas_kbm' : undefined);
    assert.equal(plugin.check!('tas_kbm_pkcs11', get), undefined);
    assert.match(plugin.check!('../tas_kbm_mock', get)!, /a plugin name, not a path/);
    assert.match(plugin.check!('tas_kbm/../../x', get)!, /not a path/);
    assert.match(plugin.check!('other_mock', get)!, /does not start with TAS_PLUGIN_PREFIX 'tas_kbm'/);
    const prefix = settingByPath('kbm.prefix')!;
    assert.equal(prefix.check!('acme_kbm', get), undefined);
    assert.match(prefix.check!('a/b', get)!, /letters, digits or underscores/);
  });
});
