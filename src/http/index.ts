/** Public surface of the HTTP edge. */
export { buildServer } from './server';
export type { BuildOptions, HttpServices, RouteModule, StatusProvider, TlsOptions } from './server';
export { createEdge } from './edge';
export type { Edge } from './edge';
export { clientAuth, managementAuth, policyAuth, KeyRing } from './auth';
export { bodyLimit, serverLimits, InflightLimiter } from './limits';
export type { ServerLimits } from './limits';
export { MemoryRateLimitStore, RateLimiter, parseRate } from './rate-limit';
export type { RateLimitStore, Rate } from './rate-limit';
export { sendError, asTasError } from './errors';
export { clientAddress, rateKey, isLoopbackHost, parseCidr } from './address';
export { parseGetSecretRequest, decodeBase64Strict, ID_RE } from './get-secret';
