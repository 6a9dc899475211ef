/**
 * `GET /kb/v0/get_nonce` (PROTOCOL.md §1): `{"nonce": "<64 lowercase hex>"}` for a client key.
 * The route module has the shape of src/http's RouteModule; the auth hook is passed in by the
 * composition root so that this module does not import the HTTP edge (imports flow http -> nonce).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Gauge } from 'prom-client';
import type { AppContext } from '../daemon/context';
import { isTasError } from '../errors';
import type { RateCharge } from '../store/types';
import { nonceDigest, type NonceService } from './service';

/** AuthHook is an onRequest hook such as src/http's clientAuth. */
export type AuthHook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** registerNonceRoutes adds get_nonce to app, authenticated by `auth` (client keys). */
export function registerNonceRoutes(app: FastifyInstance, ctx: AppContext, nonces: NonceService, auth: AuthHook): void {
  if (ctx.metrics.getSingleMetric('tas_nonces_outstanding') === undefined) {
    new Gauge({
      name: 'tas_nonces_outstanding',
      help: 'Issued or claimed, unexpired nonces (capped by TAS_NONCE_MAX_OUTSTANDING); fleet-wide on Redis',
      registers: [ctx.metrics],
      async collect() {
        // A store outage must not break /metrics: the gauge keeps its last value.
        try {
          this.set(await nonces.outstanding());
        } catch {
          /* STORE_UNAVAILABLE shows on /readyz */
        }
      },
    });
  }
  // rateLimit 'with-nonce': when the edge's rate counter shares the nonces' store, the client's
  // budget is counted inside the issue (one store operation; on Redis one round trip for the route).
  app.get('/kb/v0/get_nonce', { onRequest: auth, config: { rateLimit: 'with-nonce' } }, async (request) => {
    const client = (request as { clientAddress?: string }).clientAddress ?? request.ip;
    const r = request as { rateCharge?: RateCharge };
    const charge = r.rateCharge;
    r.rateCharge = undefined;
    try {
      const nonce = await nonces.issue(charge);
      // The audit trail links get_nonce to get_secret by digest; the nonce itself never leaves the reply.
      ctx.audit.record({ event: 'get_nonce', outcome: 'allow', reason: 'OK', requestId: request.id, client, details: { nonce_sha256: nonceDigest(nonce) } });
      return { nonce };
    } catch (e) {
      // A refused budget is the edge's answer, unaudited as when the edge counted it itself.
      if (isTasError(e) && e.code === 'HTTP_RATE_LIMITED') throw e;
      const reason = isTasError(e) ? e.reason : 'INTERNAL';
      ctx.audit.record({ event: 'get_nonce', outcome: 'error', reason, requestId: request.id, client });
      throw e;
    }
  });
}

/** nonceRoutes is the RouteModule (src/http `services.routes`) serving get_nonce on the client listener. */
export function nonceRoutes(nonces: NonceService, auth: AuthHook): { name: string; scope: 'client'; register(app: FastifyInstance, ctx: AppContext): void } {
  return { name: 'nonce', scope: 'client', register: (app, ctx) => registerNonceRoutes(app, ctx, nonces, auth) };
}
