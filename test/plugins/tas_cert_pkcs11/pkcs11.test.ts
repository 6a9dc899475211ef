/**
 * tas_cert_pkcs11 against SoftHSM2: `tas cert ca init` generates the issuing CA key inside the
 * token (CKA_EXTRACTABLE false, CKA_SENSITIVE true — checked independently through PKCS#11, and
 * the token refuses to reveal CKA_VALUE), certificates are signed with C_Sign (ECDSA P-384 and
 * RSA-PSS) and verify with openssl; a wrong PIN leaves certify not-ready with the reason.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import * as pkcs11js from 'pkcs11js';
import { CertIssuer, sanitizeCsr, type CertSettings } from '../../../src/cert';
import { plugin } from '../../../plugins/tas_cert_pkcs11';
import { acquireModule, releaseModule } from '../../../plugins/tas_kbm_pkcs11/module';
import { SignerService } from '../../../src/cert/signer';
import { alphaNonce, bindingReportData, makeCsr, newKey, opensslVerify, postCertify, workDir, x509Text } from '../../support/certify';
import { tasInProcess } from '../../support/cli-inproc';
import { CLIENT_KEY, MGMT_KEY } from '../../support/daemon';
import { createLab, storePolicy, policyDoc, type Lab } from '../../support/lab';
import { softHsm } from '../../support/softhsm';

const log = pino({ level: 'silent' });

interface Setup {
  config: string;
  env: Record<string, string>;
  tokenLabel: string;
  pin: string;
}

function setup(tokenLabel: string, opts: { wrongPin?: boolean; reuse?: Setup } = {}): Setup {
  const hsm = softHsm();
  const pin = '246810';
  if (!opts.reuse) hsm.createToken(tokenLabel, pin, []);
  const dir = workDir();
  const base = opts.reuse ? opts.reuse.config.replace(/\.yaml$/, '') : join(dir, tokenLabel);
  const pinFile = opts.wrongPin ? hsm.writeFile(`${tokenLabel}-wrong.pin`, '000000\n') : hsm.writeFile(`${tokenLabel}.pin`, `${pin}\n`);
  const config = opts.wrongPin ? `${base}-wrong.yaml` : `${base}.yaml`;
  writeFileSync(config, [
    `module: ${hsm.module}`, `token_label: ${tokenLabel}`, `pin_file: ${pinFile}`, 'key_label: tas-issuing-ca',
    `ca_cert_file: ${base}-ca.pem`, `chain_file: ${base}-chain.pem`, 'pool_size: 2', '',
  ].join('\n'));
  return { config, env: { TAS_CERT_PLUGIN: 'tas_cert_pkcs11', TAS_CERT_CONFIG_FILE: config }, tokenLabel, pin };
}

/** keyAttributes reads the CA key's attributes through PKCS#11 directly (not through the plugin). */
function keyAttributes(s: Setup): { extractable: boolean; sensitive: boolean; valueError: string } {
  const hsm = softHsm();
  const p11 = acquireModule(hsm.module);
  try {
    const slot = p11.C_GetSlotList(true).find((x) => p11.C_GetTokenInfo(x).label.trim() === s.tokenLabel)!;
    const sess = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    try {
      try {
        p11.C_Login(sess, pkcs11js.CKU_USER, s.pin);
      } catch (e) {
        if ((e as pkcs11js.Pkcs11Error).code !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw e;
      }
      p11.C_FindObjectsInit(sess, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: 'tas-issuing-ca' }]);
      const [h] = p11.C_FindObjects(sess, 2);
      p11.C_FindObjectsFinal(sess);
      const a = p11.C_GetAttributeValue(sess, h!, [{ type: pkcs11js.CKA_EXTRACTABLE }, { type: pkcs11js.CKA_SENSITIVE }]);
      let valueError = 'none';
      try {
        p11.C_GetAttributeValue(sess, h!, [{ type: pkcs11js.CKA_VALUE }]);
      } catch (e) {
        valueError = (e as Error).message;
      }
      return { extractable: (a[0]!.value as Buffer)[0] === 1, sensitive: (a[1]!.value as Buffer)[0] === 1, valueError };
    } finally {
      p11.C_CloseSession(sess);
    }
  } finally {
    releaseModule(hsm.module);
  }
}

