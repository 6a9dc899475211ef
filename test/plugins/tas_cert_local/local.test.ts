/**
 * tas_cert_local and the signer loader's startup checks: lab generation with O_EXCL files of mode
 * 0600 under a lock file, refusal of partial sets, group-readable keys and a held lock, and the
 * self-test that refuses CA material the key does not match (wrong key, non-CA certificate).
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { checkCaMaterial, CertSignerError, newCaKey, makeRoot, SignerService, signLocal, unpem, viewCertificate, type CertSigner } from '../../../src/cert';
import { plugin } from '../../../plugins/tas_cert_local';
import { workDir } from '../../support/certify';

const log = pino({ level: 'silent' });

function config(dir: string, extra = ''): string {
  const f = join(dir, 'cert.yaml');
  writeFileSync(f, `root_key_file: ${dir}/root.key\nroot_cert_file: ${dir}/root.pem\nca_key_file: ${dir}/ca.key\nca_cert_file: ${dir}/ca.pem\n${extra}`);
  return f;
}

async function kind(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return `${(e as CertSignerError).kind}: ${(e as Error).message}`;
  }
  return 'ok';
}

describe('tas_cert_local: lab CA files and startup checks', function () {
  this.timeout(60_000);

  it('generates root and issuing CA once (mode 0600, no lock left), loads them on the next start, and self-tests', async () => {
    const dir = mkdtempSync(join(workDir(), 'local-'));
    const cfg = config(dir);
    const s1 = await plugin.open(cfg, { log });
    for (const f of ['root.key', 'root.pem', 'ca.key', 'ca.pem']) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    assert.equal(existsSync(join(dir, '.tas_cert_local.lock')), false);
    const ca1 = readFileSync(join(dir, 'ca.pem'), 'latin1');
    const svc = new SignerService(s1, log);
    await svc.start();
    assert.equal(await svc.readiness(), undefined);
    assert.equal(svc.ca().suite, 'ecdsa-sha384');
    // Second start: same hierarchy.
    const s2 = await plugin.open(cfg, { log });
    assert.deepEqual(s2.ca().caCert, unpem(ca1, 'CERTIFICATE')[0]);
  });

  it('RSA lab keys sign RSA-PSS', async () => {
    const dir = mkdtempSync(join(workDir(), 'local-rsa-'));
    const svc = new SignerService(await plugin.open(config(dir, 'key_type: RSA\nkey_size: 3072\n'), { log }), log);
    await svc.start();
    assert.equal(svc.ca().suite, 'rsa-pss-sha256');
  });

  it('refuses a partial set, a group-readable key, a held lock file, unknown members', async () => {
    const dir = mkdtempSync(join(workDir(), 'local-bad-'));
    const cfg = config(dir);
    await plugin.open(cfg, { log });
    const ca = readFileSync(join(dir, 'ca.pem'));
    // group-readable key
    chmodSync(join(dir, 'ca.key'), 0o640);
    assert.match(await kind(plugin.open(cfg, { log })), /^config: .*readable or writable by group or others/);
    chmodSync(join(dir, 'ca.key'), 0o600);
    // partial set
    const other = mkdtempSync(join(workDir(), 'local-partial-'));
    writeFileSync(join(other, 'ca.pem'), ca);
    assert.match(await kind(plugin.open(config(other), { log })), /^config: .*partial CA/);
    // a lock held by another starter
    const fresh = mkdtempSync(join(workDir(), 'local-lock-'));
    writeFileSync(join(fresh, '.tas_cert_local.lock'), '1\n');
    assert.match(await kind(plugin.open(config(fresh), { log })), /^config: .*lock exists|\.lock exists/);
    assert.equal(existsSync(join(fresh, 'ca.key')), false, 'nothing written while the lock is held');
    // unknown member
    assert.match(await kind(plugin.open(config(fresh, 'key_file: x\n'), { log })), /unknown member 'key_file'/);
    // no files and no root key path: the CA must be made with tas cert ca init
    const none = mkdtempSync(join(workDir(), 'local-none-'));
    const f = join(none, 'cert.yaml');
    writeFileSync(f, `root_cert_file: ${none}/root.pem\nca_key_file: ${none}/ca.key\nca_cert_file: ${none}/ca.pem\n`);
    assert.match(await kind(plugin.open(f, { log })), /tas cert ca init/);
  });

  it('the self-test refuses a plugin whose key does not match its CA certificate, and CA material that is not a CA chain', async () => {
    const dir = mkdtempSync(join(workDir(), 'local-mismatch-'));
    const good = await plugin.open(config(dir), { log });
    const wrong = newCaKey('EC');
    const bad: CertSigner = { ...good, manifest: good.manifest, ca: () => good.ca(), sign: async (tbs) => signLocal('ecdsa-sha384', wrong.privateKey, tbs), health: () => good.health(), close: () => good.close() };
    await assert.rejects(new SignerService(bad, log).start(), /self-test: .* does not verify/);
    // A self-signed root that is not marked CA is refused by the chain check.
    const leafish = makeRoot(wrong.privateKey, 'x', 1);
    const m = good.ca();
    assert.throws(() => checkCaMaterial({ caCert: m.caCert, chain: [], suite: m.suite }), /chain is empty/);
    assert.throws(() => checkCaMaterial({ caCert: m.caCert, chain: [leafish], suite: m.suite }), /not signed by certificate 1/);
    assert.throws(() => checkCaMaterial({ ...m, suite: 'rsa-pss-sha256' }), /does not fit the CA key/);
    assert.throws(() => checkCaMaterial(m, new Date(Date.now() + 400 * 86_400_000)), /not valid now/);
    assert.equal(viewCertificate(m.caCert).extensions.size, 4);
  });
});
