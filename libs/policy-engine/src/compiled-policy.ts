/**
 * The compiled form of a policy: every glob, time window and approval requirement is built once
 * here, plus a bitset index over literal match values, so evaluation only runs cheap predicates
 * on the few rules that can possibly match.
 */
import type { Identity, KubeAttributes, RequestAttributes, HttpAttributes } from '@portcullis/contracts';
import { parseDurationSeconds } from './duration.js';
import { GlobSet } from './glob.js';
import type { ApprovalDocument, PolicyDocument, RuleDocument, RuleEffect } from './policy-schema.js';
import { TimeWindow } from './time-window.js';

/**
 * The identity a policy sees: the contract's {@link Identity} plus, optionally, the token's other
 * claims for `match.claims` (the edge may pass them; without them a `claims` match fails closed).
 */
export type PolicyIdentity = Identity & { readonly claims?: Readonly<Record<string, unknown>> };

/** One predicate of a rule, named after the match field it implements. */
export interface RuleCheck {
  /** Match field, e.g. `verbs` or `http.paths`. */
  readonly field: string;
  /** True when the request satisfies this field. */
  test(identity: PolicyIdentity, attributes: RequestAttributes, now: Date): boolean;
  /** Why the field did not match, with the request's value, for `explain`. */
  explain(identity: PolicyIdentity, attributes: RequestAttributes, now: Date): string;
}

/** Plain approval settings of a compiled `require_approval` rule (mirrors `ApprovalRequirement`). */
export interface CompiledApproval {
  readonly approverGroups: readonly string[];
  readonly quorum: number;
  readonly scope: 'once' | 'window';
  readonly windowSeconds: number;
  readonly waitSeconds: number;
  readonly reasonRequired: boolean;
  readonly channel: string;
}

/** A rule ready for evaluation. */
export interface CompiledRule {
  readonly id: string;
  /** Position in the document (0-based). */
  readonly index: number;
  readonly effect: RuleEffect;
  readonly description: string;
  /** Client-facing message ('' when none). */
  readonly message: string;
  /** Masking profile ('' when none). */
  readonly mask: string;
  readonly approval: CompiledApproval | undefined;
  /** Predicates, cheapest and most selective first; all must hold. */
  readonly checks: readonly RuleCheck[];
}

/** Defaults applied to approval settings a rule (and `defaults.approval`) leaves out. */
export const APPROVAL_DEFAULTS = { quorum: 1, scope: 'once', waitSeconds: 30, reasonRequired: false } as const;

/** Kubernetes attributes when the request is a Kubernetes request. */
export function kubeOf(a: RequestAttributes): KubeAttributes | undefined {
  return a.connectionType === 'http' ? undefined : a.kube;
}

/** HTTP attributes when the request is a generic HTTP request. */
export function httpOf(a: RequestAttributes): HttpAttributes | undefined {
  return a.connectionType === 'kubernetes' ? undefined : a.http;
}

/** `resource` or `resource/subresource`, the value `match.resources` is compared with. */
export function resourceKeyOf(k: KubeAttributes): string {
  return k.subresource === '' ? k.resource : `${k.resource}/${k.subresource}`;
}

/** Namespace as policies see it: `-` is the cluster scope, spelled `""` internally. */
export function normalizeNamespace(ns: string): string {
  return ns === '-' ? '' : ns;
}

const q = (v: string): string => JSON.stringify(v);
const list = (vs: readonly string[]): string => `[${vs.map(q).join(', ')}]`;

function globCheck(
  field: string,
  patterns: readonly string[],
  value: (i: PolicyIdentity, a: RequestAttributes) => string | undefined,
  missing: string,
): RuleCheck {
  const set = new GlobSet(patterns);
  return {
    field,
    test: (i, a) => {
      const v = value(i, a);
      return v !== undefined && set.test(v);
    },
    explain: (i, a) => {
      const v = value(i, a);
      return v === undefined ? `${field}: ${missing}` : `${field}: ${q(v)} does not match ${list(patterns)}`;
    },
  };
}

