/**
 * The events the edge records about one request, built from its context: request.received,
 * request.decided, request.rejected, request.completed, identity.authenticated and
 * identity.rejected. Every one carries the request's id as its correlation id.
 */
import {
  buildEvent,
  create,
  EventType,
  IdentityAuthenticatedSchema,
  IdentityRejectedSchema,
  RequestCompletedSchema,
  RequestDecidedSchema,
  RequestReceivedSchema,
  RequestRejectedSchema,
  type EventEnvelope,
} from '@portcullis/contracts';
import type { VerifiedToken } from '@portcullis/identity';
import type { DecisionOutcome } from './decision-client.js';
import type { EdgeRequest } from './edge-request.js';
import type { GatewayError } from './gateway-error.js';
import type { ExchangeBodies } from './response-masking.js';

/** What identity.rejected says about a refused token. */
export interface TokenRejection {
  readonly reason: string;
  readonly message: string;
  readonly status: number;
  /** The token's unverified issuer, '' when it has none. */
  readonly issuer: string;
  /** The token's hash, '' when there was no token. */
  readonly tokenHash: string;
}

/** Builds one edge node's request events. */
export class RequestEvents {
  constructor(private readonly nodeId: string) {}

  /** request.received: its id is the request's (the Audit-Id). */
  received(ctx: EdgeRequest): EventEnvelope {
    return buildEvent(EventType.RequestReceived, create(RequestReceivedSchema, { identity: ctx.identity, attributes: ctx.attributes }), {
      id: ctx.id,
      correlationId: ctx.id,
      nodeId: this.nodeId,
      connection: ctx.connection.name,
    });
  }

  /** request.decided, caused by request.received. */
  decided(ctx: EdgeRequest, outcome: DecisionOutcome, decisionLatencyUs: number): EventEnvelope {
    return buildEvent(EventType.RequestDecided, create(RequestDecidedSchema, { decision: outcome.decision, cached: outcome.cached, decisionLatencyUs }), {
      correlationId: ctx.id,
      causationId: ctx.id,
      nodeId: this.nodeId,
      connection: ctx.connection.name,
    });
  }

  /** request.rejected: refused before any decision; its id is the request's. */
  rejected(ctx: EdgeRequest, gw: GatewayError, connection: string): EventEnvelope {
    return buildEvent(
      EventType.RequestRejected,
      create(RequestRejectedSchema, {
        status: gw.httpStatus,
        reason: gw.code,
        message: gw.message,
        attributes: ctx.attributes,
        ...(ctx.identity ? { identity: ctx.identity } : {}),
      }),
      { id: ctx.id, correlationId: ctx.id, nodeId: this.nodeId, connection },
    );
  }

  /** request.completed, caused by request.decided. */
  completed(ctx: EdgeRequest, status: number, error: string, forwarded: boolean, bodies: ExchangeBodies | undefined): EventEnvelope {
    return buildEvent(
      EventType.RequestCompleted,
      create(RequestCompletedSchema, {
        status,
        bytesIn: ctx.bytesIn,
        bytesOut: ctx.bytesOut,
        durationMs: Math.round(performance.now() - ctx.started),
        error,
        forwarded,
        ...(bodies !== undefined
          ? {
              ...(bodies.requestBody !== undefined ? { requestBody: bodies.requestBody } : {}),
              ...(bodies.responseBody !== undefined ? { responseBody: bodies.responseBody } : {}),
              maskedFields: bodies.maskedFields,
              maskProfile: bodies.maskProfile,
            }
          : {}),
      }),
      { correlationId: ctx.id, causationId: ctx.decidedId, nodeId: this.nodeId, connection: ctx.connection.name },
    );
  }

  /** identity.authenticated: a token's first use at this edge. */
  identityAuthenticated(ctx: EdgeRequest, verified: VerifiedToken): EventEnvelope {
    return buildEvent(
      EventType.IdentityAuthenticated,
      create(IdentityAuthenticatedSchema, { identity: verified.identity, expiresAtMs: verified.expiresAtMs }),
      {
        correlationId: ctx.id,
        causationId: ctx.id,
        nodeId: this.nodeId,
        connection: ctx.connection.name,
      },
    );
  }

  /** identity.rejected: a missing, malformed or refused token. */
  identityRejected(ctx: EdgeRequest, rejection: TokenRejection): EventEnvelope {
    return buildEvent(
      EventType.IdentityRejected,
      create(IdentityRejectedSchema, {
        reason: rejection.reason,
        issuer: rejection.issuer,
        message: rejection.message,
        tokenHash: rejection.tokenHash,
        status: rejection.status,
      }),
      { correlationId: ctx.id, causationId: ctx.id, nodeId: this.nodeId, connection: ctx.connection.name },
    );
  }
}
