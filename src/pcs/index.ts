/** Public surface of the Intel PCS collateral module. */
export { PcsFetcher, decodeIssuerChain } from './fetcher';
export type { RawCollateral, PcsFetcherOptions } from './fetcher';
export { CollateralCache } from './cache';
export type { Collateral, CollateralOrOpen, CollateralChecker, CollateralWant, CollateralKind, CollateralCacheDeps, PcsCacheStats } from './cache';
export { signedSpan, SignedJsonError } from './signed-json';
export type { SignedSpan } from './signed-json';
export { tcbInfoPath, qeIdentityPath, pckCrlPath, cacheKeys, normFmspc, ISSUER_CHAIN_HEADERS } from './urls';
export type { CollateralUpdate, PckCa } from './urls';
