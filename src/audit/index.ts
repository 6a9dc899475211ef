/**
 * The audit stream (docs/audit.md): one JSON line per security decision, numbered and hash-chained
 * so that a deleted, edited, reordered or truncated record shows (`tas audit verify`).
 *
 * Durability policy for `audit.file` (TAS_AUDIT_FILE): the file is opened O_APPEND. record() only
 * queues the record; a writer hands queued records to the kernel with asynchronous write(2)s (the
 * records of one event-loop turn go together, and those that arrived while one write was under way
 * go together in the next), so the event loop never blocks on the disk. The HTTP layer awaits whenWritten() before it sends any reply, so every
 * decision a client saw answered is in the file (write(2) returned) first: a crash of tas loses
 * only records whose requests were not answered yet. The chain (seq, prev, hash) is computed by the
 * writer in queue order; a batch the kernel refused (disk full) is counted as failures and does not
 * advance the chain. fdatasync(2) runs at most once per FSYNC_DELAY_MS after records were written,
 * and on close, so a power loss loses at most that window. After a restart the chain continues
 * from the last complete record of the file. Records to stdout are written synchronously.
 *
 * Each record is serialised once: every field is turned into JSON text one time, and the line and
 * the canonical (RFC 8785) form the hash covers are two arrangements of the same pieces.
 */
import { hash as oneShotHash } from 'node:crypto';
import { closeSync, fdatasync, fdatasyncSync, fstatSync, openSync, readSync, write, writeSync } from 'node:fs';
import type { Config } from '../config';
import { onReopen } from '../log';
import { AUDIT_VERSION, boundedString, canonicalJson, scrub, ZERO_HASH } from './record';
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
  /** whenWritten: undefined when every record so far was written, else a promise for that. */
  whenWritten(): Promise<void> | undefined;
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

/** Pending is a queued record: every field already JSON text (serialised once). */
interface Pending {
  readonly time: string;
  readonly event: string;
  readonly outcome: string;
  readonly reason: string;
  readonly requestId: string;
  readonly client: string;
  readonly details: string;
}

const V_JSON = JSON.stringify(AUDIT_VERSION);

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
  /** File mode: records queued for the writer, and the writer's state. */
  private queue: Pending[] = [];
  private writing = false;
  private reopenWanted = false;
  /** Records queued so far, and records the writer finished with (written or failed). */
  private queued = 0;
  private finished = 0;
  private waiters: Array<{ upTo: number; resolve: () => void }> = [];

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
    let p: Pending;
    try {
      p = {
        time: JSON.stringify(this.now().toISOString()),
        event: JSON.stringify(String(ev.event).slice(0, 64)),
        outcome: JSON.stringify(ev.outcome),
        reason: JSON.stringify(String(ev.reason || 'UNSPECIFIED').slice(0, 128)),
        requestId: JSON.stringify(boundedString(ev.requestId, 256)),
        client: JSON.stringify(boundedString(ev.client, 256)),
        // Canonical (sorted keys): the same text serves the line and the hashed form.
        details: canonicalJson(scrub(ev.details ?? {}) ?? {}),
      };
    } catch (e) {
      this.failures++;
      process.stderr.write(`tas: audit record not written: ${(e as Error).message}\n`);
      return;
    }
    if (this.fd === undefined) {
      // stdout: synchronous, as the log lines it is mixed with.
      try {
        const { line, hash } = this.serialise(p, this.seq + 1, this.prev);
        this.writeOut(line);
        this.seq++;
        this.prev = hash;
      } catch (e) {
        this.failures++;
        process.stderr.write(`tas: audit record not written: ${(e as Error).message}\n`);
      }
      return;
    }
    this.queue.push(p);
    this.queued++;
    // The write waits for the end of this event-loop turn: the records of every request handled
    // in the turn (a poll round under load) then leave in one write(2) and one thread-pool hop,
    // instead of the first alone and the rest after it. No reply waits longer for it than the turn.
    if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  whenWritten(): Promise<void> | undefined {
    if (this.finished >= this.queued) return undefined;
    const upTo = this.queued;
    return new Promise<void>((resolve) => this.waiters.push({ upTo, resolve }));
  }

  /**
   * serialise builds the line and its hash from the pieces: the hash is SHA-256 over the RFC 8785
   * form (members sorted by name; every value is already canonical JSON text), the line keeps the
   * documented field order.
   */
  private serialise(p: Pending, seq: number, prev: string): { line: string; hash: string } {
    const seqJson = String(seq);
    const prevJson = `"${prev}"`;
    const tagged = this.file === undefined;
    const canonical = `{${tagged ? '"audit":true,' : ''}"client":${p.client},"details":${p.details},"event":${p.event},"outcome":${p.outcome},"prev":${prevJson},"reason":${p.reason},"request_id":${p.requestId},"seq":${seqJson},"time":${p.time},"v":${V_JSON}}`;
    // One-shot digest: no Hash object per record (a third of the cost for a record this size).
    const hash = oneShotHash('sha256', canonical, 'hex');
    const line = `{"v":${V_JSON},"seq":${seqJson},"time":${p.time},"event":${p.event},"outcome":${p.outcome},"reason":${p.reason},"request_id":${p.requestId},"client":${p.client},"details":${p.details},"prev":${prevJson},${tagged ? '"audit":true,' : ''}"hash":"${hash}"}\n`;
    return { line, hash };
  }

  private pumpScheduled = false;
  /** Batches handed to the kernel so far (tests: records of one turn share one). */
  writes = 0;

  /** pump hands every queued record to the kernel in one write, unless a write is under way. */
  private pump(): void {
    if (this.writing || this.fd === undefined) return;
    if (this.reopenWanted) this.swapFile();
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    let seq = this.seq;
    let prev = this.prev;
    let text = '';
    for (const p of batch) {
      const s = this.serialise(p, seq + 1, prev);
      text += s.line;
      seq++;
      prev = s.hash;
    }
    this.writing = true;
    this.writes++;
    writeFully(this.fd, Buffer.from(text, 'utf8'), (err) => {
      this.writing = false;
      if (err) {
        // Never thrown into request handling; the failure count feeds readiness, stderr says why.
        this.failures += batch.length;
        process.stderr.write(`tas: audit record not written: ${err.message}\n`);
      } else {
        this.seq = seq;
        this.prev = prev;
        this.scheduleSync();
      }
      this.finished += batch.length;
      this.settle();
      this.pump();
    });
  }

  private settle(): void {
    if (this.waiters.length === 0) return;
    const left: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.upTo <= this.finished) w.resolve();
      else left.push(w);
    }
    this.waiters = left;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Records queued before close are still written; later ones count as failures.
    await this.whenWritten();
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
    // Never swap the descriptor under a write in flight: the writer swaps between batches.
    this.reopenWanted = true;
    if (!this.writing) this.swapFile();
  }

  private swapFile(): void {
    this.reopenWanted = false;
    if (this.file === undefined || this.fd === undefined) return;
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

/** writeFully writes all of buf with asynchronous write(2)s (a short write continues). */
function writeFully(fd: number, buf: Buffer, done: (err: NodeJS.ErrnoException | null) => void, off = 0): void {
  write(fd, buf, off, buf.length - off, null, (err, n) => {
    if (err) return done(err);
    if (off + n < buf.length) return writeFully(fd, buf, done, off + n);
    done(null);
  });
}
