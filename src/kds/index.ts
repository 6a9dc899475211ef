/** Public surface of the KDS module. */
export { KdsFetcher, KdsNotFound, parseRetryAfter, pemToDer } from './fetcher';
export type { FetcherOptions, Fetched, Upstream } from './fetcher';
export { CertCache } from './cache';
export type { CertCacheDeps, LeafVerifier, CrlChecker, VekHit } from './cache';
export { parseTeeCertificates, guidBytes, guidString, CERT_TABLE_GUIDS } from './cert-table';
export type { EvidenceCerts } from './cert-table';
export { vcekPath, certChainPath, crlPath, vcekCacheKey, hwidFor, joinUrl } from './urls';
export type { Product, VekKind, ReportedTcb } from './urls';
