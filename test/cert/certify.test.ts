/**
 * certify end to end over HTTP (PROTOCOL.md §2.2): the real daemon composition with
 * TAS_CERT_ENABLED, tas_cert_local in lab mode, fresh nonce-bound SNP reports from the fake AMD
 * signer, CSRs made by the openssl CLI. Issued certificates are checked with `openssl verify`
 * against the served bundle and `openssl x509 -text`; renewal, refusals, statuses, audit reasons
 * and nonce semantics as for get_secret.
 */
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  assembleCertificate, buildTbs, keyIdentifier, leafExtensions, makeRoot, newCaKey, newSerial, signLocal, suiteForKey,
  viewCertificate, evidenceDigests, OID,
} from '../../src/cert';
import { parse, children, pem } from '../../src/cert/der';
import { jcs, signPolicy } from '../../src/policy';
import { alphaNonce, bindingReportData, makeCsr, newKey, opensslVerify, postCertify, splitPem, workDir, x509Text, type AgentCsr } from '../support/certify';
import { CLIENT_KEY, MGMT_KEY } from '../support/daemon';
import { createLab, policyDoc, storePolicy, type Lab } from '../support/lab';

const TD = 'tas.test';
const CERT_DIR = join(workDir(), 'ca');

function labEnv(): Record<string, string> {
  mkdirSync(CERT_DIR, { recursive: true, mode: 0o700 });
  const cfg = join(CERT_DIR, 'cert.yaml');
  writeFileSync(cfg, ['key_type: EC', `root_key_file: ${join(CERT_DIR, 'root.key')}`, `root_cert_file: ${join(CERT_DIR, 'root.pem')}`, `ca_key_file: ${join(CERT_DIR, 'ca.key')}`, `ca_cert_file: ${join(CERT_DIR, 'ca.pem')}`, ''].join('\n'));
  return { TAS_CERT_ENABLED: 'true', TAS_CERT_CONFIG_FILE: cfg, TAS_CERT_TRUST_DOMAIN: TD };
}

function certRecords(lab: Lab): Array<Record<string, unknown>> {
  return lab.daemon.audit.records.filter((r) => r.event === 'certify') as unknown as Array<Record<string, unknown>>;
}

function extensionValue(certPem: string, oid: string): Buffer | undefined {
  const der = new X509Certificate(certPem).raw;
  return viewCertificate(der).extensions.get(oid)?.value;
}

function spiffeOf(certPem: string): string[] {
  const san = extensionValue(certPem, OID.subjectAltName)!;
  return children(parse(san)).filter((g) => g.tag === 0x86).map((g) => g.content.toString('latin1'));
}

