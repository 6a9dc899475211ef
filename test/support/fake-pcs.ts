/**
 * A fake Intel PCS: the fake KDS server (real HTTP on a free loopback port, fault injection,
 * request counts) serving PCS v4 paths the way api.trustedservices.intel.com does — TDX TCB Info
 * and TD QE identity JSON with their URL-encoded PEM issuer chains in `TCB-Info-Issuer-Chain` /
 * `SGX-Enclave-Identity-Issuer-Chain`, the PCK CRL in DER with `SGX-PCK-CRL-Issuer-Chain`, and the
 * root CA CRL at its own path (point TAS_PCS_ROOT_CRL_URL at `rootCrlUrl`). It serves genuine
 * collateral (test/fixtures/tdx-vectors) as well as the fake DCAP signer's.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeKds } from './fake-kds';

export interface PcsCollateral {
  fmspc: string;
  tcbInfo: Buffer;
  tcbInfoChain: Buffer;
  qeIdentity: Buffer;
  qeIdentityChain: Buffer;
  pckCrl: Buffer;
  pckCrlChain: Buffer;
  rootCrl: Buffer;
  ca?: 'platform' | 'processor';
  update?: 'standard' | 'early';
}

/** pcsEncode URL-encodes a PEM chain like PCS does (%0A, %20, %2B, %3D, …). */
export const pcsEncode = (pem: Buffer | string): string => encodeURIComponent(pem.toString());

export class FakePcs extends FakeKds {
  get rootCrlUrl(): string {
    return `${this.url}/IntelSGXRootCA.der`;
  }

  /** serveCollateral registers one collateral set (any number of FMSPCs may be served). */
  serveCollateral(c: PcsCollateral): this {
    const update = c.update ?? 'standard';
    this.serve(`/tdx/certification/v4/tcb?fmspc=${c.fmspc.toUpperCase()}&update=${update}`, c.tcbInfo, 'application/json', { 'TCB-Info-Issuer-Chain': pcsEncode(c.tcbInfoChain), 'Request-ID': 'fake' });
    this.serve(`/tdx/certification/v4/qe/identity?update=${update}`, c.qeIdentity, 'application/json', { 'SGX-Enclave-Identity-Issuer-Chain': pcsEncode(c.qeIdentityChain) });
    this.serve(`/sgx/certification/v4/pckcrl?ca=${c.ca ?? 'platform'}&encoding=der`, c.pckCrl, 'application/pkix-crl', { 'SGX-PCK-CRL-Issuer-Chain': pcsEncode(c.pckCrlChain) });
    this.serve('/IntelSGXRootCA.der', c.rootCrl, 'application/pkix-crl');
    return this;
  }
}

/** vectorCollateral reads a tdx-vectors directory (or one laid out like it) as PcsCollateral. */
export function vectorCollateral(dir: string, fmspc: string): PcsCollateral {
  const f = (n: string) => readFileSync(join(dir, n));
  return {
    fmspc, tcbInfo: f('tcb_info.json'), tcbInfoChain: f('tcb_info_issuer_chain.pem'), qeIdentity: f('qe_identity.json'),
    qeIdentityChain: f('qe_identity_issuer_chain.pem'), pckCrl: f('pck_crl.der'), pckCrlChain: f('pck_crl_issuer_chain.pem'), rootCrl: f('root_ca_crl.der'),
  };
}
