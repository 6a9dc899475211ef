/**
 * One GPU's verdict (PROTOCOL.md §2.1): the native device checks (chain to the pinned NVIDIA
 * root, ECDSA-P384 over request ‖ response, FWID), nonce equality with the TAS nonce, revocation
 * (OCSP) of the device chain, and the reference measurements of the driver and VBIOS RIMs — turned
 * into NRAS-named claims so that NVIDIA relying-party policies evaluate unchanged.
 *
 * Failures of the device itself (chain, signature, FWID, nonce, a revoked certificate) are
 * definitive and independent of the policy; measurements and RIM verdicts are claims the policy
 * judges (`measres`, `x-nvidia-gpu-driver-rim-signature-verified`, …).
 */
import { timingSafeEqual } from 'node:crypto';
import { TasError } from '../errors';
import { verifyGpu, type GpuDeviceResult, type SpdmEvidence } from '../native/gpu';
import type { GpuArch, GpuEntry } from './evidence';

/** Revocation is one certificate's OCSP answer as the policy sees it. */
export interface Revocation {
  readonly status: 'good' | 'revoked' | 'unknown';
  readonly reason?: string;
}

/** RevocationSource answers OCSP for a device certificate (DER) and its issuer (DER). */
export interface RevocationSource {
  /**
   * Throws a 503 TasError when no fresh answer can be had and TAS_CRL_FAIL_MODE is closed.
   * `chain` holds the device chain's CA certificates (DER), to complete the responder's chain;
   * `serialHex` is `cert`'s serial as the verified chain already reported it (saves a parse).
   */
  status(cert: Buffer, issuer: Buffer, chain: readonly Buffer[], deviceIndex: number, serialHex?: string): Promise<Revocation>;
}

/** GoldenMeasurement is one RIM measurement index: any alternative may match. */
export interface GoldenMeasurement {
  readonly index: number;
  readonly alternatives: readonly Buffer[];
}

/** VerifiedRim is a RIM whose XML-DSig was checked when it was fetched or imported (never per request). */
export interface VerifiedRim {
  readonly id: string;
  readonly version: string;
  readonly signatureVerified: boolean;
  /** Signing chain status at verification: valid | invalid | expired. */
  readonly certStatus: string;
  readonly manufacturerId?: string;
  readonly measurements: readonly GoldenMeasurement[];
}

/** RimSource finds a RIM by id: undefined when none exists; throws a 503 TasError when it cannot tell now. */
export interface RimSource {
  get(id: string): Promise<VerifiedRim | undefined>;
}

export interface DeviceOptions {
  /** The TAS nonce (64 hex); the SPDM request nonce must equal its 32 bytes. Undefined: not checked (`tas verify` without --nonce). */
  readonly nonce: string | undefined;
  /** What `nonce` is, for the check's detail (default "the TAS nonce"). */
  readonly nonceName?: string;
  readonly atSeconds: number;
  readonly anchors: readonly Buffer[];
  readonly revocation?: RevocationSource;
  readonly rims?: RimSource;
}

/** GpuCheck is one named check with its outcome. */
export interface GpuCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** GpuVerdict is one GPU's claims and checks; `hardFailure` names the first definitive failure. */
export interface GpuVerdict {
  readonly deviceIndex: number;
  readonly claims: Record<string, unknown>;
  readonly checks: GpuCheck[];
  readonly hardFailure?: { reason: string; detail: string };
  /** All device checks, revocation and RIM/measurement checks passed. */
  readonly ok: boolean;
}

/** Reasons of a GPU's definitive device failures (docs/audit.md). */
export const DEVICE_REASONS: Record<string, string> = {
  chain: 'GPU_CHAIN_INVALID',
  signature: 'GPU_SIGNATURE_INVALID',
  fwid: 'GPU_FWID_MISMATCH',
  nonce: 'GPU_NONCE_MISMATCH',
  arch: 'GPU_ARCH_MISMATCH',
  revocation: 'GPU_CERT_REVOKED',
};

const NVDEC_ENABLED = 0x55;
const NVDEC_DISABLED = 0xaa;

function archOf(hwmodel: string): GpuArch | undefined {
  if (/^GH1\d\d\b/.test(hwmodel)) return 'HOPPER';
  if (/^GB\d{3}\b/.test(hwmodel)) return 'BLACKWELL';
  return undefined;
}

