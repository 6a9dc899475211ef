/**
 * Policy routes, one namespace (PROTOCOL.md §1 and §3.3):
 *   management  POST /management/policy/v0/store, GET …/get/<id>, GET …/list, DELETE …/delete/<id>
 *   first dialect  POST /policy/v0/store (policy_identifier or key_id form), GET /policy/v0/get/<key>,
 *                  GET /policy/v0/list, DELETE /policy/v0/delete/<name>
 * Authentication hooks come from the HTTP edge (passed in, so that src/policy does not import
 * src/http at run time: imports flow http -> policy). Errors are thrown as TasError; the edge's
 * error handler turns them into `{"error": "<catalogue text>"}`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { TasError } from '../errors';
import { normalisePolicyType, policyTypeOf, POLICY_ID_RE, type PolicyType } from './schema';
import type { PolicyService } from './service';

type Hook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** PolicyRouteDeps are the edge's hooks and limits. */
export interface PolicyRouteDeps {
  /** Management key in X-MANAGEMENT-API-KEY (src/http managementAuth). */
  readonly managementAuth: Hook;
  /** Management key in X-MANAGEMENT-API-KEY or X-API-KEY (src/http policyAuth). */
  readonly policyAuth: Hook;
  /** Body limit of management routes (src/http bodyLimit.management, 1 MiB). */
  readonly bodyLimit: number;
}

