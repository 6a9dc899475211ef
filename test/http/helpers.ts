/** Shared helpers of the HTTP edge tests: an in-process edge for inject(), and attesters to drive it. */
import { Registry } from 'prom-client';
import type { FastifyInstance } from 'fastify';
import type { Attester, GetSecretRequest, RequestContext, SecretKeyReply } from '../../src/attest/types';
import { UnavailableAttester } from '../../src/attest';
import type { AppContext } from '../../src/daemon/context';
import { createLifecycle, createReadiness } from '../../src/daemon/runtime';
import { buildServer, createEdge, type BuildOptions, type Edge, type HttpServices, type RateLimitStore } from '../../src/http';
import { CLIENT_KEY, MGMT_KEY, MemoryAudit, capturedLog, testConfig } from '../support/daemon';

export { CLIENT_KEY, MGMT_KEY };

export interface TestEdge {
  app: FastifyInstance;
  edge: Edge;
  ctx: AppContext;
  audit: MemoryAudit;
  logLines: Array<Record<string, unknown>>;
}

/** makeApp builds one fastify instance exactly as the daemon does (no listening; use inject()). */
export async function makeApp(
  env: Record<string, string> = {},
  services: Partial<HttpServices> = {},
  opts: BuildOptions & { store?: RateLimitStore; configure?: (ctx: AppContext) => void } = {},
): Promise<TestEdge> {
  const cfg = testConfig(env);
  const audit = new MemoryAudit();
  const { log, lines } = capturedLog();
  const ctx: AppContext = { config: () => cfg, log, audit, metrics: new Registry(), readiness: createReadiness(200), lifecycle: createLifecycle() };
  opts.configure?.(ctx);
  const edge = createEdge(cfg, audit, opts.store);
  const app = await buildServer(ctx, edge, { attester: new UnavailableAttester(), ...services }, opts);
  return { app, edge, ctx, audit, logLines: lines };
}

export const NONCE = 'ab'.repeat(32);

/** validBody is a syntactically valid get_secret body (the evidence is not a real report). */
export function validBody(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'tee-type': 'amd-sev-snp',
    nonce: `"${NONCE}"`,
    'tee-evidence': Buffer.alloc(1184, 7).toString('base64'),
    'wrapping-key': Buffer.alloc(270, 9).toString('base64'),
    'policy-id': 'sev-local-001',
    'report-data-binding': true,
    ...extra,
  };
}

export const SECRET: SecretKeyReply = { wrapped_key: 'AAAA', blob: 'BBBB', iv: 'CCCC', tag: 'DDDD' };

/** RecordingAttester returns SECRET and remembers what it was asked. */
export class RecordingAttester implements Attester {
  readonly calls: Array<{ req: GetSecretRequest; ctx: RequestContext }> = [];
  async getSecret(req: GetSecretRequest, ctx: RequestContext): Promise<SecretKeyReply> {
    this.calls.push({ req, ctx });
    return SECRET;
  }
}

/** BlockingAttester holds every call until release() — lets a test fill the in-flight slots. */
export class BlockingAttester implements Attester {
  started = 0;
  private waiters: Array<() => void> = [];
  private onStart: Array<() => void> = [];
  async getSecret(): Promise<SecretKeyReply> {
    this.started++;
    for (const f of this.onStart.splice(0)) f();
    await new Promise<void>((r) => this.waiters.push(r));
    return SECRET;
  }
  /** whenStarted resolves once `n` calls are inside getSecret. */
  async whenStarted(n: number): Promise<void> {
    while (this.started < n) await new Promise<void>((r) => this.onStart.push(r));
  }
  release(): void {
    for (const r of this.waiters.splice(0)) r();
  }
}

export const clientHeaders = { 'x-api-key': CLIENT_KEY };
export const mgmtHeaders = { 'x-management-api-key': MGMT_KEY };