function opaque(s: SpdmEvidence, type: number): Buffer | undefined {
  return s.opaque.find((f) => f.type === type)?.value;
}

function asciiz(b: Buffer | undefined): string {
  if (!b) return '';
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('latin1');
}

/** driverRimId / vbiosRimId name the RIMs NVIDIA publishes for this report (as NVIDIA's SDK does). */
export function driverRimId(arch: GpuArch, s: SpdmEvidence): string {
  return arch === 'HOPPER' ? `NV_GPU_DRIVER_GH100_${s.driverVersion}` : `NV_GPU_CC_DRIVER_GB100_${s.driverVersion}`;
}
export function vbiosRimId(s: SpdmEvidence): string | undefined {
  const project = asciiz(opaque(s, 17));
  const sku = asciiz(opaque(s, 18));
  const chip = asciiz(opaque(s, 15));
  if (!project || !sku || !chip || !s.vbiosVersion) return undefined;
  return `NV_GPU_VBIOS_${project}_${sku}_${chip}_${s.vbiosVersion.replace(/\./g, '')}`.toUpperCase();
}

function certChainClaim(status: string, ocsp: Revocation | undefined, expiry: Date | undefined): Record<string, unknown> {
  const c: Record<string, unknown> = { 'x-nvidia-cert-status': status, 'x-nvidia-cert-ocsp-status': ocsp?.status ?? 'unknown' };
  if (ocsp?.reason) c['x-nvidia-cert-revocation-reason'] = ocsp.reason;
  if (expiry) c['x-nvidia-cert-expiration-date'] = expiry.toISOString();
  return c;
}

/**
 * verifyGpuDevice runs every check for one GPU. It throws only for transient trouble (a 503
 * TasError from the revocation or RIM source); every other outcome is in the verdict.
 */
