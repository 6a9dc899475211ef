/**
 * TDX startup self-test (run by the daemon before READY, beside SNP's): the embedded Intel root's
 * certificate and SPKI digests equal the pins, and one embedded genuine quote verifies against it
 * with its genuine collateral at a pinned time (claims and TCB status as expected) — and fails once
 * its tcbInfo is re-serialised (signatures cover the exact bytes). A failure means the addon,
 * OpenSSL or the embedded root is broken: the daemon must not serve.
 */
import { certInfo } from '../native';
import { INTEL_SGX_ROOT_CA } from './roots';
import { TDX_SELF_TEST_VECTOR as V } from './selftest-vector';
import { TDX_PINNED_ONLY } from './trust';
import { peekQuote, TdxVerifier, type CollateralSet } from './verify';

export interface TdxSelfTestResult {
  readonly ok: boolean;
  readonly checks: ReadonlyArray<{ name: string; ok: boolean; detail: string }>;
}

const b = (s: string): Buffer => Buffer.from(s, 'base64');

/** tdxSelfTest never throws; `ok` is false with the failing check's detail on any problem. */
export async function tdxSelfTest(): Promise<TdxSelfTestResult> {
  const checks: Array<{ name: string; ok: boolean; detail: string }> = [];
  try {
    const info = certInfo(Buffer.from(INTEL_SGX_ROOT_CA.pem, 'ascii'));
    const sha = info.sha256.toString('hex');
    const spki = info.spkiSha256.toString('hex');
    const pinOk = sha === INTEL_SGX_ROOT_CA.sha256 && spki === INTEL_SGX_ROOT_CA.spkiSha256;
    checks.push({ name: 'pin_intel_sgx_root', ok: pinOk, detail: pinOk ? `sha256 ${sha}` : `sha256 ${sha} / SPKI ${spki} differ from the pins` });
    const quote = b(V.quote);
    const c: CollateralSet = {
      tcbInfo: { body: b(V.tcbInfo), chain: b(V.tcbInfoChain) }, qeIdentity: { body: b(V.qeIdentity), chain: b(V.qeIdentityChain) },
      pckCrl: { body: b(V.pckCrl), chain: b(V.pckCrlChain) }, rootCrl: { body: b(V.rootCrl) }, update: 'standard',
    };
    const verifier = new TdxVerifier({ trustRoots: () => [...TDX_PINNED_ONLY.roots] });
    const r = await verifier.verify(quote, peekQuote(quote), c, new Date(V.at));
    const ok = r.tcb.status === V.tcbStatus && r.claims.fmspc === V.fmspc && (r.claims.body as Record<string, unknown>).mr_td === V.mrTd;
    checks.push({ name: 'genuine_tdx_quote', ok, detail: ok ? `genuine TDX quote ${V.name} verified against the pinned Intel root (${r.tcb.status})` : 'claims differ from the embedded expectations' });
    const reser = Buffer.from(JSON.stringify(JSON.parse(b(V.tcbInfo).toString('utf8')), null, 1));
    const refused = await verifier.verify(quote, peekQuote(quote), { ...c, tcbInfo: { body: reser, chain: c.tcbInfo.chain } }, new Date(V.at)).then(() => false, () => true);
    checks.push({ name: 'reserialised_tcb_info_refused', ok: refused, detail: refused ? 'a re-serialised tcbInfo does not verify' : 'a re-serialised tcbInfo VERIFIED: signatures are not over the exact bytes' });
  } catch (e) {
    checks.push({ name: 'tdx_selftest', ok: false, detail: e instanceof Error ? e.message : String(e) });
  }
  return { ok: checks.every((x) => x.ok), checks };
}
