/**
 * The packages as `npm run package:deb` / `npm run package:rpm` build them: lintian reports no
 * error and no warning (the few accepted ones are overridden with a written reason in
 * packaging/deb/lintian-overrides), and rpmlint reports only the errors listed in RPMLINT_ACCEPTED,
 * each with the reason it stays. Installation itself is proven by test/booted/booted.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const REPO = join(__dirname, '..', '..');

/** rpmlint errors that stay, matched exactly (message and path). */
const RPMLINT_ACCEPTED: { re: RegExp; why: string }[] = [
  { re: /^E: non-standard-dir-perm \/etc\/tas 750$/, why: '/etc/tas holds keys: root:tas 0750 on purpose' },
  { re: /^E: non-readable \/etc\/tas\/tas\.yaml 640$/, why: 'the config may name secrets files: root:tas 0640 on purpose' },
  { re: /^E: non-executable-script \/usr\/lib\/tas\/node_modules\/koffi\/src\/koffi\/src\/trampolines\.cjs 644 \/usr\/bin\/env node$/, why: 'a module loaded by require(), never executed' },
  { re: /^E: no-signature$/, why: 'packages are signed at release (rpmsign), not in CI' },
  { re: /^E: files-duplicated-waste \d+$/, why: 'identical LICENSE/index files across bundled npm modules' },
];

/** brokenLinks lists relative Markdown links (outside code blocks) of dir's *.md that name no file there. */
function brokenLinks(dir: string): string[] {
  const bad: string[] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.md'))) {
    const text = readFileSync(join(dir, f), 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue;
      if (!existsSync(join(dir, decodeURIComponent(target.split('#')[0]!)))) bad.push(`${f} -> ${target}`);
    }
  }
  return bad;
}

function tool(name: string): void {
  assert.equal(spawnSync('sh', ['-c', `command -v ${name}`]).status, 0, `${name} missing (apt packages in .ci/apt-packages)`);
}

