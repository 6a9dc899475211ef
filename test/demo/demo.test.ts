/** `npm run demo` runs in the suite, twice (no state leaks between runs), and decrypts the secret. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

function runDemo(): Promise<{ code: number | null; out: string }> {
  const c = spawn('npm', ['run', '--silent', 'demo'], { cwd: resolve(__dirname, '../..'), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  c.stdout.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((r) => c.on('close', (code) => r({ code, out })));
}

describe('demo: npm run demo', function () {
  this.timeout(180_000);
  for (const n of [1, 2]) {
    it(`run ${n}: every step passes and the CVM decrypts the secret`, async () => {
      const r = await runDemo();
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /secret: demo disk passphrase: open sesame/);
      assert.match(r.out, /demo: OK/);
      assert.match(r.out, /401 \{"error":"Invalid or expired nonce"\}/);
    });
  }
});
