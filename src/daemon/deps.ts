/**
 * Logger and audit stream of the daemon. Interim versions with the same names as the core
 * modules' createLogger (src/log) and openAudit (src/audit), used until those are wired into the
 * settings registry; they keep the same contracts (JSON lines, audit records tagged, never throw).
 */
import pino, { type Logger } from 'pino';
import type { Config } from '../config';
import type { AuditEvent, AuditLog } from '../audit/types';

/** createLogger: pino JSON lines on stdout at info level. */
export function createLogger(_cfg: Config): Logger {
  return pino({ level: 'info', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** openAudit: one JSON line per decision on stdout, tagged `"audit": true`, with a sequence number. */
export function openAudit(_cfg: Config): AuditLog {
  let seq = 0;
  return {
    record(ev: AuditEvent): void {
      try {
        process.stdout.write(`${JSON.stringify({ audit: true, seq: ++seq, time: new Date().toISOString(), ...ev })}\n`);
      } catch {
        /* the audit stream must not throw into request handling */
      }
    },
    async close(): Promise<void> {},
  };
}
