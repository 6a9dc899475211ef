/**
 * The rule engine (PROTOCOL.md §3.4). A policy's `validation_rules` is compiled once (at store time
 * and at use) against the claim schema: unknown claims, unknown operators and operands of the wrong
 * type are refused with a message naming every one of them. Evaluation runs EVERY rule and reports
 * every failure with its path, operator, expected and actual value (operators debug policies from
 * the audit record; a first-failure engine makes them fix one rule per boot).
 */
import { timingSafeEqual } from 'node:crypto';
import { TasError } from '../errors';
import { SEV_CLAIM_SCHEMA, type ClaimKind, type ClaimNode } from './claims-schema';

/** OPERATORS lists every operator name (docs/policy.md documents each). */
export const OPERATORS = [
  'exact_match',
  'min_value',
  'max_value',
  'allow_list',
  'deny_list',
  'boolean',
  'min_version',
  'max_version',
  'bits_set',
] as const;
export type Operator = (typeof OPERATORS)[number];
const OPERATOR_SET: ReadonlySet<string> = new Set(OPERATORS);

type NodeKind = ClaimKind | 'version' | 'object' | 'ordered' | 'unknown';

/** Which operators each claim kind accepts. `unknown` is a claim of a type without schema. */
const ALLOWED: Readonly<Record<NodeKind, readonly Operator[]>> = {
  uint: ['exact_match', 'min_value', 'max_value', 'allow_list', 'deny_list', 'bits_set'],
  bool: ['boolean', 'exact_match', 'allow_list', 'deny_list'],
  bytes: ['exact_match', 'allow_list', 'deny_list'],
  string: ['exact_match', 'allow_list', 'deny_list'],
  version: ['exact_match', 'min_version', 'max_version'],
  ordered: ['exact_match', 'min_value', 'max_value', 'allow_list', 'deny_list'],
  strings: ['allow_list', 'deny_list'],
  object: [],
  unknown: ['exact_match', 'min_value', 'max_value', 'allow_list', 'deny_list', 'boolean', 'min_version', 'max_version', 'bits_set'],
};

/** Bounds on policy documents: they come from the management API and must not exhaust memory. */
export const LIMITS = { maxDepth: 8, maxRules: 1024, maxList: 4096, maxHexChars: 1024, maxString: 1024 } as const;

/** CompiledRule is one check: the operator applied to the claim at `path` (dot separated). */
export interface CompiledRule {
  readonly path: string;
  readonly segments: readonly string[];
  readonly op: Operator;
  readonly kind: NodeKind;
  /** The operand exactly as written in the policy (reported back in results). */
  readonly expected: unknown;
  /** The operand normalised for comparison (bigint, lowercase hex, version triple, ...). */
  readonly operand: Normalised | readonly Normalised[];
  /** For ordered claims: the order, lowest first. */
  readonly order?: readonly string[];
}

type Normalised = bigint | boolean | string | readonly [bigint, bigint, bigint] | StringList;

/** StringList is a list claim's value (advisory IDs), kept apart from version triples. */
class StringList {
  constructor(readonly items: readonly string[]) {}
}

/** RuleResult is the verdict of one rule. */
export interface RuleResult {
  readonly path: string;
  readonly op: Operator;
  readonly expected: unknown;
  /** The claim's value in JSON form (hex for bytes, number or decimal string for integers); null when absent. */
  readonly actual: unknown;
  readonly ok: boolean;
}

/** Evaluation is the verdict of a whole rule set. */
export interface Evaluation {
  readonly ok: boolean;
  readonly results: readonly RuleResult[];
  /** One line per failed rule: `path op: expected X, actual Y`. */
  readonly failures: readonly string[];
}

