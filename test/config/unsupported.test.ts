/**
 * Every name of the original TAS is accounted for: carried over (registered by its module) or
 * refused with a hint; no name is both.
 */
import assert from 'node:assert/strict';
import '../../src/config/all-settings';
import { ConfigError, loadConfig, settingByEnv } from '../../src/config';
import { ORIGINAL_SUPPORTED, UNSUPPORTED_NESTED, UNSUPPORTED_ORIGINAL } from '../../src/config/unsupported';

const keys = { TAS_API_KEY: 'a'.repeat(64), TAS_MANAGEMENT_API_KEY: 'b'.repeat(64) };

describe('config: names of the original TAS', () => {
  it('registers every carried-over name', () => {
    for (const name of ORIGINAL_SUPPORTED) {
      if (name === 'TAS_CONFIG_FILE') continue; // read by the loader itself
      assert.ok(settingByEnv(name), `${name} is a name of the original that tas promises to read, but no module registers it`);
    }
  });

  it('never refuses a name that a module registers', () => {
    for (const name of Object.keys(UNSUPPORTED_ORIGINAL)) assert.equal(settingByEnv(name), undefined, `${name} is both registered and refused`);
  });

  it('refuses each unsupported name with its own hint, and never silently', () => {
    for (const [name, hint] of Object.entries(UNSUPPORTED_ORIGINAL)) {
      try {
        loadConfig({ env: { ...keys, [name]: 'x' } });
        assert.fail(`${name} accepted`);
      } catch (e) {
        assert.ok(e instanceof ConfigError, name);
        assert.equal(e.problems.length, 1, name);
        assert.ok(e.problems[0]!.startsWith(`${name} is a setting of the original TAS`), e.problems[0]);
        assert.ok(e.problems[0]!.endsWith(hint), name);
      }
    }
    for (const [path, hint] of Object.entries(UNSUPPORTED_NESTED)) {
      const env = `TAS_OVERRIDE__${path.split('.').join('__')}`;
      assert.throws(() => loadConfig({ env: { ...keys, [env]: 'true' } }), (e: unknown) => e instanceof ConfigError && e.problems[0]!.includes(hint));
    }
  });
});
