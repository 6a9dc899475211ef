#!/usr/bin/env node
// native/tools/build-if-changed.js [--stamp]: rebuild the addon (node-gyp rebuild) only when its
// sources changed. The stamp build/Release/.tas-native.sha256 holds a SHA-256 over binding.gyp,
// every .cc/.h/.gyp file under native/ (not the fuzzers), the node version and the architecture;
// `npm start` and `npm test` call this instead of rebuilding every time. --stamp only writes the
// stamp (after `npm run build:native`); --check exits 1 when a rebuild is due, without building.
'use strict';
const { createHash } = require('node:crypto');
const { execFileSync } = require('node:child_process');
const { existsSync, readdirSync, readFileSync, statSync, writeFileSync } = require('node:fs');
const { join, relative } = require('node:path');

const root = join(__dirname, '..', '..');
const stamp = join(root, 'build', 'Release', '.tas-native.sha256');
const addon = join(root, 'build', 'Release', 'tas_native.node');

function sources(dir, out) {
  for (const e of readdirSync(dir).sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) {
      if (e !== 'fuzz') sources(p, out);
    } else if (/\.(cc|h|gyp|gypi)$/.test(e)) out.push(p);
  }
  return out;
}

function digest() {
  const h = createHash('sha256');
  h.update(`${process.version} ${process.arch}\n`);
  for (const f of [join(root, 'binding.gyp'), ...sources(join(root, 'native'), [])]) {
    h.update(`${relative(root, f)}\n`);
    h.update(readFileSync(f));
  }
  return h.digest('hex');
}

const want = digest();
if (process.argv.includes('--stamp')) {
  writeFileSync(stamp, `${want}\n`);
  process.exit(0);
}
const have = existsSync(stamp) && existsSync(addon) ? readFileSync(stamp, 'utf8').trim() : '';
if (process.argv.includes('--check')) process.exit(have === want ? 0 : 1);
if (have === want) {
  console.error('native addon up to date (sources unchanged); `npm run build:native` forces a rebuild');
  process.exit(0);
}
console.error(have ? 'native sources changed: rebuilding the addon' : 'building the native addon');
execFileSync(process.platform === 'win32' ? 'npx.cmd' : 'npx', ['node-gyp', 'rebuild', '--directory=.', '-j', '2'], { cwd: root, stdio: 'inherit' });
writeFileSync(stamp, `${want}\n`);
