/**
 * Policy parsing and validation: YAML text → validated document → {@link CompiledPolicy}, or every
 * error found, each with its path, line and column so `policy check` can point at it.
 */
import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { CompiledPolicy } from './compiled-policy.js';
import { didYouMean } from './did-you-mean.js';
import { checkVocabulary } from './policy-vocabulary.js';
import { PolicyDocumentSchema, RuleSchema, type PolicyDocument, type RuleDocument } from './policy-schema.js';

/** One problem in a policy document. */
export interface PolicyError {
  /** Where in the document, e.g. `rules[2].match.verbs[0]`; `''` for the document itself. */
  readonly path: string;
  readonly message: string;
  /** 1-based line, 0 when unknown (e.g. a document built in code). */
  readonly line: number;
  /** 1-based column, 0 when unknown. */
  readonly column: number;
}

/**
 * Result of {@link parsePolicy} and {@link compilePolicy}. `warnings` name what is valid but
 * probably not meant (a resource no built-in API group serves); they never reject a policy.
 */
export type ParsePolicyResult =
  | { readonly ok: true; readonly policy: CompiledPolicy; readonly warnings: readonly PolicyError[] }
  | { readonly ok: false; readonly errors: readonly PolicyError[]; readonly warnings: readonly PolicyError[] };

/** Options of {@link parsePolicy}. */
export interface ParsePolicyOptions {
  /** Where the text came from (file name, KV key and revision); kept on the policy for messages. */
  readonly source?: string;
}

type PathSegment = string | number;

/** Formats a path as `rules[2].match.verbs[0]` (keys that are not identifiers are quoted). */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

/** `source:line:column: path: message`, the format `policy check` prints. */
export function formatPolicyError(error: PolicyError, source = 'policy'): string {
  const where = error.line > 0 ? `${source}:${error.line}:${error.column}` : source;
  return `${where}: ${error.path === '' ? '' : `${error.path}: `}${error.message}`;
}

/** `source:line:column: warning: path: message`. */
export function formatPolicyWarning(warning: PolicyError, source = 'policy'): string {
  const where = warning.line > 0 ? `${source}:${warning.line}:${warning.column}` : source;
  return `${where}: warning: ${warning.path === '' ? '' : `${warning.path}: `}${warning.message}`;
}

/** Finds the YAML node at a path (or the key node of its last segment); falls back to the deepest ancestor found. */
function locateNode(doc: Document, path: readonly PathSegment[], keyNode: boolean): Node | undefined {
  let node: unknown = doc.contents;
  let found = node as Node | undefined;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return found;
      if (keyNode && i === path.length - 1 && isScalar(pair.key)) return pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
    } else {
      return found;
    }
    if (node && typeof node === 'object' && 'range' in node) found = node as Node;
    else return found;
  }
  return found;
}

/** Collects errors with locations resolved against the YAML document (when there is one). */
class ErrorSink {
  readonly errors: PolicyError[] = [];
  constructor(
    private readonly doc: Document | undefined,
    private readonly lines: LineCounter | undefined,
  ) {}

  add(path: readonly PathSegment[], message: string, atKey = false): void {
    let line = 0;
    let column = 0;
    if (this.doc && this.lines) {
      const node = locateNode(this.doc, path, atKey);
      const offset = node?.range?.[0];
      if (offset !== undefined) {
        const pos = this.lines.linePos(offset);
        line = pos.line;
        column = pos.col;
      }
    }
    this.errors.push({ path: formatPath(path), message, line, column });
  }
}

const describeValue = (v: unknown): string =>
  v === undefined ? 'nothing' : v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : `${typeof v} ${JSON.stringify(v)}`;

