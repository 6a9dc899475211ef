/**
 * The TDX verification layer: the native addon checks everything cryptographic (quote structure,
 * PCK chain to the pinned Intel root at the verification time, both CRLs, QE report signature,
 * attestation-key binding, quote signature, tcbInfo / QE identity signatures over their exact
 * bytes); this layer then appraises the collateral content and TCB (./tcb.ts) and builds the
 * claims (./claims.ts). Collateral is an input (src/pcs fetches and caches it; `tas verify` reads
 * a directory): this module does no I/O and reads no clock.
 */
import { NativeError, nativeToTasError, parseTdxQuote, verifyTdxQuote, type TdxQuote, type TdxVerifyResult } from '../native';
import { TasError } from '../errors';
import { signedSpan, SignedJsonError, type CollateralUpdate, type PckCa, type RawCollateral } from '../pcs';
import { tdxClaims, type QuoteFields } from './claims';
import { appraiseTcb, parseQeIdentity, parseTcbInfo, TcbError, type TcbVerdict } from './tcb';

/** TdxPeek is what peek read of a quote without crypto: the parse and which collateral it needs. */
export interface TdxPeek {
  quote: TdxQuote;
  /** FMSPC named by the (not yet verified) PCK certificate: selects the TCB Info to fetch. */
  fmspc: string;
  /** Which PCK CA issued the leaf (by its issuer name): selects the PCK CRL. */
  ca: PckCa;
}

/**
 * CollateralSet is the collateral a verification uses. A CRL is undefined only when the collateral
 * cache passed it over under TAS_CRL_FAIL_MODE=open: revocation by it is then not checked (the
 * native `revocation` check and the caller's audit notes say so).
 */
export interface CollateralSet {
  tcbInfo: RawCollateral;
  qeIdentity: RawCollateral;
  pckCrl: RawCollateral | undefined;
  rootCrl: RawCollateral | undefined;
  update: CollateralUpdate;
}

export interface TdxVerification {
  claims: Record<string, unknown>;
  tcb: TcbVerdict;
  reportData: Buffer;
  native: TdxVerifyResult;
}

export interface TdxVerifierOptions {
  /** Pinned Intel root (+ extra lab roots), DER or PEM. */
  trustRoots: () => Buffer[];
  minEvalNumber?: () => number;
}

// OID 1.2.840.113741.1.13.1.4 (SGX extension: FMSPC) followed by OCTET STRING(6).
const FMSPC_OID = Buffer.from('060a2a864886f84d010d01040406', 'hex');

function firstPemDer(pem: Buffer): Buffer | undefined {
  const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/.exec(pem.toString('latin1'));
  return m ? Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64') : undefined;
}

/**
 * peekQuote parses a quote (native, no crypto) and reads which collateral it needs from its PCK
 * leaf by a bounded byte search. That read only chooses what to fetch: the native verification
 * later proves the leaf, and the appraisal refuses TCB Info whose FMSPC differs from the verified one.
 */
export function peekQuote(quote: Buffer): TdxPeek {
  let q: TdxQuote;
  try {
    q = parseTdxQuote(quote);
  } catch (e) {
    throw e instanceof NativeError ? nativeToTasError(e) : e;
  }
  const leaf = firstPemDer(q.pckChain);
  const at = leaf ? leaf.indexOf(FMSPC_OID) : -1;
  if (!leaf || at < 0 || at + FMSPC_OID.length + 6 > leaf.length) {
    throw new TasError('TEE_VERIFICATION_FAILED', 'the PCK certificate in the quote names no FMSPC', { reason: 'TDX_ERR_SGX_EXT' });
  }
  const fmspc = leaf.subarray(at + FMSPC_OID.length, at + FMSPC_OID.length + 6).toString('hex');
  const ca: PckCa = leaf.includes(Buffer.from('Intel SGX PCK Processor CA', 'latin1')) ? 'processor' : 'platform';
  return { quote: q, fmspc, ca };
}

function span(raw: RawCollateral, member: 'tcbInfo' | 'enclaveIdentity') {
  try {
    return signedSpan(raw.body, member);
  } catch (e) {
    if (e instanceof SignedJsonError) throw new TcbError('TDX_COLLATERAL_FORMAT', `${member}: ${e.message}`);
    throw e;
  }
}

const asTas = (e: unknown): unknown => {
  if (e instanceof NativeError) return nativeToTasError(e);
  if (e instanceof TcbError) return new TasError('TEE_VERIFICATION_FAILED', e.message, { reason: e.reason });
  return e;
};

/** quoteFields adapts the native quote to the claims' structural shape. */
export function quoteFields(q: TdxQuote): QuoteFields {
  return { header: q.header, version: q.version, bodyType: q.bodyType, body: q.body, qeReport: q.qeReport };
}

export class TdxVerifier {
  constructor(private readonly o: TdxVerifierOptions) {}

  /** verify runs every check at `at`; throws TasError (4xx definitive) on the first failure. */
  async verify(quote: Buffer, peek: TdxPeek, c: CollateralSet, at: Date): Promise<TdxVerification> {
    try {
      const tcbSpan = span(c.tcbInfo, 'tcbInfo');
      const qeSpan = span(c.qeIdentity, 'enclaveIdentity');
      if (!c.tcbInfo.chain || !c.qeIdentity.chain) throw new TcbError('TDX_COLLATERAL_FORMAT', 'tcbInfo / QE identity issuer chain missing');
      // Content first (cheap, no crypto): a wrong FMSPC or an SGX TCB Info is named precisely.
      const info = parseTcbInfo(tcbSpan.value);
      const qeId = parseQeIdentity(qeSpan.value);
      const native = await verifyTdxQuote({
        quote, trustRoots: this.o.trustRoots(), rootCrl: c.rootCrl?.body ?? null, pckCrl: c.pckCrl?.body ?? null,
        tcbInfo: { bodyBytes: tcbSpan.bodyBytes, signature: tcbSpan.signature, chain: c.tcbInfo.chain },
        qeIdentity: { bodyBytes: qeSpan.bodyBytes, signature: qeSpan.signature, chain: c.qeIdentity.chain },
        at: Math.floor(at.getTime() / 1000),
        omitQuote: true,
      });
      const q = peek.quote;
      const sgx = native.pck.sgx;
      const tcb = appraiseTcb(info, qeId, {
        teeTcbSvn: q.body.teeTcbSvn, teeTcbSvn2: q.body.teeTcbSvn2, mrSignerSeam: q.body.mrSignerSeam, seamAttributes: q.body.seamAttributes,
        bodyType: q.bodyType, qe: q.qeReport,
        pck: { tcbComponents: sgx.tcbComponents, pceSvn: sgx.pceSvn, fmspc: sgx.fmspc, pceId: sgx.pceId },
      }, { at, minEvalNumber: this.o.minEvalNumber?.() ?? 0 });
      const claims = tdxClaims(quoteFields(q), tcb, c.update);
      return { claims, tcb, reportData: Buffer.from(q.body.reportData), native };
    } catch (e) {
      throw asTas(e);
    }
  }
}
