/**
 * AppContext is what the daemon hands every module at start: the current configuration, loggers,
 * the audit stream, the metrics registry, readiness checks and life-cycle hooks. Modules never
 * reach for globals; tests build an AppContext of their own.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../config';
import type { AuditLog } from '../audit/types';

/** ReadinessCheck returns undefined when the dependency is fine, else a short reason. */
export type ReadinessCheck = () => Promise<string | undefined> | string | undefined;

export interface Readiness {
  /** register adds a named dependency (e.g. `store`, `kbm`, `selftest`). */
  register(name: string, check: ReadinessCheck): void;
  /** check runs every check; failed maps each failed name to its reason. */
  check(): Promise<{ ready: boolean; failed: Record<string, string> }>;
}

export interface Lifecycle {
  /** onReload runs on SIGHUP with the newly loaded configuration (keys, TLS, log level, trust). */
  onReload(fn: (cfg: Config) => void | Promise<void>): void;
  /** onClose runs on shutdown, in reverse registration order, after in-flight requests drained. */
  onClose(fn: () => void | Promise<void>): void;
}

export interface AppContext {
  /** config returns the current configuration (replaced on SIGHUP). */
  config(): Config;
  readonly log: Logger;
  readonly audit: AuditLog;
  readonly metrics: Registry;
  readonly readiness: Readiness;
  readonly lifecycle: Lifecycle;
}