/** Friendlier zod messages: they name what was expected and what was found. */
const zodMessages = (issue: z.core.$ZodRawIssue): string | undefined => {
  if (issue.input === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_value')) return 'is required';
  switch (issue.code) {
    case 'invalid_type':
      return `expected ${issue.expected === 'array' ? 'a list' : issue.expected === 'object' ? 'a mapping' : `a ${issue.expected}`}, got ${describeValue(issue.input)}`;
    case 'invalid_value':
      return issue.values.length === 1
        ? `must be ${JSON.stringify(issue.values[0])}, got ${describeValue(issue.input)}`
        : `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}; got ${describeValue(issue.input)}`;
    case 'too_small':
      return issue.origin === 'array' ? `must list at least ${String(issue.minimum)} entry` : undefined;
    default:
      return undefined;
  }
};

/** Names the unknown key and, when one is close, the key that was probably meant. */
function unknownKeyMessage(key: string, schemaMessage: string): string {
  const allowed = (schemaMessage.split('allowed keys: ')[1] ?? '').split(', ').filter((k) => k !== '');
  return `${schemaMessage.replace('unknown key', `unknown key ${JSON.stringify(key)}`)}${didYouMean(key, allowed)}`;
}

/** Duplicate rule ids, found on the raw data so they are reported even when other errors exist. */
function duplicateIdErrors(data: unknown, sink: ErrorSink): void {
  const rules = (data as { rules?: unknown } | null)?.rules;
  if (!Array.isArray(rules)) return;
  const seen = new Map<string, number>();
  rules.forEach((rule: unknown, r) => {
    const id = (rule as { id?: unknown } | null)?.id;
    if (typeof id !== 'string') return;
    const first = seen.get(id);
    if (first !== undefined) sink.add(['rules', r, 'id'], `duplicate rule id ${JSON.stringify(id)} (first used by rules[${first}])`);
    else seen.set(id, r);
  });
}

function schemaErrors(data: unknown, sink: ErrorSink): PolicyDocument | undefined {
  const result = PolicyDocumentSchema.safeParse(data, { error: zodMessages });
  if (result.success) return result.data;
  for (const issue of result.error.issues) {
    const path = issue.path as PathSegment[];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) sink.add([...path, key], unknownKeyMessage(key, issue.message), true);
    } else if (issue.code === 'invalid_union' && path.length > 0) {
      sink.add(path, `${issue.message === 'Invalid input' ? 'must be a glob or a list of globs' : issue.message}`);
    } else {
      sink.add(path, issue.message);
    }
  }
  return undefined;
}

const RESOURCE_FIELDS = ['apiGroups', 'resources', 'namespaces', 'names'] as const;
const KUBE_FIELDS = ['verbs', 'nonResourcePaths', ...RESOURCE_FIELDS] as const;

/**
 * Cross-field checks the schema cannot express. They run on every part that is individually
 * well-formed, so one broken rule does not hide the problems of the others.
 */
