/**
 * Child process for test/log/log.test.ts: builds the logger from its environment, logs one line
 * per IPC message and answers after each write, so that the test can rename the file and send
 * SIGUSR1 between lines.
 */
import '../../src/config/all-settings';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log';

const log = createLogger(loadConfig());
process.on('message', (m: { msg: string; level?: 'debug' | 'info' | 'warn' }) => {
  log[m.level ?? 'info']({ n: m.msg }, m.msg);
  process.send?.('done');
});
process.send?.('ready');
