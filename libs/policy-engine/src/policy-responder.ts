/**
 * The policy role's wire protocol as pure functions: request bytes in, reply bytes out, from the
 * policy in force. No I/O, so the service, the embedded mode and the benchmark answer alike.
 */
import { create } from '@bufbuild/protobuf';
import {
  ExplainReplySchema,
  ExplainTraceEntrySchema,
  decisionReply,
  decodeDecisionRequest,
  decodeExplainRequest,
  encodeDecisionReply,
  encodeExplainReply,
} from '@portcullis/contracts';
import type { CompiledPolicy } from './compiled-policy.js';
import { decisionStableForMs, describeRequest, evaluate, explain } from './policy-engine.js';
import { withClaims } from './policy-identity.js';

/** The longest an edge is told it may reuse a decision (it applies its own, shorter ttl on top). */
export const MAX_CACHE_AGE_MS = 3_600_000;

/** Answers a `DecisionRequest`; `policy` undefined (none loaded yet) answers with an error, never a decision. */
export function answerDecisionRequest(policy: CompiledPolicy | undefined, data: Uint8Array, now: Date): Uint8Array {
  return answerDecision(policy, data, now).reply;
}

/** {@link answerDecisionRequest}, with the effect it answered (`error` for an error reply), for metrics without decoding the reply again. */
export function answerDecision(policy: CompiledPolicy | undefined, data: Uint8Array, now: Date): { reply: Uint8Array; effect: string } {
  if (policy === undefined) return { reply: encodeDecisionReply(decisionReply({ error: 'no valid policy loaded' })), effect: 'error' };
  const req = decodeDecisionRequest(data);
  if (req.identity === undefined || req.attributes === undefined) {
    return { reply: encodeDecisionReply(decisionReply({ error: 'decision request without identity or attributes' })), effect: 'error' };
  }
  const identity = withClaims(req.identity, req.claimsJson);
  const decision = evaluate(policy, identity, req.attributes, now);
  const stable = decisionStableForMs(policy, identity, req.attributes, now);
  return { reply: encodeDecisionReply(decisionReply({ decision, cacheMaxAgeMs: Math.min(stable, MAX_CACHE_AGE_MS) })), effect: decision.effect || 'error' };
}

/** Answers an `ExplainRequest` with the decision and every rule's outcome. */
export function answerExplainRequest(policy: CompiledPolicy | undefined, data: Uint8Array, now: Date): Uint8Array {
  if (policy === undefined) return encodeExplainReply(create(ExplainReplySchema, { error: 'no valid policy loaded' }));
  const req = decodeExplainRequest(data);
  if (req.identity === undefined || req.attributes === undefined) {
    return encodeExplainReply(create(ExplainReplySchema, { error: 'explain request without identity or attributes' }));
  }
  const at = req.atMs > 0 ? new Date(req.atMs) : now;
  const { decision, trace } = explain(policy, req.identity, req.attributes, at);
  return encodeExplainReply(
    create(ExplainReplySchema, {
      decision,
      trace: trace.map((t) => create(ExplainTraceEntrySchema, { ruleId: t.ruleId, effect: t.effect, matched: t.matched, failedOn: t.failedOn ?? '' })),
      policySource: policy.source,
      policyName: policy.name,
      request: describeRequest(req.identity, req.attributes),
    }),
  );
}
