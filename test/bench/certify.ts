/**
 * Benchmark of certify against get_secret in the same run: attested requests per second over
 * real HTTP against the real daemon composition (in this process, embedded store), each with a
 * fresh nonce and a fresh nonce-bound SNP report from the fake AMD signer, at one concurrency:
 *
 *   get_secret              mock key broker (the reference)
 *   certify tas_cert_local  CA key in a file (ECDSA P-384 by node:crypto on the thread pool)
 *   certify tas_cert_pkcs11 CA key in SoftHSM2 (C_Sign, CKM_ECDSA P-384)
 *
 * The client (report signing, HTTP) runs in the same process for all three, so the ratios are
 * comparable; absolute rates depend on the machine. test/bench/certify.test.ts runs a short smoke.
 *
 * Run: `node --import tsx test/bench/certify.ts [seconds-per-case=10] [concurrency=4]`
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { makeIssuing, makeRoot, newCaKey, viewCertificate } from '../../src/cert';
import { plugin as pkcs11Plugin } from '../../plugins/tas_cert_pkcs11';
import { alphaNonce, bindingReportData, makeCsr, newKey, postCertify, workDir } from '../support/certify';
import { agentKeys, createLab, getNonce, getSecret, policyDoc, reportData, storePolicy, type Lab } from '../support/lab';
import { softHsm } from '../support/softhsm';

export interface CaseResult {
  name: string;
  requests: number;
  perSecond: number;
  errors: number;
  firstError?: string;
}

async function drive(seconds: number, concurrency: number, one: () => Promise<number>): Promise<Omit<CaseResult, 'name'>> {
  // Warm-up outside the clock (VCEK fetched and cached, JIT, first sessions).
  for (let i = 0; i < 3; i++) await one().catch(() => undefined);
  let requests = 0;
  let errors = 0;
  let firstError: string | undefined;
  const until = Date.now() + seconds * 1000;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < until) {
      try {
        const status = await one();
        if (status === 200) requests++;
        else {
          errors++;
          firstError ??= `HTTP ${status}`;
        }
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
      }
    }
  }));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return { requests, perSecond: requests / s, errors, ...(firstError ? { firstError } : {}) };
}

function localEnv(): Record<string, string> {
  const d = join(workDir(), 'bench-local');
  mkdirSync(d, { recursive: true, mode: 0o700 });
  writeFileSync(join(d, 'cert.yaml'), ['key_type: EC', `root_key_file: ${d}/root.key`, `root_cert_file: ${d}/root.pem`, `ca_key_file: ${d}/ca.key`, `ca_cert_file: ${d}/ca.pem`, ''].join('\n'));
  return { TAS_CERT_ENABLED: 'true', TAS_CERT_CONFIG_FILE: join(d, 'cert.yaml') };
}

async function pkcs11Env(): Promise<Record<string, string>> {
  const hsm = softHsm();
  const pin = '135790';
  hsm.createToken('tas-bench-ca', pin, []);
  const d = join(workDir(), 'bench-pkcs11');
  mkdirSync(d, { recursive: true, mode: 0o700 });
  const cfg = join(d, 'cert.yaml');
  writeFileSync(cfg, [`module: ${hsm.module}`, 'token_label: tas-bench-ca', `pin_file: ${hsm.writeFile('bench.pin', pin)}`, 'key_label: bench-ca', `ca_cert_file: ${d}/ca.pem`, `chain_file: ${d}/chain.pem`, 'pool_size: 4', ''].join('\n'));
  const root = newCaKey('EC');
  const rootDer = makeRoot(root.privateKey, 'bench root', 2);
  const v = viewCertificate(rootDer);
  await pkcs11Plugin.provision!(cfg, { log: pino({ level: 'silent' }) }, {
    keyType: 'EC',
    certify: async (spki) => ({ caCert: makeIssuing({ key: root.privateKey, cert: rootDer, subject: v.subject, spki: v.spki }, spki, 'bench issuing', 1), chain: [rootDer] }),
  });
  return { TAS_CERT_ENABLED: 'true', TAS_CERT_PLUGIN: 'tas_cert_pkcs11', TAS_CERT_CONFIG_FILE: cfg };
}

async function certifyCase(lab: Lab, name: string, seconds: number, concurrency: number): Promise<CaseResult> {
  assert200(await storePolicy(lab, policyDoc('bench')));
  // One CSR for every request: the binding is per nonce (REPORT_DATA), the CSR check is per request.
  const csr = makeCsr(newKey('ec-p256'), { subj: '/CN=bench', sans: 'DNS:bench.example' });
  const base = lab.daemon.urls.main;
  const kit = lab.kits.Genoa;
  const r = await drive(seconds, concurrency, async () => {
    const nonce = await alphaNonce(base);
    return (await postCertify(base, { nonce, evidence: kit.signReport({ reportData: bindingReportData(nonce, csr.bindingKey) }), csr: csr.pem, domain: 'bench' })).status;
  });
  return { name, ...r };
}

function assert200(r: Response): void {
  if (r.status !== 201) throw new Error(`policy store: ${r.status}`);
}

/** runCertifyBench measures the three cases in one run. */
export async function runCertifyBench(opts: { seconds: number; concurrency: number }): Promise<CaseResult[]> {
  const out: CaseResult[] = [];
  // SoftHSM reads its tokens at C_Initialize: make the token before any daemon loads the library.
  const hsmEnv = await pkcs11Env();
  const lab = await createLab({ products: ['Genoa'], env: localEnv() });
  try {
    const keys = agentKeys();
    const wire = keys.wire;
    assert200(await storePolicy(lab, policyDoc('p-all')));
    const kit = lab.kits.Genoa;
    out.push({ name: 'get_secret (mock broker)', ...(await drive(opts.seconds, opts.concurrency, async () => {
      const nonce = await getNonce(lab);
      return (await getSecret(lab, { nonce, report: kit.signReport({ reportData: reportData(nonce, wire, true) }), keys, policyId: 'p-all' })).status;
    })) });
    out.push(await certifyCase(lab, 'certify tas_cert_local', opts.seconds, opts.concurrency));
  } finally {
    await lab.close();
  }
  const hsmLab = await createLab({ products: ['Genoa'], env: hsmEnv });
  try {
    out.push(await certifyCase(hsmLab, 'certify tas_cert_pkcs11 (SoftHSM)', opts.seconds, opts.concurrency));
  } finally {
    await hsmLab.close();
  }
  return out;
}

export function formatResults(rs: readonly CaseResult[]): string {
  const ref = rs[0]!.perSecond;
  return rs.map((r) => `${r.name.padEnd(36)} ${String(r.requests).padStart(6)} ok  ${r.perSecond.toFixed(1).padStart(7)}/s  ${(r.perSecond / ref).toFixed(2)} × get_secret${r.errors ? `  (${r.errors} errors; first: ${r.firstError})` : ''}`).join('\n');
}

if (require.main === module) {
  const seconds = Number(process.argv[2] ?? 10);
  const concurrency = Number(process.argv[3] ?? 4);
  runCertifyBench({ seconds, concurrency }).then((rs) => {
    console.log(`certify bench: ${seconds} s per case, concurrency ${concurrency}\n${formatResults(rs)}`);
    process.exit(0);
  }, (e) => {
    console.error(e);
    process.exit(3);
  });
}
