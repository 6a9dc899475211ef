/**
 * The audit stream: one JSON record per security decision (docs/audit.md documents the schema).
 * Records never carry secrets, nonces, wrapping keys or evidence bodies: callers pass digests.
 */

/** AuditOutcome is the verdict of a decision. */
export type AuditOutcome = 'allow' | 'deny' | 'error';

/** AuditEvent is what modules hand to AuditLog.record(); the log adds seq, time, prev and hash. */
export interface AuditEvent {
  /** What was decided, e.g. `get_secret`, `get_nonce`, `policy.store`, `policy.delete`, `auth`, `startup`. */
  readonly event: string;
  readonly outcome: AuditOutcome;
  /** Stable reason code (an error catalogue code or a finer SNP_ERR_* / POLICY_* reason). */
  readonly reason: string;
  readonly requestId?: string;
  readonly client?: string;
  /** Further non-secret fields (policy id, key id, digests, rule failures, product, ...). */
  readonly details?: Readonly<Record<string, unknown>>;
}

/** AuditLog appends records; it must not throw into request handling. */
export interface AuditLog {
  record(ev: AuditEvent): void;
  /**
   * whenWritten is undefined when every record so far was handed to the kernel (write(2)
   * returned), else a promise that settles when they were (or failed, counted). The HTTP layer
   * awaits it before sending a reply: audit durability (docs/audit.md). Optional for test fakes.
   */
  whenWritten?(): Promise<void> | undefined;
  /** Flushes and closes the stream (file or stdout). */
  close(): Promise<void>;
}
