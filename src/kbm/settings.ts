/**
 * Settings of the key broker module (PROTOCOL.md §5): which plugin, where plugins are found and the
 * plugin's own configuration file.
 */
import { registerSettings } from '../config/registry';

const KBM = 'Key broker plugins';
const NAME = /^[A-Za-z0-9_]{1,64}$/;

registerSettings('kbm', [
  {
    path: 'kbm.prefix', env: ['TAS_PLUGIN_PREFIX'], type: 'string', default: 'tas_kbm', section: KBM,
    doc: 'Name prefix of key broker plugins in plugins/ and TAS_EXTRA_PLUGIN_DIR.',
    check: (v) => (NAME.test(v as string) ? undefined : 'must be 1..64 letters, digits or underscores'),
  },
  {
    path: 'kbm.plugin', env: ['TAS_KBM_PLUGIN'], type: 'string', default: 'tas_kbm_mock', section: KBM,
    doc: 'The key broker plugin to load (the only one loaded); its name must start with TAS_PLUGIN_PREFIX.',
    check: (v, get) => {
      const name = v as string;
      if (!NAME.test(name)) return 'must be 1..64 letters, digits or underscores (a plugin name, not a path)';
      const prefix = (get('kbm.prefix') as string | undefined) ?? 'tas_kbm';
      return name.startsWith(prefix) ? undefined : `'${name}' does not start with TAS_PLUGIN_PREFIX '${prefix}'`;
    },
  },
  {
    path: 'kbm.config_file', env: ['TAS_KBM_CONFIG_FILE'], type: 'path', section: KBM,
    doc: "The plugin's own configuration file (YAML or JSON), handed to the plugin at open.",
  },
  {
    path: 'kbm.extra_dir', env: ['TAS_EXTRA_PLUGIN_DIR'], type: 'path', section: KBM,
    doc: 'An extra directory searched for plugins (after the shipped plugins/ directory).',
  },
]);