/** Compiled is a validated rule set, ready to evaluate many times. */
export class CompiledRules {
  constructor(readonly rules: readonly CompiledRule[]) {}
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

function kindOf(node: ClaimNode | undefined): NodeKind {
  if (node === undefined) return 'unknown';
  return typeof node === 'string' ? node : node.kind;
}

/** own reads a member only when it is the object's own (never `constructor`, `__proto__`, ...). */
function own<T>(o: Readonly<Record<string, T>>, k: string): T | undefined {
  return Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined;
}

/** childrenOf returns the nested claims of a group node (undefined for leaves). */
function childrenOf(node: ClaimNode | undefined): Readonly<Record<string, ClaimNode>> | undefined {
  return node !== undefined && typeof node !== 'string' && 'children' in node ? node.children : undefined;
}

/** constrain checks leaf constraints known from the schema (byte length, enum values) at store time. */
function constrain(node: ClaimNode | undefined, v: Normalised): void {
  if (node === undefined || typeof node === 'string') return;
  if ('bytes' in node && typeof v === 'string' && v.length !== node.bytes * 2) {
    throw new Error(`expected ${node.bytes} bytes (${node.bytes * 2} hex characters), got ${v.length / 2}`);
  }
  if (node.kind === 'string' && 'values' in node && typeof v === 'string' && !node.values.includes(v)) {
    throw new Error(`${JSON.stringify(v.slice(0, 40))} is not one of ${node.values.join(', ')}`);
  }
}

/**
 * compileRules validates `validation_rules` against a claim schema (null: no schema for this
 * policy type, operators are still checked). Throws TasError POLICY_INVALID naming every problem.
 */
export function compileRules(
  rules: unknown,
  schema: Readonly<Record<string, ClaimNode>> | null = SEV_CLAIM_SCHEMA,
): CompiledRules {
  const out: CompiledRule[] = [];
  const problems: string[] = [];
  if (!isPlainObject(rules)) {
    throw new TasError('POLICY_INVALID', 'validation_rules must be a JSON object', { reason: 'POLICY_RULES_NOT_OBJECT' });
  }
  if (Object.keys(rules).length === 0) problems.push('validation_rules is empty (a policy must check something)');
  walkGroup(rules, [], schema === null ? undefined : { kind: 'object', children: schema }, out, problems);
  // PROTOCOL.md §3.4: a masked CHIP_ID (all zero) cannot be judged by chip_id alone (a deny list
  // would pass every masked report). A policy that speaks about chip_id must say how masked
  // reports are treated, with a chip_id_masked rule; otherwise it is refused at store time.
  if (schema !== null && 'chip_id_masked' in schema && out.some((r) => r.segments[0] === 'chip_id') && !out.some((r) => r.segments[0] === 'chip_id_masked')) {
    problems.push('chip_id: a policy with a chip_id rule must also have a chip_id_masked rule (how reports with MASK_CHIP_ID are treated: e.g. chip_id_masked: false refuses them; a masked report is judged by chip_id_masked and signer.hw_id)');
  }
  if (out.length > LIMITS.maxRules) problems.push(`too many rules (${out.length} > ${LIMITS.maxRules})`);
  if (problems.length > 0) {
    throw new TasError('POLICY_INVALID', `invalid validation_rules: ${problems.join('; ')}`, { reason: 'POLICY_RULES_INVALID' });
  }
  return new CompiledRules(out);
}

function walkGroup(
  obj: Record<string, unknown>,
  segs: string[],
  node: ClaimNode | undefined,
  out: CompiledRule[],
  problems: string[],
): void {
  if (segs.length >= LIMITS.maxDepth) {
    problems.push(`rules nested deeper than ${LIMITS.maxDepth} at '${segs.join('.')}'`);
    return;
  }
  const children = childrenOf(node);
  for (const [name, value] of Object.entries(obj)) {
    const path = [...segs, name];
    const child = node === undefined || children === undefined ? undefined : own(children, name);
    if (node !== undefined && child === undefined) {
      problems.push(
        segs.length === 0 || typeof node === 'string'
          ? `unknown claim '${path.join('.')}'`
          : `unknown claim '${path.join('.')}' (claim '${segs.join('.')}' has ${Object.keys(children ?? {}).join(', ')})`,
      );
      continue;
    }
    walkClaim(value, path, child, node === undefined, out, problems);
  }
}

function walkClaim(
  value: unknown,
  segs: string[],
  node: ClaimNode | undefined,
  schemaless: boolean,
  out: CompiledRule[],
  problems: string[],
): void {
  const path = segs.join('.');
  const kind: NodeKind = schemaless ? 'unknown' : kindOf(node);
  if (typeof value === 'boolean') {
    // A nested bare boolean means {"boolean": v}.
    addRule(out, problems, segs, kind, 'boolean', value, node);
    return;
  }
  if (!isPlainObject(value)) {
    // Any other bare value means {"exact_match": v} — except under an ordered claim marked
    // bareMin (the TDX `tcb` object), where it is a minimum (PROTOCOL.md §3.4).
    const bareMin = node !== undefined && typeof node !== 'string' && node.kind === 'ordered' && node.bareMin === true;
    addRule(out, problems, segs, kind, bareMin ? 'min_value' : 'exact_match', value, node);
    return;
  }
  const entries = Object.entries(value);
  if (entries.length === 0) {
    problems.push(`claim '${path}' has no operator`);
    return;
  }
  for (const [k, v] of entries) {
    if (OPERATOR_SET.has(k)) {
      addRule(out, problems, segs, kind, k as Operator, v, node);
      continue;
    }
    // Not an operator: a nested claim name (groups), else an unknown operator.
    if (schemaless) {
      if (segs.length + 1 > LIMITS.maxDepth) {
        problems.push(`rules nested deeper than ${LIMITS.maxDepth} at '${path}'`);
        continue;
      }
      walkClaim(v, [...segs, k], undefined, true, out, problems);
      continue;
    }
    const children = childrenOf(node);
    if (children === undefined) {
      problems.push(`unknown operator '${k}' on claim '${path}' (known: ${ALLOWED[kind].join(', ')})`);
      continue;
    }
    const child = own(children, k);
    if (child === undefined) {
      problems.push(`unknown claim or operator '${k}' in '${path}' (claims: ${Object.keys(children).join(', ')})`);
      continue;
    }
    walkClaim(v, [...segs, k], child, false, out, problems);
  }
}

function addRule(
  out: CompiledRule[],
  problems: string[],
  segs: string[],
  kind: NodeKind,
  op: Operator,
  expected: unknown,
  node: ClaimNode | undefined,
): void {
  const path = segs.join('.');
  if (!ALLOWED[kind].includes(op)) {
    problems.push(
      kind === 'object'
        ? `claim '${path}' is a group: give rules on its members, not '${op}'`
        : `operator '${op}' does not apply to claim '${path}' (${kind}; allowed: ${ALLOWED[kind].join(', ')})`,
    );
    return;
  }
  try {
    const operand =
      op === 'allow_list' || op === 'deny_list' ? normaliseList(expected, kind, op) : normaliseOperand(expected, kind, op);
    for (const x of Array.isArray(operand) ? (operand as Normalised[]) : [operand as Normalised]) constrain(node, x);
    if (node !== undefined && typeof node !== 'string' && node.kind === 'ordered') {
      for (const x of Array.isArray(operand) ? (operand as Normalised[]) : [operand as Normalised]) {
        if (typeof x === 'string' && !node.values.includes(x)) throw new Error(`${JSON.stringify(x.slice(0, 60))} is not one of ${node.values.join(', ')}`);
      }
    }
    const order = node !== undefined && typeof node !== 'string' && node.kind === 'ordered' ? node.values : undefined;
    out.push({ path, segments: [...segs], op, kind, expected, operand, ...(order ? { order } : {}) });
  } catch (e) {
    problems.push(`claim '${path}' ${op}: ${(e as Error).message}`);
  }
}

function normaliseList(v: unknown, kind: NodeKind, op: Operator): readonly Normalised[] {
  if (!Array.isArray(v)) throw new Error('operand must be a list');
  if (v.length === 0) throw new Error('list is empty');
  if (v.length > LIMITS.maxList) throw new Error(`list longer than ${LIMITS.maxList}`);
  return v.map((x) => normaliseOperand(x, kind, op));
}

const HEX_RE = /^(0x|0X)?([0-9a-fA-F]*)$/;
const VERSION_RE = /^(\d{1,5})\.(\d{1,5})(?:\.(\d{1,9}))?$/;

function normaliseOperand(v: unknown, kind: NodeKind, op: Operator): Normalised {
  switch (kind) {
    case 'uint':
      return toUint(v);
    case 'bool':
      if (typeof v !== 'boolean') throw new Error(`expected true or false, got ${describe(v)}`);
      return v;
    case 'bytes':
      return toHex(v);
    case 'string':
      if (typeof v !== 'string' || v.length > LIMITS.maxString) throw new Error(`expected a string, got ${describe(v)}`);
      return v;
    case 'version':
      return toVersion(v);
    case 'ordered':
    case 'strings':
      if (typeof v !== 'string' || v.length > LIMITS.maxString) throw new Error(`expected a string, got ${describe(v)}`);
      return v;
    case 'unknown':
      // No schema: keep operands JSON-typed, checked for the operator's shape only.
      if (op === 'boolean') {
        if (typeof v !== 'boolean') throw new Error(`expected true or false, got ${describe(v)}`);
        return v;
      }
      if (op === 'min_value' || op === 'max_value' || op === 'bits_set') return toUint(v);
      if (op === 'min_version' || op === 'max_version') return toVersion(v);
      if (typeof v === 'boolean') return v;
      if (typeof v === 'number') return toUint(v);
      if (typeof v === 'string' && v.length <= LIMITS.maxString) return v;
      throw new Error(`unsupported operand ${describe(v)}`);
    case 'object':
      throw new Error('group claims take no operator');
  }
}

function describe(v: unknown): string {
  const s = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** toUint accepts a non-negative safe integer or a decimal / 0x-hex string (for u64 fields). */
function toUint(v: unknown): bigint {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`expected a non-negative integer, got ${describe(v)}`);
    return BigInt(v);
  }
  if (typeof v === 'string' && /^(\d{1,20}|0[xX][0-9a-fA-F]{1,16})$/.test(v)) {
    const b = BigInt(v);
    if (b > 0xffff_ffff_ffff_ffffn) throw new Error(`integer ${v} exceeds 64 bits`);
    return b;
  }
  throw new Error(`expected a non-negative integer, got ${describe(v)}`);
}

