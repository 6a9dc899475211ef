/**
 * Runs the native test suite (everything in test/native except fuzzing and this file) in a child
 * node against the ASan+UBSan build of the addon (native/tools/test-asan.sh, `npm run test:asan`),
 * and checks that the sanitizer runtimes really were loaded in that process.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

describe('native addon under ASan+UBSan', function () {
  this.timeout(900_000); // explicit budget: a full node-gyp build with sanitizers on a busy 2-core box

  it('the native suite passes against build-asan with the sanitizer runtimes loaded', () => {
    const probe = join(ROOT, 'test', 'native', 'asan-probe.test.ts');
    const files = ['report', 'verify', 'fake-chain', 'vek-table', 'concurrency', 'tdx-vectors', 'tdx-fake', 'wrap'].map((f) => join(ROOT, 'test', 'native', `${f}.test.ts`));
    const r = spawnSync('bash', [join(ROOT, 'native', 'tools', 'test-asan.sh'), probe, ...files], {
      cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, TAS_ASAN_PROBE: '1' },
    });
    const out = `${r.stdout}\n${r.stderr}`;
    const summary = /(\d+) passed, (\d+) failed/.exec(r.stdout);
    console.log(`      ASan+UBSan run: ${summary?.[0] ?? 'no summary'}`);
    assert.equal(r.status, 0, out.slice(-8000));
    assert.ok(summary && Number(summary[1]) >= 50 && summary[2] === '0', out.slice(-4000));
    assert.doesNotMatch(out, /ERROR: AddressSanitizer|runtime error:/);
    assert.match(out, /asan-probe: libasan loaded, libubsan loaded, addon .*build-asan/);
  });
});
