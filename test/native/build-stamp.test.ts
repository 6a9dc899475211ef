/**
 * `npm start` / `npm test` rebuild the addon only when its sources changed
 * (native/tools/build-if-changed.js): the stamp matches an unchanged tree, and any change to a
 * native source, binding.gyp, or a missing addon makes a rebuild due. Run on a copy of the tree.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

describe('native: the addon is rebuilt only when its sources changed', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tas-stamp-'));
    cpSync(join(ROOT, 'native'), join(dir, 'native'), { recursive: true, filter: (s) => !s.includes('/fuzz/regressions') });
    cpSync(join(ROOT, 'binding.gyp'), join(dir, 'binding.gyp'));
    mkdirSync(join(dir, 'build', 'Release'), { recursive: true });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const check = (): number | null => spawnSync(process.execPath, [join(dir, 'native/tools/build-if-changed.js'), '--check']).status;
  const stampNow = (): void => void spawnSync(process.execPath, [join(dir, 'native/tools/build-if-changed.js'), '--stamp']);

  it('due without an addon; up to date after a stamp; due again after any source change', () => {
    stampNow();
    assert.equal(check(), 1, 'no addon built yet: a build is due');
    writeFileSync(join(dir, 'build/Release/tas_native.node'), 'addon');
    assert.equal(check(), 0, 'stamped and built: nothing to do');
    appendFileSync(join(dir, 'native/core/verify.cc'), '\n// changed\n');
    assert.equal(check(), 1, 'a .cc changed');
    stampNow();
    assert.equal(check(), 0);
    appendFileSync(join(dir, 'binding.gyp'), '\n');
    assert.equal(check(), 1, 'binding.gyp changed');
    stampNow();
    appendFileSync(join(dir, 'native/core/verify.h'), '\n');
    assert.equal(check(), 1, 'a header changed');
  });
});