/** RouteModule shape of src/http (`services.routes`). */
export interface PolicyRouteModule {
  readonly name: string;
  readonly scope: 'client' | 'management';
  register(app: FastifyInstance): void | Promise<void>;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const stored = (id: string) => ({ message: `Policy 'policy:${id}' stored successfully` });
const deleted = (id: string) => ({ message: `Policy 'policy:${id}' deleted successfully` });
const UNSIGNED_WARNING = 'WARNING: Policy is not signed and cannot be verified for integrity';

function caller(request: FastifyRequest): { requestId: string; client: string } {
  return { requestId: String(request.id), client: request.clientAddress ?? request.ip };
}

function badId(id: string): TasError {
  return new TasError('POLICY_ID_INVALID', `policy key ${JSON.stringify(id.slice(0, 140))} is not a valid policy id`, { reason: 'POLICY_ID_INVALID' });
}

/**
 * parseFirstDialectKey reads `policy:<type>:<id>`, `<type>:<id>`, `policy:<id>` or `<id>`.
 * The type, when given, must be SEV, SNP or TDX; the id must match ^[A-Za-z0-9_.-]{1,128}$.
 */
export function parseFirstDialectKey(key: string): { id: string; type: PolicyType | undefined } {
  let rest = key;
  if (rest.startsWith('policy:')) rest = rest.slice('policy:'.length);
  const parts = rest.split(':');
  if (parts.length === 1 && POLICY_ID_RE.test(parts[0]!)) return { id: parts[0]!, type: undefined };
  if (parts.length === 2) {
    const type = normalisePolicyType(parts[0]);
    if (type !== undefined && POLICY_ID_RE.test(parts[1]!)) return { id: parts[1]!, type };
  }
  throw badId(key);
}

/**
 * firstDialectDocument turns a first-dialect store body into the stored document: the id and
 * policy_type (and key_id for the key_id form) are filled into metadata when absent; present
 * values must agree with the body (a signature may cover them).
 */
export function firstDialectDocument(body: unknown): { id: string; doc: Record<string, unknown> } {
  const bad = (detail: string) => new TasError('POLICY_FIRST_DIALECT_BODY', detail, { reason: 'POLICY_FIRST_DIALECT_BODY' });
  if (body === undefined || body === null) throw new TasError('POLICY_BODY_MISSING', 'request body is empty', { reason: 'POLICY_BODY_MISSING' });
  if (!isObj(body)) throw bad('body is not a JSON object');
  const type = normalisePolicyType(body.policy_type);
  if (type === undefined) throw bad(`policy_type must be SNP, SEV or TDX, got ${JSON.stringify(body.policy_type)?.slice(0, 40)}`);
  const ident = body.policy_identifier;
  const keyId = body.key_id;
  if (ident === undefined && keyId === undefined) throw bad('neither policy_identifier nor key_id given');
  for (const [name, v] of [['policy_identifier', ident], ['key_id', keyId]] as const) {
    if (v !== undefined && (typeof v !== 'string' || !POLICY_ID_RE.test(v))) {
      throw new TasError('POLICY_ID_INVALID', `${name} ${JSON.stringify(v)?.slice(0, 140)} does not match ^[A-Za-z0-9_.-]{1,128}$`, { reason: 'POLICY_ID_INVALID' });
    }
  }
  const id = (ident ?? keyId) as string;
  if (!isObj(body.policy)) throw bad('policy is missing or not a JSON object');
  const meta: Record<string, unknown> = isObj(body.policy.metadata) ? { ...body.policy.metadata } : {};
  if (body.policy.metadata !== undefined && !isObj(body.policy.metadata)) throw bad('policy.metadata is not a JSON object');
  const fill = (field: string, value: string, same: (a: unknown) => boolean) => {
    if (meta[field] === undefined) meta[field] = value;
    else if (!same(meta[field])) throw bad(`policy.metadata.${field} ${JSON.stringify(meta[field])?.slice(0, 140)} disagrees with the request (${value})`);
  };
  fill('policy_id', id, (a) => a === id);
  fill('policy_type', String(body.policy_type).toUpperCase(), (a) => normalisePolicyType(a) === type);
  if (typeof keyId === 'string') fill('key_id', keyId, (a) => a === keyId);
  return { id, doc: { ...body.policy, metadata: meta } };
}

/** registerPolicyRoutes adds every policy route to a fastify instance. */
export function registerPolicyRoutes(app: FastifyInstance, service: PolicyService, deps: PolicyRouteDeps): void {
  const mgmt = { onRequest: deps.managementAuth, bodyLimit: deps.bodyLimit };
  const first = { onRequest: deps.policyAuth, bodyLimit: deps.bodyLimit };
  const deprecation = (reply: FastifyReply, successor: string) => {
    reply.header('deprecation', 'true');
    reply.header('link', `<${successor}>; rel="successor-version"`);
  };

  // --- management routes ------------------------------------------------------------------------
  app.post('/management/policy/v0/store', mgmt, async (request, reply) => {
    const p = await service.store(request.body, { dialect: 'management', ...caller(request) });
    return reply.code(201).send({ ...stored(p.id), ...(p.signed ? {} : { warning: UNSIGNED_WARNING }) });
  });
  app.get<{ Params: { id: string } }>('/management/policy/v0/get/:id', mgmt, async (request) => {
    const id = request.params.id;
    if (!POLICY_ID_RE.test(id)) throw badId(id);
    return { policy_key: `policy:${id}`, policy: await service.get(id) };
  });
  app.get('/management/policy/v0/list', mgmt, async () => {
    const policies = await service.list();
    return { policies, count: policies.length };
  });
  app.delete<{ Params: { id: string } }>('/management/policy/v0/delete/:id', mgmt, async (request) => {
    const id = request.params.id;
    if (!POLICY_ID_RE.test(id)) throw badId(id);
    await service.delete(id, caller(request));
    return deleted(id);
  });

  // --- first-dialect routes (README of the original's first release) ------------------------------
  app.post('/policy/v0/store', first, async (request, reply) => {
    deprecation(reply, '/management/policy/v0/store');
    let doc: Record<string, unknown>;
    try {
      ({ doc } = firstDialectDocument(request.body));
    } catch (e) {
      // Shape errors of the envelope are audited like every refused store.
      service.refused('policy.store', e, caller(request), { dialect: 'first' });
      throw e;
    }
    const p = await service.store(doc, { dialect: 'first', ...caller(request) });
    return reply.code(201).send({ ...stored(p.id), ...(p.signed ? {} : { warning: UNSIGNED_WARNING }) });
  });
  app.get<{ Params: { key: string } }>('/policy/v0/get/:key', first, async (request, reply) => {
    deprecation(reply, '/management/policy/v0/get/<policy_id>');
    const { id, type } = parseFirstDialectKey(request.params.key);
    const doc = await service.get(id);
    if (type !== undefined && policyTypeOf(doc) !== type) {
      throw new TasError('POLICY_NOT_FOUND', `policy:${id} has type ${doc.metadata.policy_type}, not ${type}`, { params: { id }, reason: 'POLICY_NOT_FOUND' });
    }
    return { policy_key: `policy:${id}`, policy: doc };
  });
  app.get('/policy/v0/list', first, async (_request, reply) => {
    deprecation(reply, '/management/policy/v0/list');
    const policies = (await service.list()).map((p) => ({
      policy_key: `policy:${p.policy_id}`,
      name: p.name,
      version: p.version,
      description: p.description,
      signed: p.signed,
    }));
    return { policies, count: policies.length };
  });
  app.delete<{ Params: { name: string } }>('/policy/v0/delete/:name', first, async (request, reply) => {
    deprecation(reply, '/management/policy/v0/delete/<policy_id>');
    const { id, type } = parseFirstDialectKey(request.params.name);
    if (type !== undefined) {
      const doc = await service.get(id);
      if (policyTypeOf(doc) !== type) {
        throw new TasError('POLICY_NOT_FOUND', `policy:${id} has type ${doc.metadata.policy_type}, not ${type}`, { params: { id }, reason: 'POLICY_NOT_FOUND' });
      }
    }
    await service.delete(id, caller(request));
    return deleted(id);
  });
}

/** policyRouteModule is the `services.routes` entry the daemon hands the HTTP edge. */
export function policyRouteModule(service: PolicyService, deps: PolicyRouteDeps): PolicyRouteModule {
  return { name: 'policy', scope: 'management', register: (app) => registerPolicyRoutes(app, service, deps) };
}
