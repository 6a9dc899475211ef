/**
 * Intel PCS v4 URL building (pure; TDX.md §4). Every URL tas asks Intel (or a PCCS) for is made
 * here: TDX TCB Info per FMSPC, the TD QE identity, the PCK CRL of the PCK certificate's issuer
 * (`ca=platform|processor`, always `encoding=der`: PCS defaults to PEM), and the root CA CRL (an
 * absolute URL, the root's CRL distribution point). `update` (standard|early) is part of the URL
 * and of every cache key: the verdict depends on it.
 */
export type CollateralUpdate = 'standard' | 'early';
export type PckCa = 'platform' | 'processor';

const FMSPC_RE = /^[0-9a-f]{12}$/;

/** normFmspc lowercases and checks an FMSPC (6 bytes). */
export function normFmspc(fmspc: string | Uint8Array): string {
  const h = typeof fmspc === 'string' ? fmspc.toLowerCase() : Buffer.from(fmspc).toString('hex');
  if (!FMSPC_RE.test(h)) throw new Error(`FMSPC must be 6 bytes of hex, got ${JSON.stringify(h.slice(0, 20))}`);
  return h;
}

/** tcbInfoPath is the TDX TCB Info of an FMSPC (never the SGX one at /sgx/…/tcb). */
export function tcbInfoPath(fmspc: string | Uint8Array, update: CollateralUpdate): string {
  return `/tdx/certification/v4/tcb?fmspc=${normFmspc(fmspc).toUpperCase()}&update=${update}`;
}

/** qeIdentityPath is the TD QE identity (TD_QE, not the SGX QE). */
export function qeIdentityPath(update: CollateralUpdate): string {
  return `/tdx/certification/v4/qe/identity?update=${update}`;
}

/** pckCrlPath is the CRL of a PCK CA, DER. */
export function pckCrlPath(ca: PckCa): string {
  return `/sgx/certification/v4/pckcrl?ca=${ca}&encoding=der`;
}

/** Cache keys (store blobs); the update mode is part of the TCB Info and QE identity keys. */
export const cacheKeys = {
  tcbInfo: (fmspc: string | Uint8Array, update: CollateralUpdate) => `pcs/tcb/${normFmspc(fmspc)}/${update}`,
  qeIdentity: (update: CollateralUpdate) => `pcs/qe/${update}`,
  pckCrl: (ca: PckCa) => `pcs/pckcrl/${ca}`,
  rootCrl: () => 'pcs/rootcrl',
} as const;

/** Issuer-chain response headers of PCS (URL-encoded PEM, signer first, root last). */
export const ISSUER_CHAIN_HEADERS = {
  tcbInfo: 'tcb-info-issuer-chain',
  qeIdentity: 'sgx-enclave-identity-issuer-chain',
  pckCrl: 'sgx-pck-crl-issuer-chain',
} as const;