describe('certify: attested workload certificates end to end (SNP, tas_cert_local)', function () {
  this.timeout(180_000);
  let lab: Lab;
  let base: string;
  let webPolicy: Record<string, unknown>;

  before(async () => {
    lab = await createLab({ env: labEnv(), products: ['Genoa'] });
    base = lab.daemon.urls.main;
    webPolicy = signPolicy(policyDoc('web'), lab.policyKey) as Record<string, unknown>;
    const r = await fetch(`${base}/management/policy/v0/store`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-management-api-key': MGMT_KEY }, body: JSON.stringify(webPolicy),
    });
    assert.equal(r.status, 201);
    assert.equal((await storePolicy(lab, policyDoc('api'))).status, 201);
    assert.equal((await storePolicy(lab, policyDoc('strict', { vmpl: { exact_match: 3 } }))).status, 201);
  });
  after(async () => lab?.close());

  /** issue runs one attested request for csr; the report binds bindKey (default: the CSR's key). */
  async function issue(csr: AgentCsr, domain = 'web', opts: { renew?: string; bindKey?: Buffer; nonce?: string; csrBytes?: Buffer | string } = {}) {
    const nonce = opts.nonce ?? (await alphaNonce(base));
    const report = lab.kits.Genoa.signReport({ reportData: bindingReportData(nonce, opts.bindKey ?? csr.bindingKey) });
    const r = await postCertify(base, { nonce, evidence: report, csr: opts.csrBytes ?? csr.pem, domain, ...(opts.renew ? { renew: opts.renew } : {}) });
    return { ...r, nonce, report };
  }

  it('issues a certificate to a fresh SNP report that openssl verifies against the served bundle, with the documented profile', async () => {
    const csr = makeCsr(newKey('ec-p256'), { subj: '/CN=web-1.example/O=ignored', sans: 'DNS:web-1.example,DNS:bad_name!,IP:10.0.0.7,IP:2001:db8::1,email:ops@example.org,URI:spiffe://evil.example/x' });
    const r = await issue(csr);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const { certificate, ca_chain: chain, ca_bundle: bundle } = r.body as { certificate: string; ca_chain: string[]; ca_bundle: string };
    assert.equal(chain.length, 2);
    assert.equal(bundle, chain.join(''));
    // The served bundle is the same text.
    const served = await fetch(`${base}/alphav1/ca-bundle`);
    assert.equal(served.status, 200);
    assert.match(served.headers.get('content-type') ?? '', /pem-certificate-chain/);
    const servedText = await served.text();
    assert.equal(servedText, bundle);
    assert.equal(splitPem(servedText)[1], readFileSync(join(CERT_DIR, 'root.pem'), 'latin1'));

    const out = opensslVerify(certificate, servedText);
    assert.match(out, /OK/);
    const text = x509Text(certificate);
    const uri = spiffeOf(certificate);
    assert.equal(uri.length, 1);
    assert.match(uri[0]!, new RegExp(`^spiffe://${TD.replace('.', '\\.')}/web/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`));
    assert.match(text, /Subject: CN = web-1\.example\n/);
    assert.match(text, /X509v3 Basic Constraints: critical\n\s+CA:FALSE/);
    assert.match(text, /X509v3 Key Usage: critical\n\s+Digital Signature\n/);
    assert.match(text, /X509v3 Extended Key Usage: \n\s+TLS Web Client Authentication, TLS Web Server Authentication/);
    assert.match(text, /X509v3 Subject Key Identifier/);
    assert.match(text, /X509v3 Authority Key Identifier/);
    assert.match(text, new RegExp(`X509v3 Subject Alternative Name: \\n\\s+URI:spiffe://${TD.replace('.', '\\.')}/web/[-0-9a-f]+, DNS:web-1\\.example, IP Address:10\\.0\\.0\\.7, IP Address:2001:DB8:0:0:0:0:0:1, email:ops@example\\.org\\n`));
    assert.doesNotMatch(text, /evil|bad_name|O = ignored/);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA384/);
    // Validity: notBefore backdated by the skew (90 s), lifetime 300 s after issuance.
    const x = new X509Certificate(certificate);
    const span = (Date.parse(x.validTo) - Date.parse(x.validFrom)) / 1000;
    assert.equal(span, 390);

    // Attestation extensions under TAS_OID_ROOT.
    const root = '1.3.6.1.4.1.65993';
    assert.equal(parse(extensionValue(certificate, `${root}.1`)!).content.toString(), 'web');
    const digest = parse(extensionValue(certificate, `${root}.2`)!).content;
    assert.deepEqual(digest, createHash('sha512').update(jcs(webPolicy)).digest());
    assert.equal(parse(extensionValue(certificate, `${root}.3`)!).content.toString(), '["amd-sev-snp"]');
    const at = parse(extensionValue(certificate, `${root}.4`)!);
    assert.equal(at.tag, 0x18);
    assert.ok(Math.abs(Date.parse(x.validFrom) + 90_000 - Date.UTC(+at.content.toString().slice(0, 4), +at.content.toString().slice(4, 6) - 1, +at.content.toString().slice(6, 8), +at.content.toString().slice(8, 10), +at.content.toString().slice(10, 12), +at.content.toString().slice(12, 14))) <= 1000);
    const ev = JSON.parse(parse(extensionValue(certificate, `${root}.5`)!).content.toString());
    assert.deepEqual(ev, { entries: [{ digest: createHash('sha512').update(r.report).digest('hex'), digest_alg: 'sha-512', evidence_type: 'sev-snp-report', platform_id: 'amd-sev-snp', role: 'cpu' }], version: 1 });
    // The certificate's key is the CSR's.
    assert.deepEqual(x.publicKey.export({ type: 'spki', format: 'der' }), createPublicKey(readFileSync(csr.keyFile)).export({ type: 'spki', format: 'der' }));

    const rec = certRecords(lab).at(-1)!;
    assert.equal(rec.outcome, 'allow');
    assert.equal(rec.reason, 'ISSUED');
    const d = rec.details as Record<string, unknown>;
    assert.equal(d.policy_id, 'web');
    assert.equal(d.spiffe_id, uri[0]);
    assert.deepEqual(d.csr_sans_dropped, { uri: 1, dns: 1, ip: 0, email: 0, other: 0 });
  });

  it('RSA-3072 CSR keys are bound as PKCS#1 RSAPublicKey (the agent) and P-384 as SPKI', async () => {
    for (const spec of ['rsa-3072', 'ec-p384'] as const) {
      const r = await issue(makeCsr(newKey(spec), { subj: '/CN=svc' }));
      assert.equal(r.status, 200, `${spec}: ${JSON.stringify(r.body)}`);
      opensslVerify(r.body.certificate as string, r.body.ca_bundle as string);
    }
  });

  it('accepts a DER CSR and the domain-policy spelling; a CSR without CN gets tas.<hex>', async () => {
    const csr = makeCsr(newKey('ec-p256'), { subj: '/O=no-cn' });
    const nonce = await alphaNonce(base);
    const report = lab.kits.Genoa.signReport({ reportData: bindingReportData(nonce, csr.bindingKey) });
    const r = await fetch(`${base}/alphav1/certify`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': CLIENT_KEY },
      body: JSON.stringify({ 'tee-type': 'amd-sev-snp', nonce, 'tee-evidence': report.toString('base64'), csr: csr.der.toString('base64'), 'domain-policy': 'web' }),
    });
    const body = (await r.json()) as { certificate: string };
    assert.equal(r.status, 200, JSON.stringify(body));
    assert.match(x509Text(body.certificate), /Subject: CN = tas\.[0-9a-f]{8}\n/);
  });

  it('renewal after fresh attestation keeps the SPIFFE ID; another key, domain, an expired or a foreign certificate is refused (400)', async () => {
    const key = newKey('ec-p256');
    const first = await issue(makeCsr(key));
    assert.equal(first.status, 200);
    const cert = first.body.certificate as string;
    const renewed = await issue(makeCsr(key), 'web', { renew: cert });
    assert.equal(renewed.status, 200, JSON.stringify(renewed.body));
    assert.deepEqual(spiffeOf(renewed.body.certificate as string), spiffeOf(cert));
    assert.notEqual(new X509Certificate(renewed.body.certificate as string).serialNumber, new X509Certificate(cert).serialNumber);
    assert.equal((certRecords(lab).at(-1)!.details as Record<string, unknown>).renewal, true);

    const refusals: Array<[string, () => Promise<{ status: number; body: Record<string, unknown>; nonce: string }>]> = [
      ['RENEWAL_KEY_MISMATCH', () => issue(makeCsr(newKey('ec-p256')), 'web', { renew: cert })],
      ['RENEWAL_DOMAIN_MISMATCH', () => issue(makeCsr(key), 'api', { renew: cert })],
      ['RENEWAL_EXPIRED', () => issue(makeCsr(key), 'web', { renew: expiredTwin(cert) })],
      ['RENEWAL_FOREIGN_CA', () => issue(makeCsr(key), 'web', { renew: foreignTwin(cert) })],
      ['RENEWAL_NOT_LEAF', () => issue(makeCsr(key), 'web', { renew: readFileSync(join(CERT_DIR, 'ca.pem'), 'latin1') })],
      ['RENEWAL_MALFORMED', () => issue(makeCsr(key), 'web', { renew: 'not a certificate' })],
    ];
    for (const [reason, run] of refusals) {
      const r = await run();
      assert.equal(r.status, 400, reason);
      assert.deepEqual(r.body, { error: 'Certificate renewal refused' });
      assert.equal(certRecords(lab).at(-1)!.reason, reason);
      // Refused before any state changed: the nonce is still good for a plain issuance.
      const again = await issue(makeCsr(key), 'web', { nonce: r.nonce });
      assert.equal(again.status, 200, `${reason}: nonce kept`);
    }
  });

  it('refusals: replay, unbound CSR key, bad CSR signature, weak keys, oversize CSR, unknown domain, failed rules — each with its status, text and audit reason', async () => {
    const key = newKey('ec-p256');
    const csr = makeCsr(key);
    // Replay: 403 with the original's text.
    const ok = await issue(csr);
    assert.equal(ok.status, 200);
    const replay = await postCertify(base, { nonce: ok.nonce, evidence: ok.report, csr: csr.pem, domain: 'web' });
    assert.equal(replay.status, 403);
    assert.deepEqual(replay.body, { error: 'Invalid or expired nonce' });
    assert.equal(certRecords(lab).at(-1)!.reason, 'NONCE_INVALID');

    // Unbound CSR key: REPORT_DATA binds another key; definitive, the nonce is burnt.
    const unbound = await issue(csr, 'web', { bindKey: makeCsr(newKey('ec-p256')).bindingKey });
    assert.equal(unbound.status, 403);
    assert.deepEqual(unbound.body, { error: 'TEE verification failed' });
    assert.equal(certRecords(lab).at(-1)!.reason, 'REPORT_DATA_MISMATCH');
    assert.equal((await issue(csr, 'web', { nonce: unbound.nonce })).status, 403, 'nonce consumed after a failed attestation');

    // Unknown domain and failed rules: 403, nonce consumed.
    const unknown = await issue(csr, 'no-such-domain');
    assert.equal(unknown.status, 403);
    assert.equal(certRecords(lab).at(-1)!.reason, 'POLICY_NOT_FOUND');
    const strict = await issue(csr, 'strict');
    assert.equal(strict.status, 403);
    assert.equal(certRecords(lab).at(-1)!.reason, 'POLICY_RULES_FAILED');

    // CSR refusals: 400 `Invalid CSR`, nonce kept.
    const der = Buffer.from(csr.der);
    der[der.length - 5] ^= 0x01;
    const rsa2048 = makeCsr(newKey('rsa-2048'));
    const p521 = makeCsr(newKey('ec-p521'));
    const ed = makeCsr(newKey('ed25519'));
    const big = makeCsr(key, { addext: [`nsComment=${'x'.repeat(11000)}`] });
    const cases: Array<[string, AgentCsr, Buffer | string]> = [
      ['CSR_SIGNATURE_INVALID', csr, der],
      ['CSR_KEY_WEAK', rsa2048, rsa2048.pem],
      ['CSR_KEY_WEAK', p521, p521.pem],
      ['CSR_KEY_TYPE_NOT_ALLOWED', ed, ed.pem],
      ['CSR_TOO_LARGE', big, big.pem],
      ['CSR_MALFORMED', csr, Buffer.from('garbage')],
    ];
    for (const [reason, c, bytes] of cases) {
      const r = await issue(c, 'web', { csrBytes: bytes });
      assert.equal(r.status, 400, `${reason}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(r.body, { error: 'Invalid CSR' });
      assert.equal(certRecords(lab).at(-1)!.reason, reason);
      const again = await issue(csr, 'web', { nonce: r.nonce });
      assert.equal(again.status, 200, `${reason}: nonce kept after a CSR refusal`);
    }
    const badCn = makeCsr(key, { subj: '/CN=has space' });
    const cn = await issue(badCn);
    assert.equal(cn.status, 400);
    assert.equal(certRecords(lab).at(-1)!.reason, 'CSR_SUBJECT_INVALID');
  });

  it('two concurrent requests with one nonce: exactly one certificate is issued, the other gets 403', async () => {
    const csr = makeCsr(newKey('ec-p256'));
    const nonce = await alphaNonce(base);
    const report = lab.kits.Genoa.signReport({ reportData: bindingReportData(nonce, csr.bindingKey) });
    const rs = await Promise.all([0, 1, 2].map(() => postCertify(base, { nonce, evidence: report, csr: csr.pem, domain: 'web' })));
    assert.deepEqual(rs.map((r) => r.status).sort(), [200, 403, 403]);
  });

  it('GET /alphav1/nonce needs the client key; the bundle needs none', async () => {
    assert.equal((await fetch(`${base}/alphav1/nonce`)).status, 401);
    assert.equal((await fetch(`${base}/alphav1/ca-bundle`)).status, 200);
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
  });

  /** expiredTwin re-issues cert's TBS with a validity in the past, signed by the real lab CA key. */
  function expiredTwin(certPem: string): string {
    return twin(certPem, createPrivateKey(readFileSync(join(CERT_DIR, 'ca.key'))), readFileSync(join(CERT_DIR, 'ca.pem'), 'latin1'), new Date(Date.now() - 7200_000), new Date(Date.now() - 3600_000));
  }

  /** foreignTwin is the same certificate from another CA with the same name. */
  function foreignTwin(certPem: string): string {
    const k = newCaKey('EC');
    const caPem = pem('CERTIFICATE', makeRoot(k.privateKey, 'tas lab issuing CA', 1));
    return twin(certPem, k.privateKey, caPem, new Date(Date.now() - 60_000), new Date(Date.now() + 300_000));
  }

  function twin(certPem: string, caKey: ReturnType<typeof createPrivateKey>, caPem: string, nb: Date, na: Date): string {
    const v = viewCertificate(new X509Certificate(certPem).raw);
    const ca = viewCertificate(new X509Certificate(caPem).raw);
    const suite = suiteForKey(createPublicKey(caKey));
    const uri = spiffeOf(certPem)[0]!;
    const tbs = buildTbs({
      serial: newSerial(), suite, issuer: ca.subject, notBefore: nb, notAfter: na, subject: v.subject, spki: v.spki,
      extensions: leafExtensions({
        spki: v.spki, issuerKeyId: keyIdentifier(ca.spki), spiffeId: uri, dns: [], ips: [], emails: [], oidRoot: '1.3.6.1.4.1.65993',
        policyDomain: 'web', policyDigest: Buffer.alloc(64), platforms: ['amd-sev-snp'], attestedAt: nb,
        evidenceDigests: evidenceDigests([{ platformId: 'amd-sev-snp', evidenceType: 'sev-snp-report', role: 'cpu', raw: Buffer.from('x') }], { maxEntries: 17, maxBytes: 4096 }),
      }),
    });
    return pem('CERTIFICATE', assembleCertificate(tbs, suite, signLocal(suite, caKey, tbs)));
  }
});

describe('certify: off by default', function () {
  this.timeout(120_000);
  let lab: Lab;
  before(async () => {
    lab = await createLab({ products: ['Genoa'] });
  });
  after(async () => lab?.close());

  it('without TAS_CERT_ENABLED the routes are absent (404)', async () => {
    const base = lab.daemon.urls.main;
    assert.equal((await fetch(`${base}/alphav1/nonce`, { headers: { 'x-api-key': CLIENT_KEY } })).status, 404);
    assert.equal((await fetch(`${base}/alphav1/ca-bundle`)).status, 404);
    const r = await fetch(`${base}/alphav1/certify`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': CLIENT_KEY }, body: '{}' });
    assert.equal(r.status, 404);
    // get_nonce still works: the gate is only on the certify routes.
    assert.equal((await fetch(`${base}/kb/v0/get_nonce`, { headers: { 'x-api-key': CLIENT_KEY } })).status, 200);
  });
});
