/**
 * Verification of audit files: every line must be a complete record of the schema, its hash must
 * match its content, its prev must be the hash of the record before it and its seq one more than
 * that record's. Several files are read as one stream (rotated files, oldest first).
 */
import { readFileSync } from 'node:fs';
import { recordHash, validateRecord, ZERO_HASH } from './record';

export interface VerifyResult {
  ok: boolean;
  /** Records that passed. */
  records: number;
  /** Last seq seen. */
  lastSeq: number;
  problems: string[];
}

export interface VerifyOptions {
  /** Accept a first record with seq > 1 (the earlier records are in files not given). */
  partial?: boolean;
}

/** verifyAudit checks one or more files (oldest first). Throws only when a file cannot be read. */
export function verifyAudit(files: readonly string[], opts: VerifyOptions = {}): VerifyResult {
  const problems: string[] = [];
  let records = 0;
  let prev: { seq: number; hash: string } | undefined;
  for (const [fi, file] of files.entries()) {
    const text = readFileSync(file, 'utf8');
    if (text === '') continue;
    const lines = text.split('\n');
    const tail = lines.pop();
    if (tail !== undefined && tail !== '') {
      // Either a crash mid-write or someone cut the file; both break the evidence.
      problems.push(`${file}: last line is truncated (no newline): ${JSON.stringify(tail.slice(0, 60))}`);
    }
    for (const [i, line] of lines.entries()) {
      const where = `${file}:${i + 1}`;
      let r: Record<string, unknown>;
      try {
        r = JSON.parse(line) as Record<string, unknown>;
      } catch {
        problems.push(`${where}: not a JSON record${line === '' ? ' (empty line)' : ''}`);
        continue;
      }
      const bad = validateRecord(r);
      if (bad.length) {
        problems.push(`${where}: not a valid audit record: ${bad.join('; ')}`);
        continue;
      }
      const seq = r.seq as number;
      const hash = r.hash as string;
      if (recordHash(r) !== hash) problems.push(`${where}: record seq ${seq} was edited (its hash does not match its content)`);
      const newChain = seq === 1 && r.prev === ZERO_HASH;
      if (prev === undefined) {
        if (!newChain && !(opts.partial === true && fi === 0 && i === 0)) {
          problems.push(`${where}: the stream starts at seq ${seq}, not 1: earlier records are missing (give the rotated files first, or --partial)`);
        }
      } else if (newChain && r.audit === true) {
        // stdout streams restart at seq 1 with every process start (they cannot read their past).
      } else {
        if (seq > prev.seq + 1) problems.push(`${where}: gap: records seq ${prev.seq + 1}..${seq - 1} are missing (deleted)`);
        else if (seq <= prev.seq) problems.push(`${where}: seq ${seq} follows seq ${prev.seq}: records were reordered or duplicated`);
        if (r.prev !== prev.hash) problems.push(`${where}: seq ${seq}: prev is not the hash of the record before it (record removed, inserted, reordered or edited)`);
      }
      prev = { seq, hash };
      records++;
    }
  }
  return { ok: problems.length === 0, records, lastSeq: prev?.seq ?? 0, problems };
}
