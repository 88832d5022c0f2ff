/**
 * "What would the policy do if …": the request an operator describes (CLI flags or the edge's
 * JSON endpoint) turned into the identity and attributes the evaluator sees, and an explanation
 * rendered for people.
 */
import { z } from 'zod';
import {
  DecisionSchema,
  IdentitySchema,
  KubeAttributesSchema,
  RequestAttributesSchema,
  create,
  toJson,
  type Decision,
  type ExplainReply,
  type Identity,
  type RequestAttributes,
} from '@portcullis/contracts';

const name = z.string().max(1024);

/** An explain request as the CLI and `POST /admin/policy/explain` take it. Unknown keys are errors. */
export const ExplainSpecSchema = z.strictObject({
  subject: name.min(1),
  groups: z.array(name).max(256).default([]),
  clientId: name.default(''),
  issuer: name.default(''),
  scopes: z.array(name).max(256).default([]),
  audiences: z.array(name).max(64).default([]),
  connection: name.min(1),
  /** A Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection, … */
  verb: name.min(1),
  /** `pods`, `pods/exec` (resource/subresource), or a non-resource path such as `/version`. */
  resource: name.min(1),
  name: name.default(''),
  /** Empty for cluster-scoped resources. */
  namespace: name.default(''),
  subresource: name.default(''),
  apiGroup: name.default(''),
  /** Evaluate at this instant (ISO 8601) instead of now, for rules with time windows. */
  at: z.iso.datetime({ offset: true }).optional(),
});

/** A validated explain request. */
export type ExplainSpec = z.output<typeof ExplainSpecSchema>;

/**
 * Validates an explain request (already parsed JSON): the spec, or one line per problem naming
 * the field (`unknown key "sudo"`, `groups: Invalid input: expected array …`).
 */
export function parseExplainSpec(raw: unknown): { ok: true; spec: ExplainSpec } | { ok: false; problems: string[] } {
  const parsed = ExplainSpecSchema.safeParse(raw);
  if (parsed.success) return { ok: true, spec: parsed.data };
  const problems = parsed.error.issues.map((i) =>
    i.code === 'unrecognized_keys'
      ? `unknown key ${i.keys.map((k) => JSON.stringify(k)).join(', ')}`
      : `${i.path.map(String).join('.') || '(body)'}: ${i.message}`,
  );
  return { ok: false, problems };
}

const METHOD_OF_VERB: Readonly<Record<string, string>> = {
  get: 'GET',
  list: 'GET',
  watch: 'GET',
  create: 'POST',
  update: 'PUT',
  patch: 'PATCH',
  delete: 'DELETE',
  deletecollection: 'DELETE',
};

/** The identity and Kubernetes request attributes an explain request describes. */
export function explainInput(spec: ExplainSpec): { identity: Identity; attributes: RequestAttributes; at: Date | undefined } {
  const identity = create(IdentitySchema, {
    subject: spec.subject,
    groups: [...spec.groups],
    clientId: spec.clientId,
    issuer: spec.issuer,
    scopes: [...spec.scopes],
    audiences: [...spec.audiences],
  });
  const nonResource = spec.resource.startsWith('/');
  const slash = spec.resource.indexOf('/');
  const resource = nonResource || slash === -1 ? spec.resource : spec.resource.slice(0, slash);
  const subresource = spec.subresource !== '' || nonResource || slash === -1 ? spec.subresource : spec.resource.slice(slash + 1);
  const kube = nonResource
    ? create(KubeAttributesSchema, { isResourceRequest: false, verb: spec.verb, path: spec.resource })
    : create(KubeAttributesSchema, {
        isResourceRequest: true,
        verb: spec.verb,
        apiGroup: spec.apiGroup,
        apiPrefix: spec.apiGroup === '' ? 'api' : 'apis',
        namespace: spec.namespace,
        resource,
        subresource,
        name: spec.name,
      });
  const attributes = create(RequestAttributesSchema, {
    connection: spec.connection,
    connectionType: 'kubernetes',
    method: METHOD_OF_VERB[spec.verb] ?? 'GET',
    kube,
  });
  return { identity, attributes, at: spec.at === undefined ? undefined : new Date(spec.at) };
}

/** One rule's outcome as an explanation shows it (the engine's `TraceEntry`, or one off the wire). */
export interface ExplainTraceView {
  readonly ruleId: string;
  readonly effect: string;
  readonly matched: boolean;
  readonly failedOn?: string | undefined;
}

/** An explanation as the policy role returns it. */
export interface ExplanationView {
  readonly decision: Decision;
  readonly trace: readonly ExplainTraceView[];
  readonly request: string;
  readonly policyName: string;
  readonly policySource: string;
}

/**
 * Renders an explanation for a terminal: the decision, the deciding rule and why, and for every
 * rule in document order whether it matched or the first field it failed on.
 */
export function formatExplanation(e: ExplanationView): string {
  const d = e.decision;
  const lines = [
    `request:  ${e.request}`,
    `policy:   ${e.policyName} version ${d.policyVersion} (${e.policySource})`,
    `decision: ${d.effect.toUpperCase()} by rule ${d.ruleId}${d.maskProfile ? `, masked with profile ${d.maskProfile}` : ''}`,
  ];
  if (d.message) lines.push(`message:  ${d.message}`);
  if (d.approval !== undefined && d.effect === 'require_approval') {
    const a = d.approval;
    lines.push(
      `approval: ${a.quorum} of [${a.approverGroups.join(', ')}], scope ${a.scope}${a.scope === 'window' ? ` ${a.windowSeconds}s` : ''}, ` +
        `wait ${a.waitSeconds}s${a.reasonRequired ? ', reason required' : ''}${a.channel ? `, in ${a.channel}` : ''}`,
    );
  }
  lines.push('why:');
  const deciding = d.ruleId;
  let decided = false;
  for (const t of e.trace) {
    if (t.matched) {
      const mark = t.ruleId === deciding && !decided ? '  <- decides' : '';
      if (mark !== '') decided = true;
      lines.push(`  matched  ${t.ruleId} (${t.effect})${mark}`);
    } else {
      lines.push(`  skipped  ${t.ruleId} (${t.effect}): ${t.failedOn ?? ''}`);
    }
  }
  if (!decided) {
    lines.push(d.ruleId === 'default-deny' ? '  no allow or require_approval rule matched: default deny' : `  (rule ${d.ruleId} decided)`);
  }
  const precedence =
    e.trace.filter((t) => t.matched).length > 1
      ? ['precedence: deny over require_approval over allow; the first matching rule of the winning effect decides']
      : [];
  return `${[...lines, ...precedence].join('\n')}\n`;
}

/**
 * The JSON answer of `POST /admin/policy/explain` for the policy role's reply: the request, the
 * policy in force, the decision, every rule's outcome and the text {@link formatExplanation} renders.
 */
export function explainView(reply: ExplainReply & { decision: Decision }): Record<string, unknown> {
  const decision = reply.decision;
  const trace = reply.trace.map((t) => ({ ruleId: t.ruleId, effect: t.effect, matched: t.matched, ...(t.matched ? {} : { failedOn: t.failedOn }) }));
  return {
    request: reply.request,
    policy: { name: reply.policyName, version: decision.policyVersion, source: reply.policySource },
    decision: toJson(DecisionSchema, decision),
    trace,
    text: formatExplanation({ decision, trace, request: reply.request, policyName: reply.policyName, policySource: reply.policySource }),
  };
}