/** toHex accepts hex with optional 0x, any case; returns lowercase without prefix. */
function toHex(v: unknown): string {
  if (typeof v !== 'string') throw new Error(`expected a hex string, got ${describe(v)}`);
  const m = HEX_RE.exec(v);
  if (!m || m[2]!.length % 2 !== 0) throw new Error(`expected a hex string of whole bytes, got ${describe(v)}`);
  if (m[2]!.length > LIMITS.maxHexChars) throw new Error(`hex string longer than ${LIMITS.maxHexChars} characters`);
  return m[2]!.toLowerCase();
}

function toVersion(v: unknown): readonly [bigint, bigint, bigint] {
  if (typeof v === 'string') {
    const m = VERSION_RE.exec(v);
    if (m) return [BigInt(m[1]!), BigInt(m[2]!), BigInt(m[3] ?? '0')];
  }
  if (isPlainObject(v) && typeof v.major === 'number' && typeof v.minor === 'number') {
    return [toUint(v.major), toUint(v.minor), toUint(v.build ?? 0)];
  }
  throw new Error(`expected a version "major.minor[.build]", got ${describe(v)}`);
}

// --- evaluation ------------------------------------------------------------------------------------

/** Claims is the decoded report: nested plain objects of numbers, bigints, booleans, strings, bytes. */
export type Claims = Readonly<Record<string, unknown>>;

