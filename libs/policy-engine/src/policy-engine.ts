/**
 * The evaluator: pure functions from (policy, identity, request, clock) to a {@link Decision}.
 *
 * Semantics: a rule matches when every field of its `match` holds. Among matching rules,
 * deny > require_approval > allow; the first matching rule (document order) of the winning effect
 * names the decision. A `mask` on any matching rule that lets the request through (allow,
 * require_approval, or a `mask`-effect rule) applies, the first one if several. No allow or
 * require_approval rule matching means deny, rule id {@link DEFAULT_DENY_RULE_ID}.
 */
import { ApprovalRequirementSchema, DecisionSchema, create, type Decision, type RequestAttributes } from '@portcullis/contracts';
import { TIME_FIELD, kubeOf, httpOf, resourceKeyOf, type CompiledPolicy, type CompiledRule, type PolicyIdentity } from './compiled-policy.js';

/** Rule id of the decision made when no rule lets a request through. */
export const DEFAULT_DENY_RULE_ID = 'default-deny';

/** One line of an {@link explain} trace. */
export interface TraceEntry {
  readonly ruleId: string;
  readonly effect: CompiledRule['effect'];
  readonly matched: boolean;
  /** The first match field that failed, with the request's value; absent when matched. */
  readonly failedOn?: string;
}

/** Result of {@link explain}. */
export interface Explanation {
  readonly decision: Decision;
  /** Every rule, in document order. */
  readonly trace: readonly TraceEntry[];
}

function matches(rule: CompiledRule, identity: PolicyIdentity, attributes: RequestAttributes, now: Date): boolean {
  const checks = rule.checks;
  for (let c = 0; c < checks.length; c++) {
    if (!checks[c]!.test(identity, attributes, now)) return false;
  }
  return true;
}

/** Narrows the candidate bitset by one dimension: keep rules naming one of the values, or not indexed on it. */
function narrow(
  candidates: Uint32Array,
  dim: { readonly byValue: Map<string, Uint32Array>; readonly wildcard: Uint32Array } | undefined,
  value: string | undefined,
): void {
  if (dim === undefined) return;
  const hit = value === undefined ? undefined : dim.byValue.get(value);
  const wild = dim.wildcard;
  if (hit === undefined) {
    for (let w = 0; w < candidates.length; w++) candidates[w]! &= wild[w]!;
  } else {
    for (let w = 0; w < candidates.length; w++) candidates[w]! &= wild[w]! | hit[w]!;
  }
}

function narrowMany(
  candidates: Uint32Array,
  scratch: Uint32Array,
  dim: { readonly byValue: Map<string, Uint32Array>; readonly wildcard: Uint32Array } | undefined,
  values: readonly string[],
): void {
  if (dim === undefined) return;
  scratch.set(dim.wildcard);
  for (let v = 0; v < values.length; v++) {
    const hit = dim.byValue.get(values[v]!);
    if (hit === undefined) continue;
    for (let w = 0; w < scratch.length; w++) scratch[w]! |= hit[w]!;
  }
  for (let w = 0; w < candidates.length; w++) candidates[w]! &= scratch[w]!;
}

/**
 * Decides one request. Pure: the same inputs always give the same decision; the clock is `now`.
 *
 * @param policy - a policy from `parsePolicy`.
 * @param identity - the verified machine identity (plus optional claims).
 * @param attributes - what the request is.
 * @param now - the decision time, used only by `time` windows.
 */
export function evaluate(policy: CompiledPolicy, identity: PolicyIdentity, attributes: RequestAttributes, now: Date): Decision {
  const { index, rules } = policy;
  const candidates = index.candidates;
  candidates.fill(0xffffffff);
  const kube = kubeOf(attributes);
  narrow(candidates, index.connection, attributes.connection);
  narrow(candidates, index.verb, kube?.verb);
  narrow(candidates, index.resource, kube?.isResourceRequest ? resourceKeyOf(kube) : undefined);
  narrow(candidates, index.subject, identity.subject);
  narrowMany(candidates, index.scratch, index.group, identity.groups);

  let approval: CompiledRule | undefined;
  let allow: CompiledRule | undefined;
  let mask: CompiledRule | undefined;
  for (let w = 0; w < candidates.length; w++) {
    let bits = candidates[w]!;
    while (bits !== 0) {
      const low = bits & -bits;
      const i = (w << 5) + 31 - Math.clz32(low);
      bits ^= low;
      const rule = rules[i];
      if (rule === undefined) continue;
      if (!matches(rule, identity, attributes, now)) continue;
      switch (rule.effect) {
        case 'deny':
          return decisionFor(policy, rule, undefined, identity, attributes);
        case 'require_approval':
          approval ??= rule;
          break;
        case 'allow':
          allow ??= rule;
          break;
        case 'mask':
          break;
      }
      if (mask === undefined && rule.mask !== '') mask = rule;
    }
  }
  return decisionFor(policy, approval ?? allow, mask, identity, attributes);
}