export async function verifyGpuDevice(g: GpuEntry, o: DeviceOptions): Promise<GpuVerdict> {
  let r: GpuDeviceResult;
  try {
    r = await verifyGpu({ evidence: g.spdm, chain: g.chainPem, anchors: [...o.anchors], atSeconds: o.atSeconds });
  } catch (e) {
    const code = (e as { code?: string }).code ?? '';
    if (!code.startsWith('GPU_ERR_')) throw e;
    const chain = code === 'GPU_ERR_CERT';
    throw new TasError('TEE_VERIFICATION_FAILED', `gpu[${g.deviceIndex}] ${chain ? 'chain' : 'evidence'}: ${(e as Error).message}`, { reason: chain ? 'GPU_CHAIN_INVALID' : 'GPU_EVIDENCE_INVALID' });
  }
  const s = r.spdm;
  const checks: GpuCheck[] = r.checks.map((c) => ({ ...c }));
  // Nonce: the SPDM request nonce is the 32 bytes of the hex-decoded TAS nonce (constant time).
  let nonceOk = true;
  if (o.nonce !== undefined) {
    const want = Buffer.from(o.nonce, 'hex');
    nonceOk = want.length === 32 && timingSafeEqual(want, s.request.nonce);
    const what = o.nonceName ?? 'the TAS nonce';
    checks.push({ name: 'nonce', ok: nonceOk, detail: nonceOk ? `SPDM request nonce equals ${what}` : `SPDM request nonce differs from ${what}` });
  }
  const arch = archOf(r.hwmodel);
  const archOk = arch === g.arch;
  checks.push({ name: 'arch', ok: archOk, detail: archOk ? `${g.arch} (${r.hwmodel})` : `entry says ${g.arch}, the device certificate is ${r.hwmodel}` });

  // Revocation of the device chain: every certificate but the device-generated leaf and the root.
  let ocsp: Revocation | undefined;
  if (o.revocation && r.chainOk) {
    const statuses: Revocation[] = [];
    for (let i = 1; i < r.certs.length - 1; i++) {
      const st = await o.revocation.status(r.certs[i]!.der, r.certs[i + 1]!.der, r.certs.slice(1).map((c) => c.der), g.deviceIndex, r.certs[i]!.serialHex);
      statuses.push(st.status === 'revoked' ? { ...st, reason: `${st.reason ?? 'unspecified'} (${r.certs[i]!.subjectCN})` } : st);
    }
    ocsp = statuses.find((x) => x.status === 'revoked') ?? statuses.find((x) => x.status === 'unknown') ?? { status: 'good' };
    checks.push({ name: 'revocation', ok: ocsp.status !== 'revoked', detail: ocsp.status === 'revoked' ? `revoked: ${ocsp.reason}` : `OCSP ${ocsp.status} for ${statuses.length} certificates` });
  }

  const chainExpiry = r.certs.length ? new Date(Math.min(...r.certs.map((c) => c.notAfter.getTime()))) : undefined;
  const claims: Record<string, unknown> = {
    'x-nvidia-device-type': 'gpu',
    'x-nvidia-gpu-device-index': g.deviceIndex,
    eat_nonce: s.request.nonce.toString('hex'),
    hwmodel: r.hwmodel,
    ueid: r.ueid,
    'x-nvidia-gpu-arch-check': archOk,
    'x-nvidia-gpu-driver-version': s.driverVersion,
    'x-nvidia-gpu-vbios-version': s.vbiosVersion,
    'x-nvidia-gpu-attestation-report-parsed': true,
    'x-nvidia-gpu-attestation-report-nonce-match': nonceOk,
    'x-nvidia-gpu-attestation-report-signature-verified': r.signatureOk,
    'x-nvidia-gpu-attestation-report-cert-chain': certChainClaim(r.chainOk ? 'valid' : 'invalid', ocsp, chainExpiry),
    'x-nvidia-gpu-attestation-report-cert-chain-validated': r.chainOk,
    'x-nvidia-gpu-attestation-report-cert-chain-fwid-match': r.fwidOk,
  };

  // Reference measurements (driver and VBIOS RIMs), judged only for a device that verified.
  const deviceOk = r.chainOk && r.signatureOk && r.fwidOk && nonceOk && archOk && ocsp?.status !== 'revoked';
  let measOk = false;
  if (deviceOk && o.rims) measOk = await appraiseMeasurements(g, s, o.rims, claims, checks);
  else {
    claims.measres = 'failure';
    claims['x-nvidia-gpu-driver-rim-fetched'] = false;
    claims['x-nvidia-gpu-vbios-rim-fetched'] = false;
  }

  const order = ['chain', 'signature', 'fwid', 'nonce', 'arch', 'revocation'];
  const first = order.map((n) => checks.find((c) => c.name === n && !c.ok)).find((c) => c !== undefined);
  return {
    deviceIndex: g.deviceIndex,
    claims,
    checks,
    ...(first ? { hardFailure: { reason: DEVICE_REASONS[first.name]!, detail: `gpu[${g.deviceIndex}] ${first.name}: ${first.detail}` } } : {}),
    ok: deviceOk && measOk,
  };
}

