/**
 * The audit stream (docs/audit.md): one JSON line per security decision, numbered and hash-chained
 * so that a deleted, edited, reordered or truncated record shows (`tas audit verify`).
 *
 * Durability policy for `audit.file` (TAS_AUDIT_FILE): the file is opened O_APPEND and every record
 * is written with one synchronous write(2) before record() returns, so a crash of tas loses no
 * record and concurrent appenders never interleave. fdatasync(2) runs at most once per
 * FSYNC_DELAY_MS after records were written, and on close, so a power loss loses at most that
 * window. After a restart the chain continues from the last complete record of the file.
 */
import { closeSync, fdatasync, fdatasyncSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import type { Config } from '../config';
import { onReopen } from '../log';
import { AUDIT_VERSION, boundedString, recordHash, scrub, ZERO_HASH, type AuditRecord } from './record';
import type { AuditEvent, AuditLog } from './types';

export type { AuditEvent, AuditLog, AuditOutcome } from './types';
export { verifyAudit, type VerifyResult } from './verify';
export { recordHash, validateRecord, ZERO_HASH, AUDIT_VERSION, type AuditRecord } from './record';

/** Longest delay between a record and its fdatasync. */
export const FSYNC_DELAY_MS = 200;

/** AuditStream is the AuditLog of tas, with a little introspection for readiness and tests. */
export interface AuditStream extends AuditLog {
  /** Sequence number of the last record written (0 before the first). */
  readonly seq: number;
  /** Records that could not be written (disk full, closed file); readiness reports them. */
  readonly failures: number;
}

export interface AuditOptions {
  /** Write stdout-style lines here instead of fd 1 (tests). */
  write?: (line: string) => void;
  /** Install the SIGUSR1 reopen handler for the file (default true). */
  reopenOnSignal?: boolean;
  /** Clock (tests). */
  now?: () => Date;
}

/** openAudit opens the audit stream named by `audit.file` (unset: stdout, tagged "audit": true). */
export function openAudit(cfg: Config, opts: AuditOptions = {}): AuditStream {
  const file = cfg.get<string | undefined>('audit.file');
  return file === undefined ? new Stream(undefined, opts) : new Stream(file, opts);
}

class Stream implements AuditStream {
  seq = 0;
  failures = 0;
  private prev = ZERO_HASH;
  private fd: number | undefined;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly now: () => Date;
  private readonly writeOut: (line: string) => void;

  constructor(
    private readonly file: string | undefined,
    opts: AuditOptions,
  ) {
    this.now = opts.now ?? (() => new Date());
    this.writeOut = opts.write ?? ((line) => writeAll(1, line));
    if (file === undefined) return;
    this.fd = openSync(file, 'a+', 0o640);
    const recovered = this.resume(this.fd);
    if (opts.reopenOnSignal !== false) onReopen(() => this.reopen());
    if (recovered !== undefined) this.record({ event: 'audit.recovered', outcome: 'error', reason: 'AUDIT_TRUNCATED_TAIL', details: recovered });
  }

  record(ev: AuditEvent): void {
    if (this.closed) {
      this.failures++;
      return;
    }
    try {
      const body: Omit<AuditRecord, 'hash'> = {
        v: AUDIT_VERSION,
        seq: this.seq + 1,
        time: this.now().toISOString(),
        event: String(ev.event).slice(0, 64),
        outcome: ev.outcome,
        reason: String(ev.reason || 'UNSPECIFIED').slice(0, 128),
        request_id: boundedString(ev.requestId, 256),
        client: boundedString(ev.client, 256),
        details: (scrub(ev.details ?? {}) ?? {}) as Record<string, unknown>,
        prev: this.prev,
        ...(this.file === undefined ? { audit: true as const } : {}),
      };
      const rec = { ...body, hash: recordHash(body) };
      const line = `${JSON.stringify(rec)}\n`;
      if (this.fd !== undefined) writeAll(this.fd, line);
      else this.writeOut(line);
      this.seq = rec.seq;
      this.prev = rec.hash;
      if (this.fd !== undefined) this.scheduleSync();
    } catch (e) {
      // Never throw into request handling; the failure count feeds readiness and stderr says why.
      this.failures++;
      process.stderr.write(`tas: audit record not written: ${(e as Error).message}\n`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.fd !== undefined) {
      // Shutdown must finish even when the disk misbehaves: report, do not throw.
      try {
        fdatasyncSync(this.fd);
      } catch (e) {
        process.stderr.write(`tas: audit fdatasync at close failed: ${(e as Error).message}\n`);
      }
      try {
        closeSync(this.fd);
      } catch {
        /* already closed */
      }
      this.fd = undefined;
    }
  }

  /** reopen (SIGUSR1): logrotate renamed the file; continue the chain in a new one. */
  private reopen(): void {
    if (this.closed || this.file === undefined || this.fd === undefined) return;
    const old = this.fd;
    this.fd = openSync(this.file, 'a+', 0o640);
    try {
      fdatasyncSync(old);
    } finally {
      closeSync(old);
    }
  }

  private scheduleSync(): void {
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.dirty || this.fd === undefined) return;
      this.dirty = false;
      fdatasync(this.fd, (err) => {
        if (err) process.stderr.write(`tas: audit fdatasync failed: ${err.message}\n`);
      });
    }, FSYNC_DELAY_MS);
    this.timer.unref();
  }

  /**
   * resume reads the end of an existing file and continues its chain. A last line without its
   * newline (a crash or a full disk mid-write) is left as it is, for `tas audit verify` to report;
   * a newline is added so that the next record starts on its own line.
   */
  private resume(fd: number): Record<string, unknown> | undefined {
    const size = fstatSync(fd).size;
    if (size === 0) return undefined;
    let chunk = 64 * 1024;
    for (;;) {
      const len = Math.min(size, chunk);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      const text = buf.toString('utf8');
      const endsWithNewline = text.endsWith('\n');
      const lines = text.split('\n');
      const tail = lines.pop() ?? '';
      // The first line of a partial chunk may be cut: ignore it unless we read from offset 0.
      const complete = len < size ? lines.slice(1) : lines;
      for (let i = complete.length - 1; i >= 0; i--) {
        const r = parse(complete[i]!);
        if (r) {
          this.seq = r.seq;
          this.prev = r.hash;
          break;
        }
      }
      if (this.seq > 0 || len === size) {
        if (!endsWithNewline) {
          writeAll(fd, '\n');
          return { truncated_bytes: Buffer.byteLength(tail, 'utf8'), resumed_after_seq: this.seq };
        }
        return undefined;
      }
      chunk *= 4;
    }
  }
}

function parse(line: string): { seq: number; hash: string } | undefined {
  try {
    const r = JSON.parse(line) as { seq?: unknown; hash?: unknown };
    if (typeof r.seq === 'number' && typeof r.hash === 'string') return { seq: r.seq, hash: r.hash };
  } catch {
    /* not a record */
  }
  return undefined;
}

/** writeAll writes a whole line with write(2) (one call for lines below the pipe/file atomic size). */
function writeAll(fd: number, line: string): void {
  const buf = Buffer.from(line, 'utf8');
  let off = 0;
  let waits = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      // stdout may be a non-blocking pipe: wait for the reader a little instead of losing a record.
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN' || ++waits > 500) throw e;
      Atomics.wait(SLEEPER, 0, 0, 10);
    }
  }
}

const SLEEPER = new Int32Array(new SharedArrayBuffer(4));
