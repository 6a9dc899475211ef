/**
 * `tas audit verify FILE...`: checks the hash chain of audit files (oldest first when rotated).
 * Exit 0 intact, 1 tampered (deleted, edited, reordered or truncated records), 2 usage.
 */
import { CliError, defineCommand, EXIT, group, withFormat } from '../cli-kit';
import { verifyAudit } from './verify';

interface VerifyArgs {
  files: string[];
  partial: boolean;
  format: string;
}

const verify = defineCommand<VerifyArgs>({
  command: 'verify <files..>',
  describe: 'Verify the sequence numbers and hash chain of audit files (give rotated files oldest first)',
  builder: (y) =>
    withFormat(y)
      .example('$0 audit verify /var/log/tas/audit.log.1 /var/log/tas/audit.log', 'a rotated file first, then the current one')
      .positional('files', { type: 'string', array: true, describe: 'Audit files' })
      .option('partial', { type: 'boolean', default: false, describe: 'The first file does not start at seq 1 (older files were deleted)' }) as never,
  run: (argv) => {
    let result;
    try {
      result = verifyAudit(argv.files, { partial: argv.partial });
    } catch (e) {
      throw new CliError(EXIT.USAGE, `cannot read audit file: ${(e as Error).message}`);
    }
    if (argv.format === 'json') {
      process.stdout.write(`${JSON.stringify({ ok: result.ok, records: result.records, last_seq: result.lastSeq, problems: result.problems }, null, 2)}\n`);
      return result.ok ? EXIT.OK : EXIT.CHECK_FAILED;
    }
    if (result.ok) {
      process.stdout.write(`OK: ${result.records} records, seq 1..${result.lastSeq}, hash chain intact\n`);
      return EXIT.OK;
    }
    process.stdout.write(`TAMPERED: ${result.problems.length} problem(s) in ${result.records} records\n`);
    for (const p of result.problems) process.stdout.write(`  ${p}\n`);
    return EXIT.CHECK_FAILED;
  },
});

export const auditCommand = group('audit <command>', 'Work with the audit stream', [verify as never]);
