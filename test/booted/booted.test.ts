/**
 * The booted-system test: the .deb installed with apt into a Debian 13 (trixie) system booted with
 * `systemd-nspawn -b` (real systemd as PID 1), and tas exercised under the shipped hardened unit,
 * reached through socket activation on 127.0.0.1:5000:
 *   install (user, keys, TLS, socket enabled and listening, service idle) -> edit the conffile and
 *   add a test-only drop-in (fake AMD root, fake KDS) -> signed policy + one full attestation ->
 *   `systemctl reload tas` (same PID, still serving) -> upgrade to a rebuilt package (revision bumped;
 *   edited conffile and generated keys kept) -> `apt purge tas` (no /etc/tas, /var/lib/tas,
 *   /var/cache/tas or unit left; the system user stays, Debian policy).
 * The trixie base comes from test/support/debootstrap.ts (made once per day, then copied). The
 * client runs on the host inside the container's network namespace (test/booted/drive.ts).
 *
 * Key broker: tas_kbm_pkcs11 with a SoftHSM2 token (hybrid mode: SoftHSM 2.6.1 wraps with RSA-OAEP
 * SHA-1 only, docs/plugins.md), configured with the shipped softhsm.conf drop-in.
 * Budget: about 2-3 minutes with a warm base (each step 20 minutes at most); the before hook allows
 * 35 minutes because a cold run debootstraps first (745 s measured here).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { copyBase, ensureBase } from '../support/debootstrap';

const REPO = join(__dirname, '..', '..');
/** The released key: an AES-256 key on the SoftHSM2 token (32 ASCII bytes, so the test can compare text). */
const SECRET = 'booted system: 32-byte disk key!';
const HSM_PIN = '246810';
/** Creates the key on the token, sensitive and extractable (what tas_kbm_pkcs11 requires). */
const CREATE_KEY = `
const p = require(process.env.PKCS11JS);
const m = new p.PKCS11();
m.load('/usr/lib/softhsm/libsofthsm2.so');
m.C_Initialize();
try {
  const slot = m.C_GetSlotList(true).find((s) => m.C_GetTokenInfo(s).label.trim() === 'tas');
  const s = m.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
  m.C_Login(s, p.CKU_USER, process.env.HSM_PIN);
  m.C_CreateObject(s, [
    { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY }, { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
    { type: p.CKA_TOKEN, value: true }, { type: p.CKA_PRIVATE, value: true },
    { type: p.CKA_SENSITIVE, value: true }, { type: p.CKA_EXTRACTABLE, value: true },
    { type: p.CKA_LABEL, value: 'disk-key-1' }, { type: p.CKA_VALUE, value: Buffer.from(process.env.SECRET_HEX, 'hex') },
  ]);
  m.C_Logout(s);
  m.C_CloseSession(s);
} finally {
  m.C_Finalize();
}
`;
const TOOLS = ['debootstrap', 'systemd-nspawn', 'nsenter', 'dpkg-deb', 'softhsm2-util'];

