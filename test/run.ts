/**
 * The whole test suite: every `test/**\/*.test.ts` file, run by mocha in this process (TypeScript
 * through tsx). Prints one closing line `N passed, N failed` and exits non-zero on any failure.
 * Usage: `npm test` (whole suite) or `node --import tsx test/run.ts [--grep RE] [file|dir ...]`.
 */
import Mocha from 'mocha';
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

function collect(p: string, out: string[]): void {
  const st = statSync(p);
  if (st.isDirectory()) {
    for (const e of readdirSync(p).sort()) {
      if (e === 'node_modules' || e.startsWith('.')) continue;
      collect(join(p, e), out);
    }
  } else if (p.endsWith('.test.ts')) out.push(resolve(p));
}

const args = process.argv.slice(2);
let grep: string | undefined;
const roots: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--grep') grep = args[++i];
  else roots.push(args[i]!);
}
const files: string[] = [];
for (const r of roots.length ? roots : [join(__dirname)]) collect(r, files);

const mocha = new Mocha({ timeout: 60_000, reporter: 'spec', ...(grep ? { grep } : {}) });
for (const f of files) mocha.addFile(f);
mocha.loadFilesAsync().then(() => {
  const runner = mocha.run();
  let passed = 0;
  let failed = 0;
  runner.on('pass', () => passed++);
  runner.on('fail', () => failed++);
  runner.on('end', () => {
    console.log(`\n${passed} passed, ${failed} failed`);
    // The summary must stay the closing line (CI reads it): late output of stray handles is dropped.
    process.stdout.write = (() => true) as typeof process.stdout.write;
    process.stderr.write = (() => true) as typeof process.stderr.write;
    process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
    // Harnesses close their servers in after() hooks; do not let a stray handle hang CI.
    setTimeout(() => process.exit(process.exitCode), 2000).unref();
  });
}).catch((e: unknown) => {
  console.error(e);
  console.log('\n0 passed, 1 failed');
  process.exit(1);
});
