/**
 * `tas verify`: the ONE TEE-neutral verify command. Exactly one of --report (SEV-SNP, src/snp/cli),
 * --quote (Intel TDX, src/tdx/cli), --gpu-evidence (NVIDIA, src/gpu/verify-cli); one envelope {valid, tee, claims,
 * checks: [{name, ok, detail}], reason} (+ tcb for TDX); exit 0 valid, 1 invalid, 2 usage.
 */
import { CliError, defineCommand, EXIT } from './cli-kit';
import { flatten, jsonSafe, parseAt, runVerify, type VerifyArgs } from './snp/cli';
import { PRODUCTS } from './snp';
import { runQuoteVerify } from './tdx/cli';
import { gpuVerify, renderGpuText } from './gpu/verify-cli';

/**
 * runAnyVerify is the ONE TEE-neutral `tas verify`: exactly one of --report (SEV-SNP), --quote
 * (Intel TDX), --gpu-evidence (NVIDIA); one envelope {valid, tee, claims, checks, reason} (+ tcb
 * for TDX); exit 0 valid, 1 invalid, 2 usage.
 */
export async function runAnyVerify(argv: VerifyArgs): Promise<number> {
  const given = (['report', 'quote', 'gpu-evidence'] as const).filter((k) => argv[k] !== undefined);
  if (given.length !== 1) throw new CliError(EXIT.USAGE, `give exactly one of --report, --quote, --gpu-evidence (got ${given.length === 0 ? 'none' : given.map((g) => `--${g}`).join(', ')})`);
  const format = argv.format ?? 'json';
  if (format !== 'json' && format !== 'text') throw new CliError(EXIT.USAGE, `--format must be json or text, got ${format}`);
  if (given[0] === 'gpu-evidence') {
    const env = await gpuVerify({ file: argv['gpu-evidence']!, nonce: argv.nonce, at: parseAt(argv.at), rims: argv.rim, ocsp: argv.ocsp, config: argv.config });
    process.stdout.write(format === 'json' ? `${JSON.stringify(env, jsonSafe, 2)}\n` : renderGpuText(env));
    return env.valid ? EXIT.OK : EXIT.CHECK_FAILED;
  }
  for (const o of ['nonce', 'rim', 'ocsp'] as const) if (argv[o] !== undefined) throw new CliError(EXIT.USAGE, `--${o} goes with --gpu-evidence`);
  if (given[0] === 'report') {
    if (argv.cert === undefined) throw new CliError(EXIT.USAGE, '--report needs --cert (the VCEK or VLEK)');
    return runVerify(argv);
  }
  const env = await runQuoteVerify({ quote: argv.quote!, collateral: argv.collateral, at: parseAt(argv.at), config: argv.config });
  if (format === 'json') process.stdout.write(`${JSON.stringify(env, jsonSafe, 2)}\n`);
  else {
    const lines = [`Intel TDX quote: ${env.valid ? 'VALID' : `INVALID (${env.reason ?? 'unknown'})`}`, '', 'checks:'];
    for (const c of env.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}  ${c.detail}`);
    const rows: Array<[string, string]> = [];
    if (env.tcb) flatten('tcb', env.tcb, rows);
    if (env.claims) flatten('', env.claims, rows);
    if (rows.length) lines.push('', 'claims:', ...rows.map(([k, v]) => `  ${k}  ${v}`));
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return env.valid ? EXIT.OK : EXIT.CHECK_FAILED;
}

/** verifyCommand is the yargs module registered in src/cli.ts. */
export const verifyCommand = defineCommand<VerifyArgs>({
  command: 'verify',
  describe: 'Verify TEE evidence offline: an SEV-SNP report (--report), an Intel TDX quote (--quote) or GPU evidence (--gpu-evidence)',
  builder: (y) =>
    y
      .example('$0 verify --report vm.bin --cert vcek.der --format text', 'verifies offline against the pinned AMD roots; prints the claims')
      .example('$0 verify --quote td.bin --collateral ./collateral --at 2025-07-01T00:00:00Z', 'verifies a TDX quote with collateral from a directory')
      .example('$0 verify --gpu-evidence gpus.json --nonce 931d8dd0… --rim ./rims --format text', 'verifies NVIDIA GPU evidence (SDK entries or component-evidence) offline with RIMs from a directory')
      .option('report', { type: 'string', describe: 'Raw 1184-byte ATTESTATION_REPORT file' })
      .option('cert', { type: 'string', describe: 'VCEK or VLEK (DER or PEM), with --report' })
      .option('quote', { type: 'string', describe: 'Raw TDX quote (v4/v5) as configfs-tsm returned it' })
      .option('collateral', { type: 'string', describe: 'Directory of Intel collateral (tcb_info.json, qe_identity.json, issuer chains, CRLs); default the cache and PCS' })
      .option('gpu-evidence', { type: 'string', describe: 'NVIDIA GPU evidence: one SDK JSON entry, a JSON array of them, or a component-evidence object' })
      .option('nonce', { type: 'string', describe: 'TAS nonce (64 hex) the GPUs\' SPDM nonce must equal, with --gpu-evidence (default: each entry\'s own nonce)' })
      .option('rim', { type: 'string', array: true, describe: 'NVIDIA RIM file or directory (verified with xmlsec1 at --at), with --gpu-evidence; repeatable' })
      .option('ocsp', { type: 'string', array: true, describe: 'OCSP answer <serial hex>.der or directory of them, with --gpu-evidence; repeatable' })
      .option('config', { type: 'string', describe: 'Configuration file (for the collateral cache)' })
      .option('ask', { type: 'string', describe: 'ASK (VCEK) or ASVK (VLEK), DER or PEM; default the pinned one' })
      .option('ark', { type: 'string', describe: 'ARK to trust instead of the pinned AMD root (DER or PEM)' })
      .option('crl', { type: 'string', describe: 'ARK-signed CRL (DER or PEM) to check' })
      .option('at', { type: 'string', describe: 'Verification time, ISO 8601 (default now)' })
      .option('product', { type: 'string', choices: [...PRODUCTS], describe: 'Expected product; required for version-2 reports' })
      .option('format', { type: 'string', choices: ['json', 'text'], default: 'json', describe: 'Output format' }) as never,
  run: (argv) => runAnyVerify(argv),
});