describe('packages: lintian and rpmlint', function () {
  this.timeout(10 * 60_000);
  let out = '';
  before(() => {
    for (const t of ['dpkg-deb', 'dpkg-shlibdeps', 'lintian', 'rpmbuild', 'rpmlint']) tool(t);
    out = mkdtempSync('/var/tmp/tas-pkgtest-');
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  it('the .deb: lintian reports no errors and no warnings; Depends as designed', () => {
    const deb = execFileSync('bash', [join(REPO, 'packaging/deb/build.sh'), join(out, 'deb')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').pop()!;
    const r = spawnSync('lintian', ['--fail-on', 'none', deb], { encoding: 'utf8' });
    const tags = `${r.stdout}${r.stderr}`.split('\n').filter((l) => /^[EW]: /.test(l));
    assert.deepEqual(tags, []);
    const control = execFileSync('dpkg-deb', ['-f', deb], { encoding: 'utf8' });
    assert.match(control, /^Depends: nodejs \(>= 20\.19\), adduser, openssl, xmlsec1, libc6 .*libstdc\+\+6/m);
    assert.match(control, /^Recommends: redis-server$/m);
    assert.match(control, /^Suggests: softhsm2/m);
    assert.equal(execFileSync('dpkg-deb', ['--ctrl-tarfile', deb]).length > 0, true);
    const conffiles = execFileSync('sh', ['-c', `dpkg-deb --ctrl-tarfile '${deb}' | tar -xO ./conffiles`], { encoding: 'utf8' });
    assert.equal(conffiles, '/etc/tas/tas.yaml\n');
    const files = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' });
    for (const p of ['./usr/lib/tas/dist/src/main.js', './usr/lib/tas/build/Release/tas_native.node', './usr/lib/systemd/system/tas.service', './usr/share/man/man8/tas.8.gz', './usr/lib/sysusers.d/tas.conf'])
      assert.ok(files.includes(p), `${p} missing from the .deb`);
    // The documentation stands alone in the package and its cross-links resolve there: the
    // documents are not gzipped (a link to policy.md does not reach policy.md.gz).
    for (const d of ['README', 'protocol', 'policy', 'configuration', 'operations', 'plugins', 'kmip-plugin', 'fleet', 'audit', 'metrics', 'errors'])
      assert.ok(files.includes(`./usr/share/doc/tas/${d}.md\n`), `${d}.md missing from /usr/share/doc/tas`);
    const x = join(out, 'deb-x');
    execFileSync('dpkg-deb', ['-x', deb, x]);
    const broken = brokenLinks(join(x, 'usr/share/doc/tas'));
    assert.deepEqual(broken, [], 'links between the installed documents');
    // The system user stays on purge (Debian policy 9.2.1).
    const postrm = execFileSync('sh', ['-c', `dpkg-deb --ctrl-tarfile '${deb}' | tar -xO ./postrm`], { encoding: 'utf8' });
    assert.doesNotMatch(postrm.replace(/^\s*#.*$/gm, ''), /deluser|delgroup|userdel|groupdel/);
    // md5sums of every file but the conffile (lintian: no-md5sums-control-file), and an addon
    // linked with -z now (lintian: hardening-no-bindnow); lintian --pedantic shows neither tag.
    const md5 = execFileSync('sh', ['-c', `dpkg-deb --ctrl-tarfile '${deb}' | tar -xO ./md5sums`], { encoding: 'utf8' });
    assert.match(md5, /^[0-9a-f]{32} {2}usr\/lib\/tas\/build\/Release\/tas_native\.node$/m);
    assert.doesNotMatch(md5, /etc\/tas\/tas\.yaml/);
    const pedantic = spawnSync('lintian', ['--pedantic', '--fail-on', 'none', deb], { encoding: 'utf8' });
    assert.doesNotMatch(`${pedantic.stdout}${pedantic.stderr}`, /no-md5sums-control-file|hardening-no-bindnow/);
    assert.ok(!/node_modules\/(typescript|mocha|tsx|eslint)\//.test(files), 'dev dependencies shipped');
  });

  it('the .rpm: rpmlint errors are only the accepted ones; requires nodejs >= 20.19', () => {
    const rpm = execFileSync('bash', [join(REPO, 'packaging/rpm/build.sh'), join(out, 'rpm')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').pop()!;
    const r = spawnSync('rpmlint', [rpm], { encoding: 'utf8' });
    const errors = `${r.stdout}${r.stderr}`.split('\n').map((l) => l.replace(/^tas\.x86_64: /, '')).filter((l) => l.startsWith('E: '));
    const unexpected = errors.filter((e) => !RPMLINT_ACCEPTED.some((a) => a.re.test(e)));
    assert.deepEqual(unexpected, []);
    const requires = execFileSync('rpm', ['-qpR', rpm], { encoding: 'utf8' });
    assert.match(requires, /^nodejs >= 20\.19$/m);
    assert.match(requires, /^xmlsec1$/m, 'GPU attestation verifies RIMs with xmlsec1');
    assert.match(requires, /^xmlsec1-openssl$/m);
    assert.match(execFileSync('rpm', ['-qpc', rpm], { encoding: 'utf8' }), /^\/etc\/tas\/tas\.yaml$/m);
    const scripts = execFileSync('rpm', ['-qp', '--scripts', rpm], { encoding: 'utf8' });
    assert.match(scripts, /tas keys generate --dir \/etc\/tas/);
    // Erase keeps the system user and group (Fedora packaging guidelines: never removed).
    assert.doesNotMatch(scripts.replace(/^\s*#.*$/gm, ''), /userdel|groupdel/);
    assert.match(execFileSync('rpm', ['-qpl', rpm], { encoding: 'utf8' }), /^\/usr\/share\/doc\/tas\/policy\.md$/m);
  });
});
