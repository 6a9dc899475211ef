/**
 * `tas policy keygen|sign|verify|export|import|test`: the policy signer's and operator's tools.
 *   keygen  RSA-3072/4096 key pair (private key 0600, PKCS#8 PEM; public key SPKI PEM)
 *   sign    adds `signature` (PSS salt 48 by default, or --padding pkcs1; JCS of the whole document)
 *   verify  checks documents against --trust (file or directory of PEM keys/certificates)
 *   export  writes every policy of the configured store to a file or directory, signatures kept
 *   import  re-verifies each document with the configured TAS_POLICY_TRUST, then stores it
 *   test    evaluates a policy against a report (verified with src/snp) or a claims JSON, offline
 * Exit codes: 0 ok, 1 a check failed (verification, rule, refused import), 2 usage, 3 internal.
 */
import { runQuoteVerify } from '../tdx/cli';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import pino from 'pino';
import { CliError, defineCommand, EXIT, group, openServiceStore, toolConfig, withFormat } from '../cli-kit';
import { isProduct, verifySnpEvidence } from '../snp';
import { writeSecretFile } from '../config/keys';
import { isTasError } from '../errors';
import { claimSchemaFor } from './claims-schema';
import { repoFromStore } from './index';
import { compileRules, evaluate, type Claims } from './rules';
import { isLegacySigned, parseDocument, policyTypeOf, type Dialect, type PolicyDocument } from './schema';
import { PolicyService, type PolicyRepo } from './service';
import { signPolicy, verifyDocumentSignature } from './signature';
import { loadTrust, PolicyTrust, TrustError } from './trust';

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CliError(EXIT.USAGE, `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CliError(EXIT.USAGE, `${path} is not JSON: ${(e as Error).message}`);
  }
}

function why(e: unknown): string {
  return isTasError(e) ? `${e.wireText}: ${e.detail}` : e instanceof Error ? e.message : String(e);
}

function trustFrom(path: string): PolicyTrust {
  try {
    const t = new PolicyTrust();
    t.replace(loadTrust(path).keys);
    return t;
  } catch (e) {
    throw new CliError(EXIT.USAGE, e instanceof TrustError ? e.message : String(e));
  }
}

/** dialectOf picks the route family a stored document needs (rules-only signatures: first dialect). */
function dialectOf(doc: unknown): Dialect {
  const sig = (doc as { signature?: { signed_data?: unknown } } | null)?.signature;
  return sig !== undefined && sig !== null && typeof sig === 'object' && 'signed_data' in sig ? 'first' : 'management';
}

// --- keygen ----------------------------------------------------------------------------------------

const keygen = defineCommand<{ out: string; bits: number; force: boolean; format: string }>({
  command: 'keygen',
  describe: 'Generate an RSA policy-signing key pair: <out>.key.pem (0600) and <out>.pub.pem',
  builder: (y) =>
    withFormat(y)
      .example('$0 policy keygen --out /root/policy-signer', 'writes policy-signer.key.pem and policy-signer.pub.pem')
      .option('out', { type: 'string', demandOption: true, describe: 'Path prefix of the two files' })
      .option('bits', { type: 'number', default: 3072, choices: [3072, 4096], describe: 'RSA modulus size' })
      .option('force', { type: 'boolean', default: false, describe: 'Overwrite existing files' }) as never,
  run: (argv) => {
    const keyPath = `${argv.out}.key.pem`;
    const pubPath = `${argv.out}.pub.pem`;
    if (!argv.force && (existsSync(keyPath) || existsSync(pubPath))) throw new CliError(EXIT.USAGE, `${keyPath} or ${pubPath} exists (use --force)`);
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: argv.bits });
    // The private key through writeSecretFile (new 0600 file, O_EXCL, renamed into place): --force
    // must not keep an existing file's loose mode nor follow a link planted at the path.
    writeSecretFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, argv.force);
    writeSecretFile(pubPath, publicKey.export({ type: 'spki', format: 'pem' }) as string, argv.force);
    chmodSync(pubPath, 0o644); // public: readable by whoever configures TAS_POLICY_TRUST
    const fp = new PolicyTrust(loadTrust(pubPath).keys).keys[0]!.fingerprint;
    if (argv.format === 'json') process.stdout.write(`${JSON.stringify({ private_key: keyPath, public_key: pubPath, fingerprint: fp }, null, 2)}\n`);
    else process.stdout.write(`private key ${keyPath} (0600), public key ${pubPath}\nfingerprint (SHA-256 of SPKI) ${fp}\nput ${pubPath} into TAS_POLICY_TRUST\n`);
  },
});

// --- sign ------------------------------------------------------------------------------------------

const sign = defineCommand<{ policy: string; key: string; padding: string; salt: string; out?: string; format: string }>({
  command: 'sign <policy>',
  describe: 'Sign a policy document (RFC 8785 JCS of the whole document minus signature, RSA SHA-384)',
  builder: (y) =>
    withFormat(y)
      .example('$0 policy sign web.json --key /root/policy-signer.key.pem', 'adds the signature to web.json')
      .positional('policy', { type: 'string', describe: 'Policy JSON file' })
      .option('key', { type: 'string', demandOption: true, describe: 'Private key (PEM)' })
      .option('padding', { type: 'string', default: 'pss', choices: ['pss', 'pkcs1'], describe: 'RSASSA-PSS (MGF1-SHA-384) or PKCS#1 v1.5' })
      .option('salt', { type: 'string', default: '48', choices: ['48', 'max'], describe: 'PSS salt length' })
      .option('out', { type: 'string', describe: 'Output file (default: overwrite the input)' }) as never,
  run: (argv) => {
    const raw = readJson(argv.policy);
    let doc: PolicyDocument;
    try {
      doc = parseDocument(raw, 'management');
      compileRules(doc.validation_rules, claimSchemaFor(policyTypeOf(doc)));
    } catch (e) {
      throw new CliError(EXIT.CHECK_FAILED, `${argv.policy}: not signed, the document would be refused: ${why(e)}`);
    }
    let key;
    try {
      key = readFileSync(argv.key, 'utf8');
    } catch (e) {
      throw new CliError(EXIT.USAGE, `cannot read ${argv.key}: ${(e as Error).message}`);
    }
    const signed = signPolicy(doc, key, { padding: argv.padding === 'pkcs1' ? 'PKCS1v15' : 'PSS', saltLength: argv.salt === 'max' ? 'max' : 48 });
    const out = argv.out ?? argv.policy;
    writeFileSync(out, `${JSON.stringify(signed, null, 2)}\n`);
    if (argv.format === 'json') process.stdout.write(`${JSON.stringify({ policy_id: doc.metadata.policy_id, out }, null, 2)}\n`);
    else process.stdout.write(`signed ${doc.metadata.policy_id} -> ${out}\n`);
  },
});

// --- verify ----------------------------------------------------------------------------------------

const verify = defineCommand<{ policies: string[]; trust: string; format: string }>({
  command: 'verify <policies..>',
  describe: 'Verify policy signatures against trusted keys',
  builder: (y) =>
    withFormat(y)
      .example('$0 policy verify web.json --trust /etc/tas/policy-trust', 'checks the signature with the keys the service trusts')
      .positional('policies', { type: 'string', array: true, describe: 'Policy JSON files' })
      .option('trust', { type: 'string', demandOption: true, describe: 'PEM key/certificate file or directory (like TAS_POLICY_TRUST)' }) as never,
  run: (argv) => {
    const trust = trustFrom(argv.trust);
    let failed = 0;
    const json = argv.format === 'json';
    const results: Array<{ file: string; ok: boolean; detail: string }> = [];
    const ow = process.stdout.write.bind(process.stdout);
    const say = (line: string): void => {
      const m = /^(OK|FAIL) +([^:]+): (.*)$/.exec(line.trimEnd());
      if (m) results.push({ file: m[2]!, ok: m[1] === 'OK', detail: m[3]! });
      if (!json) ow(line);
    };
    for (const f of argv.policies) {
      try {
        const raw = readJson(f);
        const doc = parseDocument(raw, dialectOf(raw));
        compileRules(doc.validation_rules, claimSchemaFor(policyTypeOf(doc)));
        const v = verifyDocumentSignature(doc, trust.keys);
        if (!v.ok) throw new Error(v.reason);
        const note = isLegacySigned(doc) ? ' (rules only: key binding NOT signed; first-dialect routes only)' : '';
        say(`OK   ${f}: policy ${doc.metadata.policy_id}, ${doc.signature!.padding}, key ${v.key.fingerprint}${note}\n`);
      } catch (e) {
        if (e instanceof CliError && e.exitCode === EXIT.USAGE) throw e;
        failed++;
        say(`FAIL ${f}: ${why(e)}\n`);
      }
    }
    if (json) ow(`${JSON.stringify({ ok: failed === 0, results }, null, 2)}\n`);
    return failed ? EXIT.CHECK_FAILED : EXIT.OK;
  },
});

// --- export / import (configured store) -------------------------------------------------------------

/** openRepo opens the configured store (TAS_STORE) for the CLI; the caller closes it. */
async function openRepo(configFile: string | undefined): Promise<{ repo: PolicyRepo; service: (trust: PolicyTrust) => PolicyService; close(): Promise<void> }> {
  const cfg = toolConfig(configFile);
  const log = pino({ level: 'warn' }, pino.destination(2));
  const { store, close } = openServiceStore(cfg, log);
  const repo = repoFromStore(store);
  const settings = {
    enforceSigned: cfg.get<boolean>('policy.enforce_signed') ?? true,
    allowUnsignedKeyBinding: cfg.get<boolean>('policy.allow_unsigned_key_binding') ?? false,
  };
  return {
    repo,
    service: (trust) => new PolicyService({ repo, trust, settings: () => settings }),
    close: () => close(),
  };
}

const exportCmd = defineCommand<{ out?: string; config?: string; format: string }>({
  command: 'export',
  describe: 'Write every stored policy (signatures kept) to stdout, a .json file or a directory (one file per policy)',
  builder: (y) =>
    withFormat(y)
      .example('$0 policy export --out /root/policies-backup', 'one file per stored policy, for a backup or another host')
      .option('out', { type: 'string', describe: 'A .json file (array of documents) or a directory; default: the array on stdout' })
      .option('config', { type: 'string', describe: 'Config file (default $TAS_CONFIG_FILE, else /etc/tas/tas.yaml when installed)' }) as never,
  run: async (argv) => {
    const h = await openRepo(argv.config);
    try {
      const all = await h.repo.list();
      const docs = all.map(({ id, document }) => ({ id, doc: JSON.parse(document) as unknown }));
      if (argv.out === undefined || argv.out === '-') {
        process.stdout.write(`${JSON.stringify(docs.map((d) => d.doc), null, 2)}\n`);
        process.stderr.write(`exported ${docs.length} polic${docs.length === 1 ? 'y' : 'ies'}\n`);
        return;
      }
      if (argv.out.endsWith('.json')) {
        writeFileSync(argv.out, `${JSON.stringify(docs.map((d) => d.doc), null, 2)}\n`, { mode: 0o600 });
      } else {
        mkdirSync(argv.out, { recursive: true, mode: 0o700 });
        for (const d of docs) writeFileSync(join(argv.out, `${d.id}.json`), `${JSON.stringify(d.doc, null, 2)}\n`, { mode: 0o600 });
      }
      // On stdout the documents themselves are the output (JSON whatever --format); with --out the summary follows --format.
      if (argv.format === 'json') process.stdout.write(`${JSON.stringify({ exported: docs.length, out: argv.out, ids: docs.map((d) => d.id) }, null, 2)}\n`);
      else process.stdout.write(`exported ${docs.length} polic${docs.length === 1 ? 'y' : 'ies'} to ${argv.out}\n`);
    } finally {
      await h.close();
    }
  },
});

/** readDocuments reads policy documents from files or directories (a file may hold an array). */
function readDocuments(paths: readonly string[]): Array<{ source: string; doc: unknown }> {
  const out: Array<{ source: string; doc: unknown }> = [];
  for (const p of paths) {
    const files = existsSync(p) && statSync(p).isDirectory()
      ? readdirSync(p).filter((f) => f.endsWith('.json') && !f.startsWith('.')).sort().map((f) => join(p, f))
      : [p];
    for (const f of files) {
      const v = readJson(f);
      if (Array.isArray(v)) v.forEach((doc, i) => out.push({ source: `${basename(f)}[${i}]`, doc }));
      else out.push({ source: basename(f), doc: v });
    }
  }
  return out;
}

const importCmd = defineCommand<{ sources: string[]; config?: string; format: string }>({
  command: 'import <sources..>',
  describe: 'Re-verify each policy with TAS_POLICY_TRUST and store it in the configured store (existing ids are kept)',
  builder: (y) =>
    withFormat(y)
      .example('$0 policy import /root/policies-backup', 're-verifies and stores every policy of an export')
      .positional('sources', { type: 'string', array: true, describe: 'Files (document or array) or directories of .json files' })
      .option('config', { type: 'string', describe: 'Config file (default $TAS_CONFIG_FILE)' }) as never,
  run: async (argv) => {
    const docs = readDocuments(argv.sources);
    const cfg = toolConfig(argv.config);
    let trust: PolicyTrust;
    try {
      trust = PolicyTrust.fromPath(cfg.get<string | undefined>('policy.trust'));
    } catch (e) {
      throw new CliError(EXIT.USAGE, (e as Error).message);
    }
    const h = await openRepo(argv.config);
    const results: Array<{ source: string; status: 'stored' | 'exists' | 'refused'; id?: string; detail?: string }> = [];
    const text = argv.format !== 'json';
    try {
      const svc = h.service(trust);
      for (const { source, doc } of docs) {
        try {
          const p = await svc.store(doc, { dialect: dialectOf(doc), client: 'tas policy import' });
          results.push({ source, status: 'stored', id: p.id });
          if (text) process.stdout.write(`stored  ${p.id} (${source})\n`);
        } catch (e) {
          if (isTasError(e) && e.code === 'POLICY_EXISTS') {
            results.push({ source, status: 'exists', id: String(e.params.id) });
            if (text) process.stdout.write(`exists  ${e.params.id} (${source}): kept the stored one\n`);
          } else {
            results.push({ source, status: 'refused', detail: why(e) });
            if (text) process.stdout.write(`REFUSED ${source}: ${why(e)}\n`);
          }
        }
      }
    } finally {
      await h.close();
    }
    const count = (st: string) => results.filter((r) => r.status === st).length;
    const [stored, existed, refused] = [count('stored'), count('exists'), count('refused')];
    if (text) process.stdout.write(`${stored} stored, ${existed} already present, ${refused} refused\n`);
    else process.stdout.write(`${JSON.stringify({ ok: refused === 0, stored, existed, refused, results }, null, 2)}\n`);
    return refused ? EXIT.CHECK_FAILED : EXIT.OK;
  },
});

// --- test --------------------------------------------------------------------------------------------

/** ReportClaimsSource is how `tas policy test --report` gets claims (src/snp verification). */
export interface ReportInput {
  readonly report: Buffer;
  readonly vek: Buffer;
  readonly intermediate?: Buffer | undefined;
  readonly ark?: Buffer | undefined;
  readonly at: Date;
  readonly product?: string | undefined;
}

/** claimsFromReport verifies a report offline with src/snp and returns its claims. */
export async function claimsFromReport(input: ReportInput): Promise<Claims> {
  const product = input.product === undefined ? undefined : isProduct(input.product) ? input.product : undefined;
  if (input.product !== undefined && product === undefined) throw new CliError(EXIT.USAGE, `--product must be Milan, Genoa or Turin`);
  const v = await verifySnpEvidence(
    { report: input.report, vek: input.vek, intermediate: input.intermediate, at: input.at, product },
    input.ark ? { anchorsOverride: [input.ark] } : {},
  );
  return v.claims as unknown as Claims;
}

/** readReport accepts the raw 1184-byte report or its base64 text. */
function readReport(path: string): Buffer {
  const raw = readFileSync(path);
  if (raw.length === 1184) return raw;
  const text = raw.toString('utf8').trim();
  if (/^[A-Za-z0-9+/=\s]+$/.test(text)) return Buffer.from(text, 'base64');
  throw new CliError(EXIT.USAGE, `${path}: neither a 1184-byte report nor its base64`);
}

function show(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) ?? 'null';
}

interface TestArgs {
  policy: string;
  report?: string;
  cert?: string;
  ca?: string;
  ark?: string;
  product?: string;
  at?: string;
  claims?: string;
  quote?: string;
  collateral?: string;
  trust?: string;
  format: string;
}

const test = defineCommand<TestArgs>({
  command: 'test',
  describe: 'Evaluate a policy against a report (verified offline) or a claims JSON; prints every rule with its verdict',
  builder: (y) =>
    withFormat(y)
      .example('$0 policy test --policy web.json --report vm.bin --cert vcek.der', 'every rule of web.json with its verdict for this report')
      .option('policy', { type: 'string', demandOption: true, describe: 'Policy JSON file' })
      .option('report', { type: 'string', describe: 'Attestation report (raw 1184 bytes or base64)' })
      .option('cert', { type: 'string', describe: 'VCEK/VLEK certificate (PEM or DER) for --report' })
      .option('ca', { type: 'string', describe: 'ASK/ASVK (default: pinned for the product)' })
      .option('ark', { type: 'string', describe: 'Trust this ARK instead of the pinned AMD roots (labs and tests only)' })
      .option('product', { type: 'string', describe: 'Milan, Genoa or Turin (version-2 reports do not say)' })
      .option('at', { type: 'string', describe: 'Verification time (ISO 8601; default now)' })
      .option('claims', { type: 'string', describe: 'Claims JSON (instead of --report), e.g. from `tas verify`' })
      .option('quote', { type: 'string', describe: 'Intel TDX quote (instead of --report), verified offline' })
      .option('collateral', { type: 'string', describe: 'Intel collateral directory for --quote (default: the cache and PCS)' })
      .option('trust', { type: 'string', describe: 'Also verify the policy signature against these keys' }) as never,
  run: async (argv) => {
    if ([argv.report, argv.claims, argv.quote].filter((x) => x !== undefined).length !== 1) {
      throw new CliError(EXIT.USAGE, 'give exactly one of --report (with --cert), --quote (with --collateral) or --claims');
    }
    if (argv.report !== undefined && argv.cert === undefined) throw new CliError(EXIT.USAGE, '--report needs --cert (the VCEK or VLEK)');
    const raw = readJson(argv.policy);
    let doc: PolicyDocument;
    try {
      doc = parseDocument(raw, dialectOf(raw));
    } catch (e) {
      throw new CliError(EXIT.CHECK_FAILED, `${argv.policy}: ${why(e)}`);
    }
    if (argv.trust !== undefined) {
      const v = verifyDocumentSignature(doc, trustFrom(argv.trust).keys);
      process.stdout.write(v.ok ? `signature OK (key ${v.key.fingerprint})\n` : `signature FAILED: ${v.reason}\n`);
      if (!v.ok) return EXIT.CHECK_FAILED;
    }
    let rules;
    try {
      rules = compileRules(doc.validation_rules, claimSchemaFor(policyTypeOf(doc)));
    } catch (e) {
      throw new CliError(EXIT.CHECK_FAILED, `${argv.policy}: ${why(e)}`);
    }
    let claims: Claims;
    if (argv.quote !== undefined) {
      if (policyTypeOf(doc) !== 'TDX') {
        process.stdout.write(`policy ${doc.metadata.policy_id} is of type ${policyTypeOf(doc)}: it never admits a TDX quote\n`);
        return EXIT.CHECK_FAILED;
      }
      const at = argv.at !== undefined ? new Date(argv.at) : new Date();
      if (Number.isNaN(at.getTime())) throw new CliError(EXIT.USAGE, `--at ${argv.at} is not a date`);
      const env = await runQuoteVerify({ quote: argv.quote, collateral: argv.collateral, at });
      if (!env.valid || !env.claims) {
        process.stdout.write(`quote does not verify: ${env.reason ?? 'unknown'} (${env.checks.filter((c) => !c.ok).map((c) => c.detail).join('; ')})\n`);
        return EXIT.CHECK_FAILED;
      }
      claims = env.claims as Claims;
    } else if (argv.claims !== undefined) {
      const c = readJson(argv.claims) as Record<string, unknown>;
      // `tas verify` prints {valid, claims, ...}; accept that or bare claims.
      claims = (c !== null && typeof c === 'object' && 'claims' in c && typeof c.claims === 'object' ? c.claims : c) as Claims;
    } else {
      const at = argv.at !== undefined ? new Date(argv.at) : new Date();
      if (Number.isNaN(at.getTime())) throw new CliError(EXIT.USAGE, `--at ${argv.at} is not a date`);
      try {
        claims = await claimsFromReport({
          report: readReport(argv.report!),
          vek: readFileSync(argv.cert!),
          intermediate: argv.ca !== undefined ? readFileSync(argv.ca) : undefined,
          ark: argv.ark !== undefined ? readFileSync(argv.ark) : undefined,
          at,
          product: argv.product,
        });
      } catch (e) {
        if (e instanceof CliError) throw e;
        process.stdout.write(`report does not verify: ${why(e)}\n`);
        return EXIT.CHECK_FAILED;
      }
    }
    const r = evaluate(rules, claims);
    if (argv.format === 'json') {
      process.stdout.write(`${show({ policy_id: doc.metadata.policy_id, ok: r.ok, results: r.results, failures: r.failures })}\n`);
    } else {
      for (const x of r.results) {
        process.stdout.write(`${x.ok ? 'PASS' : 'FAIL'} ${x.path} ${x.op} expected ${show(x.expected)} actual ${show(x.actual)}\n`);
      }
      process.stdout.write(`${r.ok ? 'policy PASSES' : `policy FAILS (${r.failures.length} of ${r.results.length} rules)`}: ${doc.metadata.policy_id}\n`);
    }
    return r.ok ? EXIT.OK : EXIT.CHECK_FAILED;
  },
});

/** policyCommand is `tas policy <command>` (registered in src/cli.ts). */
export const policyCommand = group('policy <command>', 'Sign, verify, test, export and import policies', [
  keygen as never,
  sign as never,
  verify as never,
  exportCmd as never,
  importCmd as never,
  test as never,
]);