async function appraiseMeasurements(g: GpuEntry, s: SpdmEvidence, rims: RimSource, claims: Record<string, unknown>, checks: GpuCheck[]): Promise<boolean> {
  const ids = { driver: driverRimId(g.arch, s), vbios: vbiosRimId(s) };
  const found: Record<'driver' | 'vbios', VerifiedRim | undefined> = {
    driver: await rims.get(ids.driver),
    vbios: ids.vbios ? await rims.get(ids.vbios) : undefined,
  };
  // RIM indexes are 0-based; SPDM measurement block indexes start at 1 (block i+1 is RIM index i).
  const runtime = new Map(s.blocks.map((b) => [b.index - 1, b.value]));
  let allOk = true;
  const golden = new Map<number, { source: 'driver' | 'vbios'; m: GoldenMeasurement }>();
  let conflict = false;
  for (const kind of ['driver', 'vbios'] as const) {
    const rim = found[kind];
    const versionWant = kind === 'driver' ? s.driverVersion : s.vbiosVersion;
    claims[`x-nvidia-gpu-${kind}-rim-fetched`] = rim !== undefined;
    if (!rim) {
      checks.push({ name: `rim.${kind}`, ok: false, detail: `no ${kind} RIM ${ids[kind] ?? '(unnamed: opaque data lacks project/SKU)'} is available` });
      allOk = false;
      continue;
    }
    const versionOk = rim.version.toUpperCase() === versionWant.toUpperCase();
    const signedOk = rim.signatureVerified && rim.certStatus === 'valid';
    claims[`x-nvidia-gpu-${kind}-rim-schema-validated`] = true;
    claims[`x-nvidia-gpu-${kind}-rim-signature-verified`] = rim.signatureVerified;
    claims[`x-nvidia-gpu-${kind}-rim-cert-validated`] = rim.certStatus === 'valid';
    claims[`x-nvidia-gpu-${kind}-rim-cert-chain`] = { 'x-nvidia-cert-status': rim.certStatus, 'x-nvidia-cert-ocsp-status': 'unknown' };
    claims[`x-nvidia-gpu-${kind}-rim-version-match`] = versionOk;
    claims[`x-nvidia-gpu-${kind}-rim-measurements-available`] = rim.measurements.length > 0;
    if (kind === 'driver' && rim.manufacturerId) claims.oemid = rim.manufacturerId;
    checks.push({ name: `rim.${kind}`, ok: true, detail: `${rim.id} version ${rim.version}, ${rim.measurements.length} active measurements` });
    checks.push({ name: `rim.${kind}.signature`, ok: signedOk, detail: signedOk ? 'XML-DSig verified when the RIM was fetched or imported' : `signature ${rim.signatureVerified ? 'ok' : 'INVALID'}, signer ${rim.certStatus}` });
    checks.push({ name: `rim.${kind}.version`, ok: versionOk, detail: versionOk ? `RIM version ${rim.version} is the signed ${kind} version` : `RIM version ${rim.version} ≠ signed ${kind} version ${versionWant}` });
    if (rim.measurements.length === 0) checks.push({ name: `rim.${kind}.measurements`, ok: false, detail: 'the RIM has no active measurement' });
    if (!signedOk || !versionOk || rim.measurements.length === 0) allOk = false;
    // Every available RIM's golden values are compared, even a RIM that failed a check above, so
    // the verdict names the measurements that differ (as NVIDIA's verifiers do); measres can only
    // be success when every RIM check passed as well.
    for (const m of rim.measurements) {
      if (golden.has(m.index)) conflict = true;
      golden.set(m.index, { source: kind, m });
    }
  }
  claims['x-nvidia-gpu-vbios-index-no-conflict'] = !conflict;
  if (conflict) {
    allOk = false;
    checks.push({ name: 'measurements.conflict', ok: false, detail: 'driver and VBIOS RIMs both claim a measurement index' });
  }
  // RIM index 35 (NVDEC0) is measured only while NVDEC0 is enabled (OPAQUE_FIELD_ID_NVDEC0_STATUS).
  const nvdec = opaque(s, 11)?.[0];
  const mismatched: Array<{ index: number; source: 'driver' | 'vbios' }> = [];
  const compared = { driver: 0, vbios: 0 };
  for (const [index, { source, m }] of [...golden.entries()].sort((a, b) => a[0] - b[0])) {
    if (index === 35 && nvdec === NVDEC_DISABLED) continue;
    compared[source]++;
    if (index === 35 && nvdec !== NVDEC_ENABLED) {
      mismatched.push({ index, source });
      continue;
    }
    const got = runtime.get(index);
    if (!got || !m.alternatives.some((a) => a.length === got.length && timingSafeEqual(a, got))) mismatched.push({ index, source });
  }
  for (const kind of ['driver', 'vbios'] as const) {
    if (!found[kind]) continue;
    const bad = mismatched.filter((x) => x.source === kind);
    checks.push({
      name: `measurements.${kind}`,
      ok: bad.length === 0,
      detail: bad.length === 0 ? `${compared[kind]} reference measurements of the ${kind} RIM match` : `measurement ${bad.map((x) => `${x.index} (${x.source})`).join(', ')} matches no RIM value`,
    });
  }
  const success = allOk && mismatched.length === 0;
  claims.measres = success ? 'success' : 'failure';
  if (success) {
    // As NVIDIA's verifiers: secure boot and debug status are attested by the measurements.
    claims.secboot = true;
    claims.dbgstat = 'disabled';
  } else if (mismatched.length) {
    claims['x-nvidia-mismatch-measurement-records'] = mismatched.map((x) => ({ index: x.index, source: x.source }));
  }
  return success;
}
