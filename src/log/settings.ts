/**
 * Settings of the logging and audit streams (PROTOCOL.md §5). `logging.*` have no environment name
 * of their own: the original TAS set them with `TAS_OVERRIDE__logging__level`, and so does tas.
 */
import { registerSettings } from '../config/registry';

/** Python level names (the original TAS) and their pino equivalents. */
export const PYTHON_LEVELS: Readonly<Record<string, string>> = {
  debug: 'debug',
  info: 'info',
  warning: 'warn',
  error: 'error',
  critical: 'fatal',
};

registerSettings('log', [
  {
    path: 'logging.level',
    env: [],
    type: 'enum',
    values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
    aliases: PYTHON_LEVELS,
    default: 'info',
    reload: true,
    section: 'Logs',
    doc: 'Log level: trace, debug, info, warn, error, fatal, silent; the Python names DEBUG, INFO, WARNING, ERROR, CRITICAL are accepted. Environment: TAS_OVERRIDE__logging__level.',
  },
  {
    path: 'logging.file',
    env: [],
    type: 'path',
    defaultDoc: 'unset = stdout',
    section: 'Logs',
    doc: 'Append JSON log lines to this file instead of stdout; reopened on SIGUSR1 (log rotation). Environment: TAS_OVERRIDE__logging__file.',
  },
  {
    path: 'audit.file',
    env: ['TAS_AUDIT_FILE'],
    type: 'path',
    defaultDoc: 'unset = stdout, tagged "audit": true',
    section: 'Audit',
    doc: 'Append one hash-chained JSON record per security decision to this file (see docs/audit.md); reopened on SIGUSR1.',
  },
]);