function multiGlobCheck(field: string, patterns: readonly string[], values: (i: PolicyIdentity) => readonly string[]): RuleCheck {
  const set = new GlobSet(patterns);
  return {
    field,
    test: (i) => set.testAny(values(i)),
    explain: (i) => `${field}: none of ${list(values(i))} matches ${list(patterns)}`,
  };
}

const NOT_KUBE = 'not a Kubernetes request';
const NOT_RESOURCE = 'not a Kubernetes resource request';
const NOT_NON_RESOURCE = 'not a Kubernetes non-resource request';
const NOT_HTTP = 'not an HTTP request';

function resourceAttr(a: RequestAttributes): KubeAttributes | undefined {
  const k = kubeOf(a);
  return k !== undefined && k.isResourceRequest ? k : undefined;
}

function claimCheck(name: string, patterns: readonly string[]): RuleCheck {
  const set = new GlobSet(patterns);
  const field = `claims.${name}`;
  const read = (i: PolicyIdentity): readonly string[] | undefined => {
    const v = i.claims?.[name];
    if (typeof v === 'string') return [v];
    if (typeof v === 'number' || typeof v === 'boolean') return [String(v)];
    if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
    return undefined;
  };
  return {
    field,
    test: (i) => {
      const v = i.claims?.[name];
      if (typeof v === 'string') return set.test(v);
      const vs = read(i);
      return vs !== undefined && set.testAny(vs);
    },
    explain: (i) => {
      const vs = read(i);
      return vs === undefined ? `${field}: claim absent` : `${field}: ${list(vs)} does not match ${list(patterns)}`;
    },
  };
}

/** The match field of time windows. */
export const TIME_FIELD = 'time';