function have(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

/** repack makes the upgrade: the same payload with the Debian revision bumped. */
function repack(deb: string, out: string, revision: number): string {
  const dir = mkdtempSync('/var/tmp/tas-repack-');
  try {
    execFileSync('dpkg-deb', ['-R', deb, join(dir, 'root')]);
    const control = join(dir, 'root/DEBIAN/control');
    const text = readFileSync(control, 'utf8');
    const version = /^Version: (.+)-(\d+)$/m.exec(text);
    assert.ok(version, 'control has a Version with a revision');
    const next = `${version[1]}-${revision}`;
    writeFileSync(control, text.replace(/^Version: .+$/m, `Version: ${next}`));
    const target = join(out, `tas_${next}_amd64.deb`);
    execFileSync('dpkg-deb', ['--build', '--root-owner-group', '-Zxz', join(dir, 'root'), target], { stdio: 'pipe' });
    return target;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('booted system (Debian 13 in systemd-nspawn): install, attest, reload, upgrade, purge', function () {
  this.timeout(20 * 60_000);
  let work = '';
  let root = '';
  let nspawn: ChildProcess | undefined;
  let kds: ChildProcess | undefined;
  let leader = 0;
  let debs: string[] = [];
  const consoleOut: string[] = [];

  /** sh runs a command in all of the container's namespaces (as PID 1's environment sees it). */
  const sh = (cmd: string, opts: { allowFail?: boolean } = {}): { status: number; out: string } => {
    const r = spawnSync('nsenter', ['-t', String(leader), '-a', '/usr/bin/env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'DEBIAN_FRONTEND=noninteractive', 'LANG=C.UTF-8', 'sh', '-c', cmd], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    if (r.status !== 0 && !opts.allowFail) throw new Error(`in container: ${cmd}\nexit ${r.status}\n${out}`);
    return { status: r.status ?? -1, out };
  };
  /** drive runs test/booted/drive.ts with the host's node in the container's network namespace. */
  const driveArgs = (args: string[]): string[] => ['-t', String(leader), '-n', process.execPath, '--import', 'tsx', join(__dirname, 'drive.ts'), ...args];
  const attest = (policyId: string, mgmtPort = '5000'): { stored: number; status: number; secret?: string; body?: unknown; storedBody?: unknown } => {
    const r = spawnSync('nsenter', driveArgs(['attest', root, work, policyId, mgmtPort]), { encoding: 'utf8', cwd: REPO });
    assert.equal(r.status, 0, `drive attest failed:\n${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as never;
  };
  const show = (unit: string, props: string): Record<string, string> =>
    Object.fromEntries(sh(`systemctl show ${unit} -p ${props}`).out.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  const sha = (p: string): string => createHash('sha256').update(readFileSync(join(root, p))).digest('hex');
  const journal = (): string => sh('journalctl -u tas.service -u tas.socket --no-pager -n 80', { allowFail: true }).out;

  before(async function () {
    // A cold CI run debootstraps first (about 12 minutes on 2 cores), then builds the package.
    this.timeout(35 * 60_000);
    const missing = TOOLS.filter((t) => !have(t));
    assert.deepEqual(missing, [], `missing tools (apt packages in .ci/apt-packages): ${missing.join(', ')}`);
    ensureBase();
    work = mkdtempSync('/var/tmp/tas-booted-');
    root = join(work, 'root');
    // The package as `npm run package:deb` builds it, then its upgrade (revision 2, same payload).
    const built = execFileSync('bash', [join(REPO, 'packaging/deb/build.sh'), join(work, 'out')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').pop()!;
    debs = [built, repack(built, join(work, 'out'), 2)];
    copyBase(root);
    for (const d of debs) copyFileSync(d, join(root, 'root', d.split('/').pop()!));

    nspawn = spawn('systemd-nspawn', ['-D', root, '-M', `tasbooted${process.pid}`, '--register=no', '--keep-unit', '--private-network', '-b', '--console=pipe'], { stdio: ['ignore', 'pipe', 'pipe'] });
    nspawn.stdout!.on('data', (b: Buffer) => consoleOut.push(b.toString()));
    nspawn.stderr!.on('data', (b: Buffer) => consoleOut.push(b.toString()));
    // The container's PID 1 is nspawn's child whose pid in its own namespace is 1.
    for (let i = 0; i < 300 && !leader; i++) {
      await new Promise((r) => setTimeout(r, 100));
      for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
        try {
          const status = readFileSync(`/proc/${p}/status`, 'utf8');
          if (/^PPid:\s+(\d+)$/m.exec(status)?.[1] !== String(nspawn.pid)) continue;
          const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/);
          if (nspid && nspid.length > 1 && nspid[nspid.length - 1] === '1') leader = Number(p);
        } catch {
          // processes come and go
        }
      }
    }
    assert.ok(leader > 0, `container did not start:\n${consoleOut.join('')}`);
    let state = '';
    for (let i = 0; i < 120; i++) {
      state = sh('systemctl is-system-running', { allowFail: true }).out.trim();
      if (state === 'running' || state === 'degraded') break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.match(state, /^(running|degraded)$/, `container did not boot: ${state}\n${sh('systemctl --failed --no-pager', { allowFail: true }).out}`);
  });

  after(async function () {
    kds?.kill('SIGTERM');
    if (leader) sh('systemctl poweroff', { allowFail: true });
    if (nspawn && nspawn.exitCode === null) {
      const done = new Promise((r) => nspawn!.once('exit', r));
      const t = setTimeout(() => nspawn!.kill('SIGKILL'), 30_000);
      await done;
      clearTimeout(t);
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('installs with apt: user, owner-only keys and TLS key, socket listening, service idle', function () {
    const r = sh(`apt-get install -y --no-install-recommends /root/${debs[0]!.split('/').pop()}`);
    assert.match(r.out, /Setting up tas \(/);
    assert.match(sh('getent passwd tas').out, /^tas:x:\d+:\d+:.*:\/var\/lib\/tas:\/usr\/sbin\/nologin$/m);
    const mode = (p: string): string => sh(`stat -c '%a %U:%G' ${p}`).out.trim();
    assert.equal(mode('/etc/tas'), '750 root:tas');
    assert.equal(mode('/etc/tas/api-key'), '600 root:root');
    assert.equal(mode('/etc/tas/management-api-key'), '600 root:root');
    assert.equal(mode('/etc/tas/tls.key'), '640 root:tas');
    assert.equal(mode('/etc/tas/tas.yaml'), '640 root:tas');
    assert.equal(mode('/var/lib/tas'), '700 tas:tas');
    assert.ok(readFileSync(join(root, 'etc/tas/api-key'), 'utf8').trim().length >= 64, 'client key of at least 64 characters');
    assert.equal(sh('systemctl is-enabled tas.socket').out.trim(), 'enabled');
    assert.equal(show('tas.socket', 'ActiveState,SubState').SubState, 'listening');
    assert.equal(show('tas.service', 'ActiveState').ActiveState, 'inactive');
    assert.match(sh('node --version').out, /^v(2[0-9])\./);
  });

  it('as root with no extra environment: config check, kds import/status, policy export work; the cache belongs to tas', function () {
    // Genuine AMD VCEKs (test/fixtures/snp-vectors), verified against the pinned roots on import.
    mkdirSync(join(root, 'root/amd-certs'), { recursive: true });
    copyFileSync(join(REPO, 'test/fixtures/snp-vectors/mstav-genoa-v3/vcek.pem'), join(root, 'root/amd-certs/genoa-vcek.pem'));
    copyFileSync(join(REPO, 'test/fixtures/snp-vectors/mstav-milan-v3/vcek.pem'), join(root, 'root/amd-certs/milan-vcek.pem'));
    const check = sh('cd /root && tas config check');
    assert.match(check.out, /^configuration OK \(file \/etc\/tas\/tas\.yaml\)/m);
    assert.match(check.out, /auth\.client_keys\s+TAS_API_KEY\s+\["\*\*\*"\]\s+credential/);
    assert.match(check.out, /warning: no key broker configured/);
    const imp = sh('cd /root && tas kds import /root/amd-certs');
    assert.match(imp.out, /2 imported, 0 refused/);
    const status = sh('cd /root && tas kds status --format json');
    assert.equal(Object.keys((JSON.parse(status.out) as { certificates: Record<string, string> }).certificates).length, 2);
    const owners = sh("find /var/cache/tas -mindepth 1 -printf '%u:%g %m %p\\n'").out.trim().split('\n');
    assert.ok(owners.length >= 2, owners.join('\n'));
    for (const o of owners) assert.match(o, /^tas:tas (700|600) \/var\/cache\/tas\//, `owned by the service: ${o}`);
    assert.ok(!existsSync(join(root, 'root/.tas')), 'no development state under the working directory');
    // stdout holds the documents; the count goes to stderr (sh() joins both).
    const exp = sh('cd /root && tas policy export 2>/dev/null');
    assert.deepEqual(JSON.parse(exp.out), []);
  });

  it('first start with no key broker configured: running, not ready, the reason in systemctl status (no restart loop)', async function () {
    sh('systemctl start tas.service');
    let s: Record<string, string> = {};
    for (let i = 0; i < 120; i++) {
      s = show('tas.service', 'ActiveState,NRestarts,StatusText');
      if (/no key broker configured/.test(s.StatusText ?? '')) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(s.ActiveState, 'active', journal());
    assert.equal(s.NRestarts, '0');
    assert.match(s.StatusText ?? '', /degraded: .*kbm: no key broker configured: set kbm\.plugin and kbm\.config_file/);
    assert.match(sh('systemctl status tas.service --no-pager', { allowFail: true }).out, /Status: ".*no key broker configured/);
    sh('systemctl stop tas.service');
  });

  it('serves a full attestation through socket activation under the shipped unit: signed policy, fake AMD report, fake KDS, key from a SoftHSM2 token', async function () {
    // Configuration edits an administrator would make: a SoftHSM2 token owned by tas under the
    // state directory (the shipped softhsm.conf drop-in points SOFTHSM2_CONF at /etc/tas), its PIN
    // as a systemd credential, and the conffile naming the policy trust and the PKCS#11 broker.
    // The token is made from the host (same SoftHSM 2.6.1 file format) into the container's tree.
    const tokens = join(root, 'var/lib/tas/softhsm/tokens');
    mkdirSync(tokens, { recursive: true });
    const hostConf = join(work, 'softhsm2-host.conf');
    writeFileSync(hostConf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    const hsmEnv = { ...process.env, SOFTHSM2_CONF: hostConf };
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'tas', '--so-pin', '87654321', '--pin', HSM_PIN], { env: hsmEnv, stdio: 'pipe' });
    execFileSync(process.execPath, ['-e', CREATE_KEY], { env: { ...hsmEnv, PKCS11JS: require.resolve('pkcs11js'), SECRET_HEX: Buffer.from(SECRET).toString('hex'), HSM_PIN }, stdio: 'pipe' });
    writeFileSync(join(root, 'etc/tas/softhsm2.conf'), 'directories.tokendir = /var/lib/tas/softhsm/tokens\nobjectstore.backend = file\nlog.level = ERROR\n');
    writeFileSync(join(root, 'etc/tas/hsm-pin'), `${HSM_PIN}\n`, { mode: 0o600 });
    writeFileSync(join(root, 'etc/tas/kbm-pkcs11.yaml'), 'module: /usr/lib/softhsm/libsofthsm2.so\ntoken_label: tas\npin_credential: hsm-pin\nmode: hybrid\nkey_lookup: label\n');
    sh('chown -R tas:tas /var/lib/tas/softhsm && chown root:tas /etc/tas/softhsm2.conf /etc/tas/kbm-pkcs11.yaml && chmod 0640 /etc/tas/softhsm2.conf /etc/tas/kbm-pkcs11.yaml');
    const yaml = join(root, 'etc/tas/tas.yaml');
    writeFileSync(yaml, `${readFileSync(yaml, 'utf8')}\n# edited by the booted-system test\npolicy:\n  trust: /etc/tas/policy-trust.pem\nkbm:\n  plugin: tas_kbm_pkcs11\n  config_file: /etc/tas/kbm-pkcs11.yaml\n`);
    mkdirSync(join(root, 'etc/systemd/system/tas.service.d'), { recursive: true });
    sh('cp /usr/share/doc/tas/drop-ins/softhsm.conf /etc/systemd/system/tas.service.d/softhsm.conf');
    writeFileSync(join(root, 'etc/systemd/system/tas.service.d/test-only.conf'), '[Service]\nLoadCredential=hsm-pin:/etc/tas/hsm-pin\nEnvironment=TAS_SNP_EXTRA_TRUST_DIR=/etc/tas/test-snp-trust\nEnvironment=TAS_KDS_BASE_URL=http://127.0.0.1:18080\n');
    sh('systemctl daemon-reload');

    kds = spawn('nsenter', driveArgs(['kds', root, work]), { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let kdsErr = '';
    kds.stderr!.on('data', (b: Buffer) => (kdsErr += b.toString()));
    await new Promise<void>((resolve, reject) => {
      kds!.stdout!.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
      kds!.once('exit', (c) => reject(new Error(`fake KDS exited ${c}: ${kdsErr}`)));
    });
    sh('chmod -R go+rX /etc/tas/test-snp-trust && chmod 0644 /etc/tas/policy-trust.pem');

    const r = attest('booted-1');
    assert.ok(r.stored >= 200 && r.stored < 300, `policy store ${r.stored}: ${JSON.stringify(r.storedBody)}\n${journal()}`);
    assert.equal(r.status, 200, `get_secret: ${JSON.stringify(r.body)}\n${journal()}`);
    assert.equal(r.secret, SECRET);
    const s = show('tas.service', 'ActiveState,SubState,MainPID,NRestarts,StatusText,User,TriggeredBy,WatchdogUSec');
    assert.equal(s.ActiveState, 'active');
    assert.equal(s.NRestarts, '0');
    assert.equal(s.User, 'tas');
    assert.match(s.TriggeredBy!, /tas\.socket/);
    assert.equal(s.WatchdogUSec, '30s');
    assert.equal(sh(`ps -o user= -p ${s.MainPID}`).out.trim(), 'tas');
    // The memory settings of the unit reach the node process (its young generation and arenas).
    assert.match(sh(`tr '\\0' ' ' < /proc/${s.MainPID}/cmdline`).out, /^\/usr\/bin\/node --max-semi-space-size=4 \/usr\/lib\/tas\/dist\/src\/main\.js serve/);
    assert.match(sh(`tr '\\0' '\\n' < /proc/${s.MainPID}/environ`).out, /^MALLOC_ARENA_MAX=2$/m);
  });

  it('systemctl reload tas: same process, still serving', function () {
    const before = show('tas.service', 'MainPID').MainPID;
    sh('systemctl reload tas');
    const s = show('tas.service', 'MainPID,ActiveState,NRestarts');
    assert.equal(s.MainPID, before);
    assert.equal(s.ActiveState, 'active');
    const r = attest('booted-2');
    assert.equal(r.status, 200, `after reload: ${JSON.stringify(r.body)}\n${journal()}`);
    assert.equal(r.secret, SECRET);
  });

  it('the optional management socket (tas-management.socket, fd name "management") serves the management API', function () {
    // systemd refuses to start a socket whose service already runs: stop the service first.
    sh('systemctl stop tas.service && systemctl enable --now tas-management.socket');
    assert.equal(show('tas-management.socket', 'SubState').SubState, 'listening');
    const r = spawnSync('nsenter', driveArgs(['status', root, '5001']), { encoding: 'utf8', cwd: REPO });
    assert.equal(r.status, 0, `drive status failed:\n${r.stderr}`);
    assert.equal(r.stdout.trim(), '200', journal());
    assert.match(journal(), /"name":"management"/);
  });

  it('upgrades to a rebuilt package keeping the edited conffile, the generated keys and the certificate', function () {
    const kept = ['etc/tas/tas.yaml', 'etc/tas/api-key', 'etc/tas/management-api-key', 'etc/tas/tls.key', 'etc/tas/tls.crt'];
    const before = kept.map(sha);
    const r = sh(`apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confold /root/${debs[1]!.split('/').pop()}`);
    assert.match(r.out, /Unpacking tas \(.*-2\) over/);
    assert.equal(sh("dpkg-query -W -f '${Version}' tas").out.trim().endsWith('-2'), true);
    assert.deepEqual(kept.map(sha), before);
    assert.match(readFileSync(join(root, 'etc/tas/tas.yaml'), 'utf8'), /edited by the booted-system test/);
    // The management socket enabled in the previous step stays in use across the upgrade.
    const r2 = attest('booted-3', '5001');
    assert.ok(r2.stored >= 200 && r2.stored < 300, `policy store after upgrade ${r2.stored}: ${JSON.stringify(r2.storedBody)}`);
    assert.equal(r2.status, 200, `after upgrade: ${JSON.stringify(r2.body)}\n${journal()}`);
    assert.equal(r2.secret, SECRET);
  });

  it('apt purge tas leaves nothing behind but the system user (Debian policy)', function () {
    kds?.kill('SIGTERM');
    rmSync(join(root, 'etc/systemd/system/tas.service.d'), { recursive: true, force: true });
    sh('apt-get purge -y tas');
    for (const p of ['etc/tas', 'var/lib/tas', 'var/cache/tas', 'usr/lib/tas', 'usr/bin/tas', 'usr/lib/systemd/system/tas.service', 'etc/systemd/system/sockets.target.wants/tas.socket', 'etc/systemd/system/sockets.target.wants/tas-management.socket']) {
      assert.equal(existsSync(join(root, p)), false, `${p} left behind`);
    }
    // Debian policy 9.2.1: a purge keeps the system user (files it owned may remain elsewhere).
    assert.equal(sh('getent passwd tas', { allowFail: true }).status, 0, 'user tas removed by purge');
    assert.equal(sh('getent group tas', { allowFail: true }).status, 0, 'group tas removed by purge');
    assert.equal(sh('dpkg-query -W -f "${Status}" tas', { allowFail: true }).out.includes('installed'), false);
    assert.ok(statSync(join(root, 'etc')).isDirectory());
  });
});
