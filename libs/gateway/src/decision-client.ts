import {
  create,
  decodeDecisionReply,
  DecisionRequestSchema,
  encodeDecisionRequest,
  Subjects,
  type Decision,
  type Identity,
  type RequestAttributes,
} from '../../contracts/src/index.js';
import { BusError, type MessageBus } from '../../bus/src/bus.port.js';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';

/** Asks the policy role for a decision over the bus; no decision means no access. */
export class DecisionClient {
  constructor(
    private readonly bus: MessageBus,
    private readonly timeoutMs: number,
  ) {}

  /** Resolves with the decision (the token's claims, as JSON, go to policy only, never into events), or rejects with GatewayError `decision_unavailable`. */
  async decide(requestId: string, identity: Identity, attributes: RequestAttributes, claimsJson = ''): Promise<Decision> {
    const payload = encodeDecisionRequest(
      create(DecisionRequestSchema, { requestId, identity, attributes, requestedAtMs: Date.now(), claimsJson }),
    );
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
    return reply.decision;
  }
}