/** Builds the predicates of one rule, most selective and cheapest first, time last. */
function compileChecks(rule: RuleDocument): RuleCheck[] {
  const m = rule.match ?? {};
  const checks: RuleCheck[] = [];
  if (m.connections) checks.push(globCheck('connections', m.connections, (_i, a) => a.connection, ''));
  if (m.verbs) checks.push(globCheck('verbs', m.verbs, (_i, a) => kubeOf(a)?.verb, NOT_KUBE));
  if (m.resources) {
    checks.push(
      globCheck(
        'resources',
        m.resources,
        (_i, a) => {
          const k = resourceAttr(a);
          return k === undefined ? undefined : resourceKeyOf(k);
        },
        NOT_RESOURCE,
      ),
    );
  }
  if (m.apiGroups) checks.push(globCheck('apiGroups', m.apiGroups, (_i, a) => resourceAttr(a)?.apiGroup, NOT_RESOURCE));
  if (m.namespaces) {
    // "*" means any namespace; cluster-scoped requests are matched only by "" or "-".
    const patterns = m.namespaces.map(normalizeNamespace);
    const set = new GlobSet(patterns.filter((p) => p !== ''));
    const cluster = patterns.includes('');
    checks.push({
      field: 'namespaces',
      test: (_i, a) => {
        const k = resourceAttr(a);
        if (k === undefined) return false;
        return k.namespace === '' ? cluster : set.test(k.namespace);
      },
      explain: (_i, a) => {
        const k = resourceAttr(a);
        if (k === undefined) return `namespaces: ${NOT_RESOURCE}`;
        const shown = k.namespace === '' ? 'cluster scope ("")' : q(k.namespace);
        return `namespaces: ${shown} does not match ${list(m.namespaces ?? [])}`;
      },
    });
  }
  if (m.names) checks.push(globCheck('names', m.names, (_i, a) => resourceAttr(a)?.name, NOT_RESOURCE));
  if (m.nonResourcePaths) {
    checks.push(
      globCheck(
        'nonResourcePaths',
        m.nonResourcePaths,
        (_i, a) => {
          const k = kubeOf(a);
          return k !== undefined && !k.isResourceRequest ? k.path : undefined;
        },
        NOT_NON_RESOURCE,
      ),
    );
  }
  if (m.http?.methods) {
    const methods = new Set(m.http.methods.map((x) => x.toUpperCase()));
    const methodOf = (a: RequestAttributes): string | undefined => {
      const h = httpOf(a);
      if (h === undefined) return undefined;
      const raw = h.method === '' ? a.method : h.method;
      return methods.has(raw) ? raw : raw.toUpperCase();
    };
    checks.push({
      field: 'http.methods',
      test: (_i, a) => {
        const v = methodOf(a);
        return v !== undefined && methods.has(v);
      },
      explain: (_i, a) => {
        const v = methodOf(a);
        return v === undefined ? `http.methods: ${NOT_HTTP}` : `http.methods: ${q(v)} is not in ${list([...methods])}`;
      },
    });
  }
  if (m.http?.paths) checks.push(globCheck('http.paths', m.http.paths, (_i, a) => httpOf(a)?.path, NOT_HTTP));
  if (m.subjects) checks.push(globCheck('subjects', m.subjects, (i) => i.subject, ''));
  if (m.groups) checks.push(multiGlobCheck('groups', m.groups, (i) => i.groups));
  if (m.clientIds) checks.push(globCheck('clientIds', m.clientIds, (i) => i.clientId, ''));
  if (m.issuers) checks.push(globCheck('issuers', m.issuers, (i) => i.issuer, ''));
  if (m.audiences) checks.push(multiGlobCheck('audiences', m.audiences, (i) => i.audiences));
  if (m.scopes) {
    const required = m.scopes;
    checks.push({
      field: 'scopes',
      test: (i) => {
        for (let s = 0; s < required.length; s++) if (!i.scopes.includes(required[s] as string)) return false;
        return true;
      },
      explain: (i) => `scopes: token scopes ${list(i.scopes)} lack ${list(required.filter((s) => !i.scopes.includes(s)))}`,
    });
  }
  if (m.claims) {
    for (const [name, value] of Object.entries(m.claims)) {
      checks.push(claimCheck(name, typeof value === 'string' ? [value] : value));
    }
  }
  if (m.time) {
    const window = new TimeWindow(m.time);
    const spec = [m.time.days?.join(',') ?? '', m.time.hours ?? ''].filter((x) => x !== '').join(' ');
    checks.push({
      field: TIME_FIELD,
      test: (_i, _a, now) => window.contains(now),
      explain: (_i, _a, now) => `time: ${window.describe(now)} is outside ${spec}`,
    });
  }
  return checks;
}

function compileApproval(own: ApprovalDocument | undefined, defaults: ApprovalDocument | undefined): CompiledApproval | undefined {
  const merged = { ...defaults, ...own };
  if (!merged.approverGroups) return undefined;
  const scope = merged.scope ?? APPROVAL_DEFAULTS.scope;
  return Object.freeze({
    approverGroups: Object.freeze([...merged.approverGroups]),
    quorum: merged.quorum ?? APPROVAL_DEFAULTS.quorum,
    scope,
    windowSeconds: scope === 'window' && merged.ttl ? (parseDurationSeconds(merged.ttl) ?? 0) : 0,
    waitSeconds: merged.wait ? (parseDurationSeconds(merged.wait) ?? 0) : APPROVAL_DEFAULTS.waitSeconds,
    reasonRequired: merged.reasonRequired ?? APPROVAL_DEFAULTS.reasonRequired,
    channel: merged.channel ?? '',
  });
}

/** Compiles one validated rule. */
export function compileRule(rule: RuleDocument, index: number, defaults?: ApprovalDocument): CompiledRule {
  return Object.freeze({
    id: rule.id,
    index,
    effect: rule.effect,
    description: rule.description ?? '',
    message: rule.message ?? '',
    mask: rule.mask ?? '',
    approval: rule.effect === 'require_approval' ? compileApproval(rule.approval, defaults) : undefined,
    checks: Object.freeze(compileChecks(rule)),
  });
}