function semanticErrors(data: unknown, sink: ErrorSink, warnings: ErrorSink): void {
  const raw = data as { maskingProfiles?: unknown; defaults?: unknown; rules?: unknown };
  const declared = PolicyDocumentSchema.shape.maskingProfiles.safeParse(raw.maskingProfiles);
  const profiles = declared.success && declared.data ? new Set(declared.data) : undefined;
  const parsedDefaults = PolicyDocumentSchema.shape.defaults.safeParse(raw.defaults);
  const defaults = parsedDefaults.success ? parsedDefaults.data?.approval : undefined;
  if (defaults?.ttl !== undefined && defaults.scope !== 'window') {
    sink.add(['defaults', 'approval', 'ttl'], 'ttl applies only to scope: window');
  }
  const rules: RuleDocument[] = [];
  if (Array.isArray(raw.rules)) {
    for (const candidate of raw.rules as unknown[]) {
      const parsed = RuleSchema.safeParse(candidate);
      rules.push(parsed.success ? parsed.data : (undefined as unknown as RuleDocument));
    }
  }
  rules.forEach((rule, r) => {
    if (rule === undefined) return;
    const at = (...p: PathSegment[]): PathSegment[] => ['rules', r, ...p];
    checkVocabulary(
      rule,
      (path, message) => sink.add(at(...path), message),
      (path, message) => warnings.add(at(...path), message),
    );
    const m = rule.match ?? {};
    if (m.http && !m.http.methods && !m.http.paths) sink.add(at('match', 'http'), 'needs methods or paths');
    if (m.time && !m.time.days && !m.time.hours) sink.add(at('match', 'time'), 'needs days or hours');
    const resourceField = RESOURCE_FIELDS.find((f) => m[f] !== undefined);
    if (m.nonResourcePaths && resourceField) {
      sink.add(
        at('match', 'nonResourcePaths'),
        `cannot be combined with ${resourceField}: a request is either a resource or a non-resource request; split the rule in two`,
      );
    }
    const kubeField = KUBE_FIELDS.find((f) => m[f] !== undefined);
    if (m.http && kubeField) {
      sink.add(at('match', 'http'), `cannot be combined with ${kubeField}: a request is either a Kubernetes or an HTTP request; split the rule in two`);
    }

    if (rule.mask !== undefined) {
      if (rule.effect === 'deny') sink.add(at('mask'), 'has no effect on a deny rule (masking applies only to requests that are let through)');
      else if (profiles && !profiles.has(rule.mask)) {
        sink.add(at('mask'), `unknown masking profile ${JSON.stringify(rule.mask)}; maskingProfiles declares: ${[...profiles].join(', ') || '(none)'}`);
      }
    } else if (rule.effect === 'mask') {
      sink.add(at('effect'), 'effect mask needs mask: <profile>');
    }
    if (rule.approval !== undefined && rule.effect !== 'require_approval') {
      sink.add(at('approval'), `applies only to effect require_approval, not ${rule.effect}`, true);
    }
    if (rule.message !== undefined && rule.effect === 'mask') {
      sink.add(at('message'), 'a mask rule makes no decision, so its message would never be shown', true);
    }
    if (rule.effect === 'require_approval') {
      const merged = { ...defaults, ...rule.approval };
      if (!merged.approverGroups) {
        sink.add(rule.approval ? at('approval') : at('effect'), 'require_approval needs approval.approverGroups (or defaults.approval.approverGroups)');
      }
      if ((merged.scope ?? 'once') === 'window' && merged.ttl === undefined) {
        sink.add(rule.approval ? at('approval') : at('effect'), 'scope: window needs a ttl, e.g. ttl: 15m');
      }
      if (rule.approval?.ttl !== undefined && (merged.scope ?? 'once') !== 'window') {
        sink.add(at('approval', 'ttl'), 'ttl applies only to scope: window');
      }
    }
  });
}

// Document order reads best in `policy check`; problems without a position keep their order.
const inDocumentOrder = (problems: readonly PolicyError[]): PolicyError[] => [...problems].sort((a, b) => a.line - b.line || a.column - b.column);

function validate(data: unknown, source: string, sink: ErrorSink, warnings: ErrorSink): ParsePolicyResult {
  if (data === null || data === undefined) {
    sink.add([], 'the policy document is empty');
    return { ok: false, errors: sink.errors, warnings: [] };
  }
  duplicateIdErrors(data, sink);
  const doc = schemaErrors(data, sink);
  semanticErrors(data, sink, warnings);
  if (!doc || sink.errors.length > 0) return { ok: false, errors: inDocumentOrder(sink.errors), warnings: inDocumentOrder(warnings.errors) };
  return { ok: true, policy: new CompiledPolicy(doc, source), warnings: inDocumentOrder(warnings.errors) };
}

/**
 * Parses, validates and compiles a YAML (or JSON) policy document.
 *
 * @returns the compiled policy, or every error found with its path, line and column.
 */
export function parsePolicy(yamlText: string, options: ParsePolicyOptions = {}): ParsePolicyResult {
  const lines = new LineCounter();
  const doc = parseDocument(yamlText, { lineCounter: lines, keepSourceTokens: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
        return { path: '', message: e.message.split('\n')[0] ?? e.message, line: pos.line, column: pos.col };
      }),
      warnings: [],
    };
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (cause) {
    return { ok: false, errors: [{ path: '', message: `cannot read the document: ${(cause as Error).message}`, line: 1, column: 1 }], warnings: [] };
  }
  return validate(data, options.source ?? 'policy', new ErrorSink(doc, lines), new ErrorSink(doc, lines));
}

/**
 * Validates and compiles a policy document already in memory (e.g. built in code); errors carry
 * paths but no line or column.
 */
export function compilePolicy(document: unknown, options: ParsePolicyOptions = {}): ParsePolicyResult {
  return validate(structuredClone(document), options.source ?? 'policy', new ErrorSink(undefined, undefined), new ErrorSink(undefined, undefined));
}
