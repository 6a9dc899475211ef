/**
 * Public surface of the SEV-SNP layer: product detection, TCB layouts, claims (PROTOCOL.md §3.4),
 * trust anchors (pinned AMD roots + labelled test roots), evidence verification and the startup
 * self-test. Cryptography is done by src/native only.
 */
export { PRODUCTS, isProduct, productFromCpuid, detectProduct } from './product';
export type { Product, CpuId, ProductDecision } from './product';
export { decodeTcb, tcbClaims, firstExceeding, formatTcb } from './tcb';
export type { TcbClaims, TcbParts } from './tcb';
export { CLAIM_SCHEMA, buildClaims } from './claims';
export type { Claims, ClaimSchemaNode, GuestPolicyClaims, PlatformInfoClaims, VersionClaims, U64 } from './claims';
export { peekReport } from './peek';
export { ParsedOnce } from './peek';
export type { ReportPeek } from './peek';
export { SnpVerifier, verifySnpEvidence, constantTimeEqual } from './verify';
export type { SnpEvidence, SnpVerifierOptions, SnpVerification, SnpCheckResult, Check } from './verify';
export { loadSnpTrust, snpTrustFromConfig, trustStatus, testRootsWarning, anchorsFor, pinnedArk, pinnedIntermediate, PINNED_ONLY } from './trust';
export type { SnpTrust, TrustStatus, ExtraCert } from './trust';
export { PINNED_ROOTS, SELF_TEST_VECTOR } from './roots';
export { selfTest } from './selftest';
export { registerTrustMetrics, registerVekTableMetric } from './metrics';
export type { SelfTestResult } from './selftest';
export { SNP_REASONS } from './reasons';
export type { SnpReason } from './reasons';
