/**
 * The shipped tas_kbm_kmip plugin is found and accepted by the daemon's plugin loader
 * (src/kbm: discovery by prefix, manifest name = directory name, API version).
 */
import assert from 'node:assert/strict';
import { SHIPPED_PLUGIN_DIR, discoverPlugins, loadPlugin } from '../../../src/kbm';
import { KBM_API_VERSION } from '../../../src/kbm/types';
import { plugin } from '../../../plugins/tas_kbm_kmip';

describe('tas_kbm_kmip plugin module', () => {
  it('is discovered under the tas_kbm prefix and passes the manifest check', () => {
    const c = discoverPlugins('tas_kbm', [SHIPPED_PLUGIN_DIR]).find((p) => p.name === 'tas_kbm_kmip');
    assert.ok(c, 'tas_kbm_kmip not discovered');
    const loaded = loadPlugin(c);
    assert.equal(loaded.manifest.name, 'tas_kbm_kmip');
    assert.equal(loaded.manifest.apiVersion, KBM_API_VERSION);
    assert.equal(typeof loaded.open, 'function');
    assert.equal(plugin.manifest.name, 'tas_kbm_kmip');
  });
});
