/**
 * Used by sanitizers.test.ts inside the ASan child run: proves the process really has the ASan and
 * UBSan runtimes mapped and loads the sanitizer build of the addon. In a normal run it checks that
 * the regular build is loaded instead.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { addonPath, opensslVersion } from '../../src/native/index.js';

describe('native addon build in use', () => {
  it(process.env['TAS_ASAN_PROBE'] ? 'is the ASan+UBSan build with both runtimes mapped' : 'is the regular build without sanitizers', () => {
    assert.ok(opensslVersion().startsWith('OpenSSL 3'));
    const maps = readFileSync('/proc/self/maps', 'utf8');
    const asan = /libasan\.so/.test(maps);
    const ubsan = /libubsan\.so/.test(maps);
    if (process.env['TAS_ASAN_PROBE']) {
      assert.ok(asan && ubsan, 'sanitizer runtimes not mapped');
      assert.match(addonPath(), /build-asan/);
      console.log(`      asan-probe: libasan loaded, libubsan loaded, addon ${addonPath()}`);
    } else {
      assert.ok(!asan && !ubsan);
      assert.doesNotMatch(addonPath(), /build-asan/);
    }
  });
});