/**
 * evaluate runs every rule against the claims. `rules` is either raw `validation_rules` (compiled
 * here against the SEV schema; throws POLICY_INVALID) or the result of compileRules.
 */
export function evaluate(rules: unknown, claims: Claims): Evaluation {
  const compiled = rules instanceof CompiledRules ? rules : compileRules(rules);
  const results: RuleResult[] = [];
  const failures: string[] = [];
  for (const r of compiled.rules) {
    const raw = lookup(claims, r.segments);
    let actual: unknown = null;
    let ok = false;
    let note = '';
    if (raw === undefined || raw === null) {
      note = ' (claim absent)';
    } else {
      try {
        const a = normaliseActual(raw, r.kind);
        actual = jsonActual(a, r.kind);
        ok = apply(r, a);
      } catch (e) {
        actual = describe(raw);
        note = ` (${(e as Error).message})`;
      }
    }
    results.push({ path: r.path, op: r.op, expected: r.expected, actual, ok });
    if (!ok) failures.push(`${r.path} ${r.op}: expected ${describe(r.expected)}, actual ${describe(actual)}${note}`);
  }
  // A debug TD (any TUD attribute bit) is refused unless the policy has a `td.debug` rule; all
  // rules must pass, so such a rule passing means it admits true (PROTOCOL.md §3.4).
  if (lookup(claims, ['td', 'debug']) === true && !compiled.rules.some((r) => r.path === 'td.debug')) {
    results.push({ path: 'td.debug', op: 'boolean', expected: false, actual: true, ok: false });
    failures.push('td.debug: the TD is a debug TD (TUD attribute bit set) and the policy has no td.debug rule admitting true');
  }
  return { ok: failures.length === 0 && results.length > 0, results, failures };
}

