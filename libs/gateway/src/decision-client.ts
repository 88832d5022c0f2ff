import {
  create,
  decodeDecisionReply,
  decodeExplainReply,
  DecisionRequestSchema,
  encodeDecisionRequest,
  encodeExplainRequest,
  ExplainRequestSchema,
  Subjects,
  type Decision,
  type ExplainReply,
  type Identity,
  type RequestAttributes,
} from '@portcullis/contracts';
import { BusError, type BusSubscription, type MessageBus } from '@portcullis/bus/pure';
import { decisionCacheKey, type DecisionCache } from './decision-cache.js';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';

/** A decision and whether it came from the edge's cache. */
export interface DecisionOutcome {
  readonly decision: Decision;
  /** True when the edge reused a decision of the policy version in force instead of asking. */
  readonly cached: boolean;
}

/**
 * Asks the policy role for a decision over the bus; no decision means no access. With a
 * {@link DecisionCache}, a fresh decision of the version in force is reused; a miss with no
 * answer is still `decision_unavailable` (503).
 */
export class DecisionClient {
  constructor(
    private readonly bus: MessageBus,
    private readonly timeoutMs: number,
    private readonly cache?: DecisionCache,
  ) {}

  /**
   * Resolves with the decision, or rejects with GatewayError `decision_unavailable`. The token's
   * claims (JSON) go to policy and into the cache key, never into events.
   */
  async decide(requestId: string, identity: Identity, attributes: RequestAttributes, claimsJson = ''): Promise<DecisionOutcome> {
    const cache = this.cache;
    let key: string | undefined;
    let generation = 0;
    let askedAt = 0;
    if (cache !== undefined) {
      // While disconnected this edge may miss a change notice: forget everything, then fail closed below.
      if (!this.bus.isConnected()) {
        if (cache.size > 0) cache.invalidate();
      } else {
        key = decisionCacheKey(identity, attributes, claimsJson);
        const hit = cache.lookup(key);
        if (hit !== undefined) return { decision: hit, cached: true };
        generation = cache.generation;
        askedAt = cache.clock();
      }
    }
    const payload = encodeDecisionRequest(create(DecisionRequestSchema, { requestId, identity, attributes, requestedAtMs: Date.now(), claimsJson }));
    let reply;
    try {
      const msg = await this.bus.request(Subjects.policyDecide(), payload, { timeoutMs: this.timeoutMs });
      reply = decodeDecisionReply(msg.data);
    } catch (cause) {
      const why = cause instanceof BusError ? cause.code : 'undecodable reply';
      throw new GatewayError(GatewayErrorCode.DecisionUnavailable, `decision service unavailable (${why})`, { cause });
    }
    if (reply.error || reply.decision === undefined) {
      throw new GatewayError(GatewayErrorCode.DecisionUnavailable, `decision service unavailable (${reply.error || 'empty reply'})`);
    }
    if (cache !== undefined && key !== undefined) cache.store(key, reply.decision, reply.cacheMaxAgeMs, generation, askedAt);
    return { decision: reply.decision, cached: false };
  }

  /**
   * Empties the cache whenever a policy process announces a new version, so a push changes
   * decisions on every edge at once rather than when entries expire.
   */
  followPolicyChanges(): BusSubscription | undefined {
    const cache = this.cache;
    if (cache === undefined) return undefined;
    return this.bus.subscribe(Subjects.policyChanged(), () => cache.invalidate());
  }

  /** Asks the policy role to explain its decision; rejects with `decision_unavailable` when it cannot. */
  async explain(identity: Identity, attributes: RequestAttributes, at?: Date): Promise<ExplainReply> {
    const payload = encodeExplainRequest(create(ExplainRequestSchema, { identity, attributes, atMs: at?.getTime() ?? 0 }));
    let reply: ExplainReply;
    try {
      const msg = await this.bus.request(Subjects.policyExplain(), payload, { timeoutMs: this.timeoutMs });
      reply = decodeExplainReply(msg.data);
    } catch (cause) {
      const why = cause instanceof BusError ? cause.code : 'undecodable reply';
      throw new GatewayError(GatewayErrorCode.DecisionUnavailable, `policy service unavailable (${why})`, { cause });
    }
    if (reply.error || reply.decision === undefined) {
      throw new GatewayError(GatewayErrorCode.DecisionUnavailable, `policy service unavailable (${reply.error || 'empty reply'})`);
    }
    return reply;
  }
}
