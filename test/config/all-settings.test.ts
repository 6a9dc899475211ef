/**
 * src/config/all-settings.ts: every module's settings are imported, and the generated documents
 * list them in one order whatever order a process imported the modules in.
 */
import assert from 'node:assert/strict';
import '../../src/kbm/settings'; // first on purpose: a registry filled in another order
import { SETTINGS_ORDER } from '../../src/config/all-settings';
import { configReference } from '../../src/config/docs';
import { allSettings } from '../../src/config';

describe('config: all settings', () => {
  it('every settings owner is in SETTINGS_ORDER, once', () => {
    const owners = [...new Set(allSettings().map((s) => s.owner))];
    assert.deepEqual(owners.filter((o) => !SETTINGS_ORDER.includes(o)), []);
    assert.equal(new Set(SETTINGS_ORDER).size, SETTINGS_ORDER.length);
  });

  it('the configuration reference follows SETTINGS_ORDER, not import order', () => {
    // This file imports kbm's settings before anything else (run alone, kbm registered first).
    const expected: string[] = [];
    for (const owner of SETTINGS_ORDER) {
      for (const s of allSettings()) if (s.owner === owner && !expected.includes(s.section)) expected.push(s.section);
    }
    const sections = [...configReference().matchAll(/^#### (.+)$/gm)].map((m) => m[1]);
    assert.deepEqual(sections, expected);
  });
});
