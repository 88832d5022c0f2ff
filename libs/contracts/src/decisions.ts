import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  DecisionReplySchema,
  DecisionRequestSchema,
  ExplainReplySchema,
  ExplainRequestSchema,
  PolicyChangedSchema,
  type Decision,
  type DecisionReply,
  type DecisionRequest,
  type ExplainReply,
  type ExplainRequest,
  type PolicyChanged,
} from './gen/portcullis/v1/decision_pb.js';

/** Policy effects. Precedence when several rules match: deny > require_approval > allow. */
export const Effect = {
  Allow: 'allow',
  Deny: 'deny',
  RequireApproval: 'require_approval',
} as const;
export type Effect = (typeof Effect)[keyof typeof Effect];

/** Narrows a decision's effect string to {@link Effect}; anything unknown is a deny. */
export function effectOf(decision: Decision): Effect {
  switch (decision.effect) {
    case Effect.Allow:
    case Effect.Deny:
    case Effect.RequireApproval:
      return decision.effect;
    default:
      return Effect.Deny;
  }
}

export const encodeDecisionRequest = (m: DecisionRequest): Uint8Array => toBinary(DecisionRequestSchema, m);
export const decodeDecisionRequest = (b: Uint8Array): DecisionRequest => fromBinary(DecisionRequestSchema, b);
export const encodeDecisionReply = (m: DecisionReply): Uint8Array => toBinary(DecisionReplySchema, m);
export const decodeDecisionReply = (b: Uint8Array): DecisionReply => fromBinary(DecisionReplySchema, b);
export const decisionReply = (init: { decision?: Decision; error?: string; cacheMaxAgeMs?: number }): DecisionReply => create(DecisionReplySchema, init);
export const encodeExplainRequest = (m: ExplainRequest): Uint8Array => toBinary(ExplainRequestSchema, m);
export const decodeExplainRequest = (b: Uint8Array): ExplainRequest => fromBinary(ExplainRequestSchema, b);
export const encodeExplainReply = (m: ExplainReply): Uint8Array => toBinary(ExplainReplySchema, m);
export const decodeExplainReply = (b: Uint8Array): ExplainReply => fromBinary(ExplainReplySchema, b);
export const encodePolicyChanged = (m: PolicyChanged): Uint8Array => toBinary(PolicyChangedSchema, m);
export const decodePolicyChanged = (b: Uint8Array): PolicyChanged => fromBinary(PolicyChangedSchema, b);