/**
 * One indexed dimension: for each literal value, the rules that name it; plus the rules that
 * do not constrain the field (or use a glob), which every request must still consider.
 */
interface IndexDimension {
  readonly byValue: Map<string, Uint32Array>;
  readonly wildcard: Uint32Array;
}

function buildDimension(
  rules: readonly RuleDocument[],
  words: number,
  literalsOf: (r: RuleDocument) => readonly string[] | undefined,
): IndexDimension | undefined {
  const byValue = new Map<string, Uint32Array>();
  const wildcard = new Uint32Array(words);
  rules.forEach((r, i) => {
    const patterns = literalsOf(r);
    const set = patterns ? new GlobSet(patterns) : undefined;
    if (set === undefined || !set.allLiteral) {
      wildcard[i >>> 5] = (wildcard[i >>> 5] as number) | (1 << (i & 31));
      return;
    }
    for (const v of set.literals) {
      let bits = byValue.get(v);
      if (!bits) byValue.set(v, (bits = new Uint32Array(words)));
      bits[i >>> 5] = (bits[i >>> 5] as number) | (1 << (i & 31));
    }
  });
  // A dimension nobody constrains with literals filters nothing; skip it at evaluation time.
  return byValue.size === 0 ? undefined : { byValue, wildcard };
}

/** The bitset index over a policy's rules (internal to the engine). */
export class RuleIndex {
  readonly words: number;
  /** Scratch bitsets reused by every evaluation; evaluation is synchronous, so never shared concurrently. */
  readonly candidates: Uint32Array;
  readonly scratch: Uint32Array;
  readonly connection: IndexDimension | undefined;
  readonly verb: IndexDimension | undefined;
  readonly resource: IndexDimension | undefined;
  readonly subject: IndexDimension | undefined;
  readonly group: IndexDimension | undefined;

  constructor(rules: readonly RuleDocument[]) {
    this.words = Math.max(1, Math.ceil(rules.length / 32));
    this.candidates = new Uint32Array(this.words);
    this.scratch = new Uint32Array(this.words);
    this.connection = buildDimension(rules, this.words, (r) => r.match?.connections);
    this.verb = buildDimension(rules, this.words, (r) => r.match?.verbs);
    this.resource = buildDimension(rules, this.words, (r) => r.match?.resources);
    this.subject = buildDimension(rules, this.words, (r) => r.match?.subjects);
    this.group = buildDimension(rules, this.words, (r) => r.match?.groups);
  }
}

/**
 * A validated, compiled, immutable policy. Build it with `parsePolicy` (or `compilePolicy`);
 * a policy role swaps whole instances atomically on a new version.
 */
export class CompiledPolicy {
  /** `metadata.name`. */
  readonly name: string;
  /** `metadata.version`; every decision carries it as `policyVersion`. */
  readonly version: string;
  /** Where the policy came from (a file name, a KV revision), for messages. */
  readonly source: string;
  /** Rules in document order. */
  readonly rules: readonly CompiledRule[];
  /** The rules with a `time` window: the only ones whose outcome can change as the clock moves. */
  readonly timedRules: readonly CompiledRule[];
  /** The validated document, deeply frozen. */
  readonly document: PolicyDocument;
  /** @internal */
  readonly index: RuleIndex;

  constructor(document: PolicyDocument, source: string) {
    this.document = deepFreeze(document);
    this.name = document.metadata.name;
    this.version = document.metadata.version;
    this.source = source;
    this.rules = Object.freeze(document.rules.map((r, i) => compileRule(r, i, document.defaults?.approval)));
    this.timedRules = Object.freeze(this.rules.filter((r) => r.checks.some((c) => c.field === TIME_FIELD)));
    this.index = new RuleIndex(document.rules);
    Object.freeze(this);
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