/** cliEnv adds the API keys every configuration needs (the CLI reads the whole configuration). */
const cliEnv = (s: Setup): Record<string, string> => ({ ...s.env, TAS_API_KEY: CLIENT_KEY, TAS_MANAGEMENT_API_KEY: MGMT_KEY });

const SETTINGS: CertSettings = {
  trustDomain: 'hsm.test', validitySeconds: 300, skewSeconds: 90, maxCsrBytes: 10000, allowedKeyTypes: ['RSA', 'EC'],
  digestMaxEntries: 17, digestMaxBytes: 4096, oidRoot: '1.3.6.1.4.1.65993',
};

describe('tas_cert_pkcs11 (SoftHSM2): CA key inside the token, C_Sign', function () {
  this.timeout(180_000);
  let ec: Setup;
  let rsa: Setup;
  let lab: Lab | undefined;
  // SoftHSM reads its token list at C_Initialize: every token exists before the library is loaded.
  before(() => {
    ec = setup('tas-ca-ec');
    rsa = setup('tas-ca-rsa');
  });
  after(async () => lab?.close());

  it('tas cert ca init generates a non-extractable EC P-384 issuing key in the token and signs its certificate with a new offline root', async () => {
    const root = join(workDir(), 'ec-root');
    const r = await tasInProcess(['cert', 'ca', 'init', '--new-root', '--root-key', `${root}.key`, '--root-cert', `${root}.pem`, '--format', 'json'], cliEnv(ec));
    assert.equal(r.code, 0, r.err);
    const out = JSON.parse(r.out) as Record<string, unknown>;
    assert.equal(out.plugin, 'tas_cert_pkcs11');
    assert.equal(out.CKA_EXTRACTABLE, false);
    assert.equal(out.CKA_SENSITIVE, true);
    assert.match(String((out.issuing_ca as Record<string, unknown>).key), /secp384r1/);
    const attrs = keyAttributes(ec);
    assert.equal(attrs.extractable, false);
    assert.equal(attrs.sensitive, true);
    assert.match(attrs.valueError, /CKR_ATTRIBUTE_SENSITIVE/);
    // Running it again refuses to replace the key or the files.
    const again = await tasInProcess(['cert', 'ca', 'init', '--root-key', `${root}.key`, '--root-cert', `${root}.pem`], cliEnv(ec));
    assert.equal(again.code, 2);
    assert.match(again.err, /exists/);
  });

  it('tas cert ca show self-tests the signer (a probe signed by C_Sign verifies under the CA certificate)', async () => {
    const r = await tasInProcess(['cert', 'ca', 'show', '--format', 'json'], cliEnv(ec));
    assert.equal(r.code, 0, r.err + r.out);
    const out = JSON.parse(r.out) as Record<string, unknown>;
    assert.equal(out.self_test, 'ok');
    assert.equal(out.suite, 'ecdsa-sha384');
    assert.equal(out.mechanism, 'CKM_ECDSA');
    assert.equal(out.CKA_EXTRACTABLE, false);
    assert.ok(Number(out.c_sign_calls) >= 1);
    assert.equal((out.chain as unknown[]).length, 2);
  });

  it('the daemon issues certificates through the token: each issuance is one more C_Sign, and openssl verifies them', async () => {
    lab = await createLab({ products: ['Genoa'], env: { ...ec.env, TAS_CERT_ENABLED: 'true', TAS_CERT_TRUST_DOMAIN: 'hsm.test' } });
    assert.equal((await storePolicy(lab, policyDoc('db'))).status, 201);
    const base = lab.daemon.urls.main;
    const signs = async (): Promise<number> => {
      const st = (await (await fetch(`${base}/management/status`, { headers: { 'x-management-api-key': MGMT_KEY } })).json()) as Record<string, Record<string, unknown>>;
      assert.equal(st.cert_signer!.CKA_EXTRACTABLE, false);
      return Number(st.cert_signer!.c_sign_calls);
    };
    const before = await signs();
    for (let i = 0; i < 3; i++) {
      const csr = makeCsr(newKey('ec-p256'), { subj: `/CN=db-${i}` });
      const nonce = await alphaNonce(base);
      const r = await postCertify(base, { nonce, evidence: lab.kits.Genoa.signReport({ reportData: bindingReportData(nonce, csr.bindingKey) }), csr: csr.pem, domain: 'db' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.match(opensslVerify(r.body.certificate as string, r.body.ca_bundle as string), /OK/);
      assert.match(x509Text(r.body.certificate as string), /URI:spiffe:\/\/hsm\.test\/db\//);
    }
    assert.equal(await signs(), before + 3);
    // The login state belongs to the process: close this daemon before the wrong-PIN case.
    await lab.close();
    lab = undefined;
  });

  it('RSA-3072 CA key in the token signs with CKM_SHA256_RSA_PKCS_PSS; openssl verifies the RSA-PSS certificate', async () => {
    const root = join(workDir(), 'rsa-root');
    const r = await tasInProcess(['cert', 'ca', 'init', '--new-root', '--key-type', 'RSA', '--root-key', `${root}.key`, '--root-cert', `${root}.pem`, '--format', 'json'], cliEnv(rsa));
    assert.equal(r.code, 0, r.err);
    assert.equal(keyAttributes(rsa).extractable, false);
    const signer = await plugin.open(rsa.config, { log });
    const svc = new SignerService(signer, log);
    try {
      await svc.start();
      assert.equal(await svc.readiness(), undefined);
      assert.equal((await signer.describe!()).mechanism, 'CKM_SHA256_RSA_PKCS_PSS');
      const issuer = new CertIssuer(svc, () => SETTINGS);
      const csr = makeCsr(newKey('ec-p384'), { subj: '/CN=rsa-issued', sans: 'DNS:rsa-issued.example' });
      const issued = await issuer.issue({
        csr: sanitizeCsr(Buffer.from(csr.pem), { allowedKeyTypes: ['EC'], maxBytes: 10000 }), policyDomain: 'db', spiffeUuid: issuer.newUuid(),
        policyDigest: Buffer.alloc(64, 1), platforms: ['amd-sev-snp'], evidence: [{ platformId: 'amd-sev-snp', role: 'cpu', evidenceType: 'sev-snp-report', raw: Buffer.from('r') }], now: new Date(),
      });
      assert.match(opensslVerify(issued.reply.certificate, issued.reply.ca_bundle), /OK/);
      const text = x509Text(issued.reply.certificate);
      assert.match(text, /Signature Algorithm: rsassaPss/);
      assert.match(text, /Hash Algorithm: sha256/);
      assert.match(text, /Salt Length: 0x20/);
      assert.ok(new X509Certificate(issued.reply.certificate).verify(new X509Certificate(issued.reply.ca_chain[0]!).publicKey));
    } finally {
      await svc.close();
    }
  });

  it('a wrong PIN leaves certify not-ready with the reason (503, never retried); the daemon still serves get_nonce', async () => {
    const wrong = setup('tas-ca-ec', { wrongPin: true, reuse: ec });
    const bad = await createLab({ products: ['Genoa'], env: { ...wrong.env, TAS_CERT_ENABLED: 'true' } });
    try {
      const base = bad.daemon.urls.main;
      assert.equal((await storePolicy(bad, policyDoc('db'))).status, 201);
      const ready = await fetch(`${base}/readyz`);
      assert.equal(ready.status, 503);
      assert.match(await ready.text(), /cert_signer/);
      const st = await (await fetch(`${base}/management/status`, { headers: { 'x-management-api-key': MGMT_KEY } })).text();
      assert.match(st, /refused the PIN/);
      assert.match(st, /CKR_PIN_INCORRECT/);
      const csr = makeCsr(newKey('ec-p256'));
      const nonce = await alphaNonce(base);
      const r = await postCertify(base, { nonce, evidence: bad.kits.Genoa.signReport({ reportData: bindingReportData(nonce, csr.bindingKey) }), csr: csr.pem, domain: 'db' });
      assert.equal(r.status, 503);
      assert.deepEqual(r.body, { error: 'Certificate signing unavailable' });
      assert.ok(Number(r.headers.get('retry-after')) > 0);
      assert.equal((await fetch(`${base}/alphav1/ca-bundle`)).status, 503);
      assert.equal((await fetch(`${base}/kb/v0/get_nonce`, { headers: { 'x-api-key': CLIENT_KEY } })).status, 200);
      assert.match(JSON.stringify(bad.daemon.audit.records.filter((x) => x.event === 'certify').at(-1)), /CERT_SIGNER/);
    } finally {
      await bad.close();
    }
  });
});