/** Builds the decision for the winning rule (undefined = default deny) and the masking rule. */
function decisionFor(
  policy: CompiledPolicy,
  winner: CompiledRule | undefined,
  mask: CompiledRule | undefined,
  identity: PolicyIdentity,
  attributes: RequestAttributes,
): Decision {
  if (winner === undefined) {
    return create(DecisionSchema, {
      effect: 'deny',
      ruleId: DEFAULT_DENY_RULE_ID,
      policyVersion: policy.version,
      message: `no rule of policy "${policy.name}" (version ${policy.version}) allows ${describeRequest(identity, attributes)} (default deny)`,
    });
  }
  if (winner.effect === 'deny') {
    return create(DecisionSchema, {
      effect: 'deny',
      ruleId: winner.id,
      policyVersion: policy.version,
      message: winner.message !== '' ? winner.message : `denied by policy rule "${winner.id}"`,
    });
  }
  const maskProfile = mask?.mask ?? '';
  if (winner.effect === 'require_approval') {
    const a = winner.approval;
    // parsePolicy guarantees approval settings; fail closed if a hand-built policy lacks them.
    if (a === undefined) {
      return create(DecisionSchema, {
        effect: 'deny',
        ruleId: winner.id,
        policyVersion: policy.version,
        message: `policy rule "${winner.id}" requires approval but has no approval settings`,
      });
    }
    return create(DecisionSchema, {
      effect: 'require_approval',
      ruleId: winner.id,
      policyVersion: policy.version,
      message: winner.message !== '' ? winner.message : `approval required by policy rule "${winner.id}"`,
      maskProfile,
      approval: create(ApprovalRequirementSchema, {
        approverGroups: [...a.approverGroups],
        quorum: a.quorum,
        scope: a.scope,
        windowSeconds: a.windowSeconds,
        waitSeconds: a.waitSeconds,
        reasonRequired: a.reasonRequired,
        channel: a.channel,
      }),
    });
  }
  return create(DecisionSchema, {
    effect: 'allow',
    ruleId: winner.id,
    policyVersion: policy.version,
    message: winner.message,
    maskProfile,
  });
}

/** A one-line description of a request for default-deny messages, e.g. `ci-bot delete pods "web" in namespace "default" on connection "sandbox"`. */
export function describeRequest(identity: PolicyIdentity, attributes: RequestAttributes): string {
  const who = identity.subject === '' ? 'anonymous' : JSON.stringify(identity.subject);
  const on = `on connection ${JSON.stringify(attributes.connection)}`;
  const kube = kubeOf(attributes);
  if (kube !== undefined) {
    if (!kube.isResourceRequest) return `${who} to ${kube.verb} ${kube.path} ${on}`;
    const what = resourceKeyOf(kube) + (kube.apiGroup === '' ? '' : `.${kube.apiGroup}`);
    const name = kube.name === '' ? '' : ` ${JSON.stringify(kube.name)}`;
    const where = kube.namespace === '' ? '' : ` in namespace ${JSON.stringify(kube.namespace)}`;
    return `${who} to ${kube.verb} ${what}${name}${where} ${on}`;
  }
  const http = httpOf(attributes);
  if (http !== undefined) return `${who} to ${http.method || attributes.method} ${http.path} ${on}`;
  return `${who} ${on}`;
}

/**
 * Evaluates every rule without the index and reports, for each, whether it matched and the first
 * field that did not. The decision is the same as {@link evaluate}'s.
 */
export function explain(policy: CompiledPolicy, identity: PolicyIdentity, attributes: RequestAttributes, now: Date): Explanation {
  const trace: TraceEntry[] = [];
  let deny: CompiledRule | undefined;
  let approval: CompiledRule | undefined;
  let allow: CompiledRule | undefined;
  let mask: CompiledRule | undefined;
  for (const rule of policy.rules) {
    const failed = rule.checks.find((c) => !c.test(identity, attributes, now));
    if (failed !== undefined) {
      trace.push({ ruleId: rule.id, effect: rule.effect, matched: false, failedOn: failed.explain(identity, attributes, now) });
      continue;
    }
    trace.push({ ruleId: rule.id, effect: rule.effect, matched: true });
    if (rule.effect === 'deny') deny ??= rule;
    else {
      if (rule.effect === 'require_approval') approval ??= rule;
      else if (rule.effect === 'allow') allow ??= rule;
      if (mask === undefined && rule.mask !== '') mask = rule;
    }
  }
  const decision = decisionFor(policy, deny ?? approval ?? allow, mask, identity, attributes);
  return { decision, trace };
}

/**
 * How long the decision for this identity and request stays what {@link evaluate} returns at
 * `now` as the clock moves on: until the next minute boundary when a rule with a time window
 * matches the request on every other field (time windows have minute granularity, and every
 * current time zone is a whole number of minutes from UTC), otherwise forever. Conservative: it
 * does not ask whether the timed rule would change the winner. Edges cache decisions no longer
 * than this, so a decision never outlives the window that made it.
 */
export function decisionStableForMs(policy: CompiledPolicy, identity: PolicyIdentity, attributes: RequestAttributes, now: Date): number {
  const timed = policy.timedRules;
  for (let r = 0; r < timed.length; r++) {
    const checks = timed[r]!.checks;
    let all = true;
    for (let c = 0; c < checks.length && all; c++) {
      const check = checks[c]!;
      if (check.field !== TIME_FIELD && !check.test(identity, attributes, now)) all = false;
    }
    if (all) return MINUTE_MS - (now.getTime() % MINUTE_MS);
  }
  return Number.POSITIVE_INFINITY;
}

const MINUTE_MS = 60_000;
