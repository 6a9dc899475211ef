/**
 * The one place where errors become HTTP replies. Every thrown error, fastify's own framework
 * errors, unknown routes and wrong methods come through here and leave as `{"error": "<text>"}`
 * from the catalogue. The precise reason is logged; the wire carries only the catalogue text.
 * Malformed input never maps to 500: any fastify error with a 4xx status is a client error.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { TasError, isTasError, toWire, type ErrorCode } from '../errors';

/** Fastify error codes and the catalogue code each becomes. */
const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'HTTP_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'HTTP_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'HTTP_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'HTTP_BAD_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'HTTP_BAD_JSON',
  FST_ERR_BAD_URL: 'HTTP_BAD_REQUEST',
  FST_ERR_MAX_PARAM_LENGTH: 'HTTP_BAD_REQUEST',
  FST_ERR_NOT_FOUND: 'HTTP_NOT_FOUND',
};

/** asTasError classifies anything thrown while serving a request. */
export function asTasError(err: unknown): TasError {
  if (isTasError(err)) return err;
  const e = err as Partial<FastifyError> & Error;
  const mapped = e?.code !== undefined ? FASTIFY_CODES[e.code] : undefined;
  if (mapped) return new TasError(mapped, `${e.code}: ${e.message}`, { cause: err });
  // JSON.parse and secure-json-parse (prototype poisoning) errors carry statusCode 400.
  if (e instanceof SyntaxError) return new TasError('HTTP_BAD_JSON', e.message, { cause: err });
  const status = typeof e?.statusCode === 'number' ? e.statusCode : undefined;
  if (status === 408) return new TasError('HTTP_TIMEOUT', e.message, { cause: err });
  if (status === 413) return new TasError('HTTP_BODY_TOO_LARGE', e.message, { cause: err });
  if (status === 415) return new TasError('HTTP_UNSUPPORTED_MEDIA_TYPE', e.message, { cause: err });
  if (status !== undefined && status >= 400 && status < 500) return new TasError('HTTP_BAD_REQUEST', `${e.code ?? 'client error'}: ${e.message}`, { cause: err });
  return new TasError('INTERNAL', e instanceof Error ? e.message : String(err), { cause: err });
}

/** sendError writes the reply for an error and logs its full reason (never secrets: details are written for logs). */
export function sendError(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const t = asTasError(err);
  const wire = toWire(t);
  const fields = { code: t.code, reason: t.reason, status: wire.status, detail: t.detail, route: request.routeOptions?.url ?? 'unmatched' };
  if (wire.status >= 500 && t.code === 'INTERNAL') request.log.error({ ...fields, err }, 'request failed');
  else request.log.info(fields, 'request refused');
  return reply.code(wire.status).headers(wire.headers).type('application/json; charset=utf-8').send(wire.body);
}

/**
 * installErrorHandling sets the error handler and the not-found handler. A path that exists with
 * another method answers 405 with Allow; anything else 404. Routes are matched by their pattern,
 * so the reply never depends on client-chosen text beyond "matches or not".
 */
export function installErrorHandling(app: FastifyInstance, beforeError?: (request: FastifyRequest) => Promise<void>): void {
  const patterns: Array<{ re: RegExp; method: string }> = [];
  app.addHook('onRoute', (opts) => {
    const re = new RegExp(`^${opts.url.split('/').map((seg) => (seg.startsWith(':') ? '[^/]+' : escapeRe(seg))).join('/')}$`);
    for (const m of Array.isArray(opts.method) ? opts.method : [opts.method]) patterns.push({ re, method: m });
  });
  if (beforeError === undefined) app.setErrorHandler((err, request, reply) => sendError(err, request, reply));
  else {
    app.setErrorHandler(async (err, request, reply) => {
      try {
        await beforeError(request);
      } catch (e) {
        return sendError(e, request, reply);
      }
      return sendError(err, request, reply);
    });
  }
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const allowed = [...new Set(patterns.filter((p) => p.re.test(path)).map((p) => p.method))];
    if (allowed.length) {
      reply.header('allow', allowed.join(', '));
      return sendError(new TasError('HTTP_METHOD_NOT_ALLOWED', `${request.method} not allowed (allowed: ${allowed.join(', ')})`), request, reply);
    }
    return sendError(new TasError('HTTP_NOT_FOUND', `no route ${request.method} ${truncate(path)}`), request, reply);
  });
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** truncate bounds client-chosen text that goes to the log. */
export function truncate(s: string, max = 200): string {
  return s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s;
}
