/**
 * PCS signed JSON (`{"tcbInfo":{…},"signature":"<hex>"}`, `{"enclaveIdentity":{…},…}`): Intel signs
 * the EXACT bytes of the inner value as sent, so the span is cut out of the received body and
 * never re-serialised (TDX.md pitfall 2). The body is parsed with JSON.parse first (it must be one
 * valid document), then a string-aware scan of the top-level object finds the member's byte span.
 * Duplicate top-level members are refused: JSON.parse keeps the last one, a signature check could
 * otherwise look at a different one than the appraisal.
 */

/** SignedSpan is the verified-to-be piece: exact bytes, parsed value, signature bytes. */
export interface SignedSpan {
  /** Exact bytes of the member's value (what the signature covers). */
  bodyBytes: Buffer;
  /** The member's parsed value. */
  value: unknown;
  /** Hex-decoded `signature` (64 bytes r ‖ s). */
  signature: Buffer;
}

export class SignedJsonError extends Error {}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** skipString returns the index after the string starting at i (a `"`). */
function skipString(b: Buffer, i: number): number {
  for (let j = i + 1; j < b.length; j++) {
    const c = b[j];
    if (c === 0x5c) j++;
    else if (c === 0x22) return j + 1;
  }
  throw new SignedJsonError('unterminated string');
}

/** skipValue returns the index after the JSON value starting at i (JSON.parse already validated it). */
function skipValue(b: Buffer, i: number): number {
  const c = b[i];
  if (c === 0x22) return skipString(b, i);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (let j = i; j < b.length; j++) {
      const d = b[j];
      if (d === 0x22) {
        j = skipString(b, j) - 1;
      } else if (d === 0x7b || d === 0x5b) {
        depth++;
      } else if (d === 0x7d || d === 0x5d) {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    throw new SignedJsonError('unbalanced brackets');
  }
  let j = i;
  while (j < b.length && !WS.has(b[j]!) && b[j] !== 0x2c && b[j] !== 0x7d) j++;
  return j;
}

/** topLevelSpans maps each top-level member name to its value's [start, end). */
function topLevelSpans(b: Buffer): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  let i = 0;
  const ws = () => {
    while (i < b.length && WS.has(b[i]!)) i++;
  };
  ws();
  if (b[i] !== 0x7b) throw new SignedJsonError('body is not a JSON object');
  i++;
  for (;;) {
    ws();
    if (b[i] === 0x7d) break;
    if (b[i] !== 0x22) throw new SignedJsonError('expected a member name');
    const end = skipString(b, i);
    const name = JSON.parse(b.subarray(i, end).toString('utf8')) as string;
    i = end;
    ws();
    if (b[i] !== 0x3a) throw new SignedJsonError('expected ":"');
    i++;
    ws();
    const vEnd = skipValue(b, i);
    if (out.has(name)) throw new SignedJsonError(`duplicate member ${JSON.stringify(name)}`);
    out.set(name, [i, vEnd]);
    i = vEnd;
    ws();
    if (b[i] === 0x2c) {
      i++;
      continue;
    }
    if (b[i] === 0x7d) break;
    throw new SignedJsonError('expected "," or "}"');
  }
  return out;
}

/** signedSpan cuts `member` (tcbInfo / enclaveIdentity) and `signature` out of a PCS body. */
export function signedSpan(body: Buffer, member: 'tcbInfo' | 'enclaveIdentity'): SignedSpan {
  if (body.length > 1024 * 1024) throw new SignedJsonError('body larger than 1 MiB');
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new SignedJsonError(`not JSON: ${(e as Error).message}`);
  }
  const spans = topLevelSpans(body);
  const span = spans.get(member);
  if (!span) throw new SignedJsonError(`no ${member} member`);
  const sig = (doc as Record<string, unknown>).signature;
  if (typeof sig !== 'string' || !/^[0-9a-fA-F]{128}$/.test(sig)) throw new SignedJsonError('signature must be 128 hex characters (r ‖ s)');
  return { bodyBytes: body.subarray(span[0], span[1]), value: (doc as Record<string, unknown>)[member], signature: Buffer.from(sig, 'hex') };
}
