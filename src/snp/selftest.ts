/**
 * Startup self-test (run by the daemon before READY): the pinned roots' SPKI digests equal the
 * pins, and one embedded genuine AMD report verifies against them at a pinned time. A failure
 * means the addon, OpenSSL or the embedded roots are broken: the daemon must not serve.
 */
import { certInfo } from '../native';
import { PINNED_ROOTS, SELF_TEST_VECTOR } from './roots';
import { PRODUCTS } from './product';
import { SnpVerifier } from './verify';
import { PINNED_ONLY } from './trust';

/** SelfTestResult lists what was checked. */
export interface SelfTestResult {
  readonly ok: boolean;
  readonly checks: ReadonlyArray<{ name: string; ok: boolean; detail: string }>;
}

/** selfTest never throws; `ok` is false with the failing check's detail on any problem. */
export async function selfTest(): Promise<SelfTestResult> {
  const checks: Array<{ name: string; ok: boolean; detail: string }> = [];
  try {
    for (const p of PRODUCTS) {
      for (const role of ['ark', 'ask', 'asvk'] as const) {
        const root = PINNED_ROOTS[p][role];
        const got = certInfo(Buffer.from(root.pem, 'ascii')).spkiSha256.toString('hex');
        const ok = got === root.spkiSha256;
        checks.push({ name: `pin_${p.toLowerCase()}_${role}`, ok, detail: ok ? `SPKI sha256 ${got}` : `SPKI sha256 ${got} != pin ${root.spkiSha256}` });
      }
    }
    const v = SELF_TEST_VECTOR;
    const res = await new SnpVerifier({ trust: PINNED_ONLY }).check({
      report: Buffer.from(v.reportBase64, 'base64'),
      vek: Buffer.from(v.vcekPem, 'ascii'),
      at: new Date(v.at),
    });
    const claimsOk = res.valid && res.verification!.claims.measurement === v.measurement && res.verification!.claims.chip_id === v.chipId
      && res.verification!.product === v.product;
    checks.push({
      name: 'genuine_report', ok: claimsOk,
      detail: claimsOk ? `genuine ${v.product} report verified against the pinned roots` : `genuine report did not verify: ${res.error?.detail ?? 'claims differ'}`,
    });
  } catch (e) {
    checks.push({ name: 'selftest', ok: false, detail: e instanceof Error ? e.message : String(e) });
  }
  return { ok: checks.every((c) => c.ok), checks };
}