function lookup(claims: Claims, segs: readonly string[]): unknown {
  let cur: unknown = claims;
  for (const s of segs) {
    if (!isPlainObject(cur) || !Object.prototype.hasOwnProperty.call(cur, s)) return undefined;
    cur = cur[s];
  }
  return cur;
}

function normaliseActual(v: unknown, kind: NodeKind): Normalised {
  switch (kind) {
    case 'uint':
      if (typeof v === 'bigint') return v;
      if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
      throw new Error('claim is not an integer');
    case 'bool':
      if (typeof v !== 'boolean') throw new Error('claim is not a boolean');
      return v;
    case 'bytes':
      if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
      return toHex(v);
    case 'string':
      if (typeof v !== 'string') throw new Error('claim is not a string');
      return v;
    case 'version':
      return toVersion(v);
    case 'ordered':
      if (typeof v !== 'string') throw new Error('claim is not a string');
      return v;
    case 'strings':
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error('claim is not a list of strings');
      return new StringList(v as string[]);
    case 'unknown':
      if (typeof v === 'bigint' || typeof v === 'boolean' || typeof v === 'string') return v;
      if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
      if (isPlainObject(v)) return toVersion(v);
      throw new Error('claim has an unsupported type');
    case 'object':
      throw new Error('claim is a group');
  }
}

function jsonActual(a: Normalised, kind: NodeKind): unknown {
  if (a instanceof StringList) return [...a.items];
  if (typeof a === 'bigint') return a <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(a) : a.toString();
  if (Array.isArray(a)) return `${a[0]}.${a[1]}.${a[2]}`;
  if (kind === 'bytes') return a;
  return a;
}

function equal(a: Normalised, b: Normalised, kind: NodeKind): boolean {
  if (kind === 'bytes' && typeof a === 'string' && typeof b === 'string') {
    // Hex of equal length compares in constant time (measurements and digests are not secret,
    // but report_data/host_data may be chosen by the caller: do not leak prefixes).
    if (a.length !== b.length) return false;
    return timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
  }
  if (Array.isArray(a) && Array.isArray(b)) return cmpVersion(a, b) === 0;
  if (kind === 'unknown' && typeof a === 'string' && typeof b === 'string') return a.toLowerCase() === b.toLowerCase();
  return a === b;
}

function cmpVersion(a: readonly bigint[], b: readonly bigint[]): number {
  for (let i = 0; i < 3; i++) {
    if (a[i]! !== b[i]!) return a[i]! < b[i]! ? -1 : 1;
  }
  return 0;
}

/** rank places an ordered claim's value in its order (-1 when not in it: fails every comparison). */
function rank(r: CompiledRule, v: Normalised): number {
  const order = r.order ?? [];
  return typeof v === 'string' ? order.indexOf(v) : -1;
}

function apply(r: CompiledRule, a: Normalised): boolean {
  const operand = r.operand;
  if (a instanceof StringList) {
    const list = operand as readonly Normalised[];
    if (r.op === 'allow_list') return a.items.every((x) => list.includes(x));
    if (r.op === 'deny_list') return !a.items.some((x) => list.includes(x));
    return false;
  }
  if (r.kind === 'ordered') {
    const ra = rank(r, a);
    if (ra < 0) return false;
    if (r.op === 'min_value') return ra >= rank(r, operand as Normalised);
    if (r.op === 'max_value') return ra <= rank(r, operand as Normalised);
  }
  switch (r.op) {
    case 'exact_match':
    case 'boolean':
      return equal(a, operand as Normalised, r.kind);
    case 'min_value':
      return typeof a === 'bigint' && a >= (operand as bigint);
    case 'max_value':
      return typeof a === 'bigint' && a <= (operand as bigint);
    case 'bits_set':
      return typeof a === 'bigint' && (a & (operand as bigint)) === (operand as bigint);
    case 'allow_list':
      return (operand as readonly Normalised[]).some((x) => equal(a, x, r.kind));
    case 'deny_list':
      return !(operand as readonly Normalised[]).some((x) => equal(a, x, r.kind));
    case 'min_version':
      return Array.isArray(a) && cmpVersion(a, operand as readonly bigint[]) >= 0;
    case 'max_version':
      return Array.isArray(a) && cmpVersion(a, operand as readonly bigint[]) <= 0;
  }
}
