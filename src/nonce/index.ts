/** Public surface of the nonce life cycle (PROTOCOL.md §2). */
export { NonceService, parseNonce, nonceDigest, DEFAULT_LEASE_MS } from './service';
export type { NonceClaim, NonceOptions } from './service';
export { registerNonceRoutes, nonceRoutes } from './routes';
export type { AuthHook } from './routes';
