/**
 * certify with Intel TDX evidence end to end: a fresh TD quote from the fake Intel DCAP signer
 * (its root trusted only through TAS_TDX_EXTRA_TRUST_DIR, collateral from a fake PCS), REPORT_DATA
 * binding the CSR key, a signed TDX policy for the domain. The certificate verifies with openssl
 * against the served bundle and records intel-tdx as the verified platform; a SEV policy for a TDX
 * quote is refused; renewal with a fresh quote keeps the SPIFFE ID; PCS down with nothing cached is
 * 503 + Retry-After and the nonce survives.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { viewCertificate } from '../../src/cert';
import { parse } from '../../src/cert/der';
import { FakeIntel } from '../support/fake-intel';
import { FakePcs } from '../support/fake-pcs';
import { alphaNonce, bindingReportData, makeCsr, newKey, opensslVerify, postCertify, workDir, x509Text } from '../support/certify';
import { createLab, policyDoc, storePolicy, type Lab } from '../support/lab';

describe('certify: TDX quote end to end (fake Intel DCAP signer, fake PCS, tas_cert_local)', function () {
  this.timeout(180_000);
  let lab: Lab;
  let pcs: FakePcs;
  let kit: FakeIntel;
  const mrTd = createHash('sha384').update('certify-td').digest();

  before(async () => {
    kit = FakeIntel.create();
    pcs = await new FakePcs().start();
    pcs.serveCollateral({ fmspc: kit.sgx.fmspc, ...kit.collateral() });
    const d = join(workDir(), 'tdx-ca');
    mkdirSync(d, { recursive: true, mode: 0o700 });
    writeFileSync(join(d, 'cert.yaml'), ['key_type: EC', `root_key_file: ${d}/root.key`, `root_cert_file: ${d}/root.pem`, `ca_key_file: ${d}/ca.key`, `ca_cert_file: ${d}/ca.pem`, ''].join('\n'));
    kit.writeTrustDir(join(d, 'intel-trust'));
    lab = await createLab({
      products: ['Genoa'],
      env: {
        TAS_CERT_ENABLED: 'true', TAS_CERT_CONFIG_FILE: join(d, 'cert.yaml'), TAS_CERT_TRUST_DOMAIN: 'td.test',
        TAS_TDX_EXTRA_TRUST_DIR: join(d, 'intel-trust'), TAS_PCS_BASE_URL: pcs.url, TAS_PCS_ROOT_CRL_URL: pcs.rootCrlUrl,
      },
    });
    assert.equal((await storePolicy(lab, policyDoc('td', { body: { mr_td: { exact_match: mrTd.toString('hex') } } }, { policy_type: 'TDX' }))).status, 201);
    assert.equal((await storePolicy(lab, policyDoc('sev-only'))).status, 201);
  });
  after(async () => {
    await lab?.close();
    await pcs?.stop();
  });

  // First: nothing is cached yet. Nonce semantics as for get_secret: a transient failure keeps it.
  it('PCS down with no collateral cached: 503 + Retry-After, nonce kept; the same request succeeds once PCS is back', async () => {
    const base = lab.daemon.urls.main;
    const csr = makeCsr(newKey('ec-p256'));
    const nonce = await alphaNonce(base);
    const call = { teeType: 'intel-tdx', nonce, evidence: kit.quote({ reportData: bindingReportData(nonce, csr.bindingKey), mrTd }), csr: csr.pem, domain: 'td' };
    const port = pcs.port;
    await pcs.stop();
    const r = await postCertify(base, call);
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    assert.equal(lab.daemon.audit.records.filter((x) => x.event === 'certify').at(-1)!.reason, 'PCS_UNAVAILABLE');
    await pcs.start(port);
    const again = await postCertify(base, call);
    assert.equal(again.status, 200, JSON.stringify(again.body));
  });

  it('renewal with a fresh TDX quote keeps the SPIFFE ID; another key is refused', async () => {
    const base = lab.daemon.urls.main;
    const key = newKey('ec-p256');
    const certify = async (renew?: string, k = key) => {
      const csr = makeCsr(k);
      const nonce = await alphaNonce(base);
      return postCertify(base, { teeType: 'intel-tdx', nonce, evidence: kit.quote({ reportData: bindingReportData(nonce, csr.bindingKey), mrTd }), csr: csr.pem, domain: 'td', ...(renew ? { renew } : {}) });
    };
    const first = await certify();
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const spiffe = (pem: string) => /URI:(spiffe:\/\/[^,\s]+)/.exec(x509Text(pem))![1];
    const renewed = await certify(first.body.certificate as string);
    assert.equal(renewed.status, 200, JSON.stringify(renewed.body));
    assert.equal(spiffe(renewed.body.certificate as string), spiffe(first.body.certificate as string));
    const other = await certify(first.body.certificate as string, newKey('ec-p256'));
    assert.equal(other.status, 400);
    assert.equal(lab.daemon.audit.records.filter((x) => x.event === 'certify').at(-1)!.reason, 'RENEWAL_KEY_MISMATCH');
  });

  it('issues a certificate to a fresh TDX quote; openssl verifies it against the served bundle; platforms say intel-tdx', async () => {
    const base = lab.daemon.urls.main;
    const csr = makeCsr(newKey('rsa-3072'), { subj: '/CN=td-1', sans: 'DNS:td-1.example' });
    const nonce = await alphaNonce(base);
    const quote = kit.quote({ reportData: bindingReportData(nonce, csr.bindingKey), mrTd });
    const r = await postCertify(base, { teeType: 'intel-tdx', nonce, evidence: quote, csr: csr.pem, domain: 'td' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const bundle = await (await fetch(`${base}/alphav1/ca-bundle`)).text();
    assert.match(opensslVerify(r.body.certificate as string, bundle), /OK/);
    assert.match(x509Text(r.body.certificate as string), /URI:spiffe:\/\/td\.test\/td\/[-0-9a-f]{36}, DNS:td-1\.example/);
    const ext = viewCertificate(new X509Certificate(r.body.certificate as string).raw).extensions;
    assert.equal(parse(ext.get('1.3.6.1.4.1.65993.3')!.value).content.toString(), '["intel-tdx"]');
    const ev = JSON.parse(parse(ext.get('1.3.6.1.4.1.65993.5')!.value).content.toString()) as { entries: Array<Record<string, string>> };
    assert.deepEqual(ev.entries.map((e) => [e.platform_id, e.evidence_type, e.digest]), [['intel-tdx', 'tdx-report', createHash('sha512').update(quote).digest('hex')]]);
    const rec = lab.daemon.audit.records.filter((x) => x.event === 'certify').at(-1)!;
    assert.equal(rec.reason, 'ISSUED');
    assert.equal(rec.details?.tee_type, 'intel-tdx');
  });

  it('a SEV policy domain for a TDX quote, and an unbound CSR key, are refused (403)', async () => {
    const base = lab.daemon.urls.main;
    const csr = makeCsr(newKey('ec-p256'));
    let nonce = await alphaNonce(base);
    let r = await postCertify(base, { teeType: 'intel-tdx', nonce, evidence: kit.quote({ reportData: bindingReportData(nonce, csr.bindingKey), mrTd }), csr: csr.pem, domain: 'sev-only' });
    assert.equal(r.status, 403);
    assert.equal(lab.daemon.audit.records.filter((x) => x.event === 'certify').at(-1)!.reason, 'POLICY_TYPE_MISMATCH');
    nonce = await alphaNonce(base);
    r = await postCertify(base, { teeType: 'intel-tdx', nonce, evidence: kit.quote({ reportData: bindingReportData(nonce, makeCsr(newKey('ec-p256')).bindingKey), mrTd }), csr: csr.pem, domain: 'td' });
    assert.equal(r.status, 403);
    assert.equal(lab.daemon.audit.records.filter((x) => x.event === 'certify').at(-1)!.reason, 'REPORT_DATA_MISMATCH');
  });
});
