/**
 * `tas verify`: offline verification of one SEV-SNP report with its VCEK/VLEK, against AMD's
 * pinned roots (or a given ARK/ASK), at a chosen time. Prints JSON
 * `{"valid", "claims", "checks": [{name, ok, detail}], ...}` or a readable table.
 * Exit codes: 0 valid, 1 invalid, 2 usage error (including an addon that does not load).
 */
import { readFileSync, statSync } from 'node:fs';
import { CliError, EXIT } from '../cli-kit';
import { opensslVersion } from '../native';
import { isProduct, PRODUCTS } from './product';
import { SnpVerifier, type SnpCheckResult } from './verify';

/** VerifyArgs are the options of `tas verify`. */
export interface VerifyArgs {
  report: string;
  cert: string;
  quote?: string | undefined;
  collateral?: string | undefined;
  'gpu-evidence'?: string | undefined;
  nonce?: string | undefined;
  rim?: string[] | undefined;
  ocsp?: string[] | undefined;
  config?: string | undefined;
  ask?: string | undefined;
  ark?: string | undefined;
  crl?: string | undefined;
  at?: string | undefined;
  product?: string | undefined;
  format?: string | undefined;
}

const MAX_INPUT = 1024 * 1024;

function readInput(path: string, what: string): Buffer {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st || !st.isFile()) throw new CliError(EXIT.USAGE, `--${what} ${path}: no such file`);
  if (st.size > MAX_INPUT) throw new CliError(EXIT.USAGE, `--${what} ${path}: larger than ${MAX_INPUT} bytes`);
  return readFileSync(path);
}

/** jsonSafe turns bigint claims (u64 beyond 2^53) into decimal strings for JSON output. */
export function jsonSafe(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

export function flatten(prefix: string, v: unknown, out: Array<[string, string]>): void {
  if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) flatten(prefix ? `${prefix}.${k}` : k, x, out);
  } else out.push([prefix, String(v)]);
}

/** renderText formats a result as a table of checks followed by the claims. */
export function renderText(res: SnpCheckResult): string {
  const lines = [`SEV-SNP report: ${res.valid ? 'VALID' : `INVALID (${res.error?.reason ?? 'unknown'})`}`, '', 'checks:'];
  const w = Math.max(...res.checks.map((c) => c.name.length), 5);
  for (const c of res.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(w)}  ${c.detail}`);
  if (res.verification) {
    const rows: Array<[string, string]> = [];
    flatten('', res.verification.claims, rows);
    const kw = Math.max(...rows.map((r) => r[0].length));
    lines.push('', 'claims:');
    for (const [k, v] of rows) lines.push(`  ${k.padEnd(kw)}  ${v}`);
  }
  return `${lines.join('\n')}\n`;
}

/** runVerify runs the command and returns its exit code (stdout gets the result). */
export async function runVerify(argv: VerifyArgs): Promise<number> {
  const format = argv.format ?? 'json';
  if (format !== 'json' && format !== 'text') throw new CliError(EXIT.USAGE, `--format must be json or text, got ${format}`);
  if (argv.product !== undefined && !isProduct(argv.product)) {
    throw new CliError(EXIT.USAGE, `--product must be one of ${PRODUCTS.join(', ')}, got ${argv.product}`);
  }
  // Require an explicit ISO 8601 date-time so that "06/01" never means something else.
  const at = parseAt(argv.at);
  const report = readInput(argv.report, 'report');
  const vek = readInput(argv.cert, 'cert');
  const intermediate = argv.ask !== undefined ? readInput(argv.ask, 'ask') : undefined;
  const ark = argv.ark !== undefined ? readInput(argv.ark, 'ark') : undefined;
  const crl = argv.crl !== undefined ? readInput(argv.crl, 'crl') : undefined;
  try {
    opensslVersion();
  } catch (e) {
    // No JavaScript fallback exists: refuse rather than pretend to verify.
    throw new CliError(EXIT.USAGE, `the SEV-SNP addon does not load: ${(e as Error).message}`);
  }
  const verifier = new SnpVerifier({ anchorsOverride: ark ? [ark] : undefined });
  const res = await verifier.check({
    report, vek, intermediate, crl, at,
    product: argv.product !== undefined && isProduct(argv.product) ? argv.product : undefined,
  });
  if (ark && res.verification) {
    res.checks.push({ name: 'anchor', ok: true, detail: 'caller-supplied ARK (--ark), not the pinned AMD root' });
  }
  if (format === 'json') {
    const body: Record<string, unknown> = { valid: res.valid, tee: 'amd-sev-snp', claims: res.verification?.claims ?? null, checks: res.checks };
    if (res.verification) {
      body['product'] = res.verification.product;
      body['anchor_sha256'] = res.verification.anchorSha256;
    }
    if (res.error) body['reason'] = res.error.reason;
    process.stdout.write(`${JSON.stringify(body, jsonSafe, 2)}\n`);
  } else process.stdout.write(renderText(res));
  return res.valid ? EXIT.OK : EXIT.CHECK_FAILED;
}

/** parseAt reads --at (an explicit ISO 8601 time) or returns now. */
export function parseAt(v: string | undefined): Date {
  if (v === undefined) return new Date();
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(v) || Number.isNaN(Date.parse(v))) {
    throw new CliError(EXIT.USAGE, `--at must be an ISO 8601 time such as 2026-06-01T00:00:00Z, got ${v}`);
  }
  return new Date(v);
}

