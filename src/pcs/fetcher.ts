/**
 * The Intel PCS client: the KDS fetcher's rules (single flight per URL, per-URL spacing and a
 * global rate, 429/503 Retry-After honoured, exponential backoff inside the caller's deadline,
 * bounded bodies, 404 negatively cached) with PCS's shapes: issuer chains arrive URL-encoded in a
 * response header (signer first, root last), CRLs are asked for in DER (PCS defaults to PEM; a PEM
 * answer is converted), the root CA CRL comes from an absolute URL. Everything returned here is
 * still untrusted: the cache verifies it against the pinned Intel root before use.
 */
import { TasError } from '../errors';
import { KdsFetcher, pemToDer, type FetcherOptions } from '../kds';
import { ISSUER_CHAIN_HEADERS, pckCrlPath, qeIdentityPath, tcbInfoPath, type CollateralUpdate, type PckCa } from './urls';

/** RawCollateral is one PCS answer as received: body (JSON or DER CRL) and the decoded issuer chain (PEM). */
export interface RawCollateral {
  body: Buffer;
  chain?: Buffer | undefined;
}

export type PcsFetcherOptions = Omit<FetcherOptions, 'service'> & { rootCrlUrl: string };

/** decodeIssuerChain URL-decodes an issuer-chain header into PEM bytes (refused when it holds no certificate). */
export function decodeIssuerChain(header: string | undefined, name: string): Buffer {
  if (header === undefined || header === '') throw new Error(`PCS sent no ${name} header`);
  let pem: string;
  try {
    pem = decodeURIComponent(header);
  } catch {
    throw new Error(`${name} header is not valid URL encoding`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`${name} header holds no PEM certificate`);
  return Buffer.from(pem, 'ascii');
}

export class PcsFetcher {
  private readonly f: KdsFetcher;
  private readonly rootCrlUrl: string;

  constructor(o: PcsFetcherOptions) {
    this.f = new KdsFetcher({
      perUrlIntervalMs: 2_000,
      globalPerSecond: 10,
      maxBodyBytes: 1024 * 1024,
      ...o,
      service: { name: 'PCS', code: 'PCS_UNAVAILABLE', offlineSetting: 'TAS_PCS_OFFLINE' },
    });
    this.rootCrlUrl = o.rootCrlUrl;
  }

  private async withChain(path: string, header: string, deadline: number): Promise<RawCollateral> {
    const r = await this.f.fetch(path, { deadline });
    try {
      return { body: r.body, chain: decodeIssuerChain(r.headers[header], header) };
    } catch (e) {
      throw new TasError('PCS_UNAVAILABLE', `PCS ${path}: ${(e as Error).message}`, { reason: 'PCS_BAD_RESPONSE', retryAfterSeconds: 30 });
    }
  }

  tcbInfo(fmspc: string, update: CollateralUpdate, deadline: number): Promise<RawCollateral> {
    return this.withChain(tcbInfoPath(fmspc, update), ISSUER_CHAIN_HEADERS.tcbInfo, deadline);
  }

  qeIdentity(update: CollateralUpdate, deadline: number): Promise<RawCollateral> {
    return this.withChain(qeIdentityPath(update), ISSUER_CHAIN_HEADERS.qeIdentity, deadline);
  }

  async pckCrl(ca: PckCa, deadline: number): Promise<RawCollateral> {
    const r = await this.withChain(pckCrlPath(ca), ISSUER_CHAIN_HEADERS.pckCrl, deadline);
    return { body: pemToDer(r.body)[0] ?? r.body, chain: r.chain };
  }

  async rootCrl(deadline: number): Promise<RawCollateral> {
    const body = await this.f.get(this.rootCrlUrl, { deadline });
    return { body: pemToDer(body)[0] ?? body };
  }

  close(): Promise<void> {
    return this.f.close();
  }
}
