import type { Logger } from '@portcullis/common';
import { RequestOutcome, type PortcullisMetrics } from '@portcullis/observability';
import type { AuditPublisher } from './audit-publisher.js';
import type { ConnectionRegistry } from './connection-registry.js';
import type { EdgeRequest, RequestEnds } from './edge-request.js';
import { writeRefusal } from './edge-responses.js';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';
import type { RequestEvents } from './request-events.js';
import type { ExchangeBodies } from './response-masking.js';

/** The connection label of a request that named no known connection. */
const NO_CONNECTION = '_none';

/** What {@link RequestOutcomes} needs. */
export interface RequestOutcomesDeps {
  readonly connections: ConnectionRegistry;
  readonly events: RequestEvents;
  readonly audit: AuditPublisher;
  readonly logger: Logger;
  readonly metrics?: PortcullisMetrics['edge'] | undefined;
}

/** How a request ends: refusals answered in its protocol, request.rejected and request.completed recorded, outcomes counted. */
export class RequestOutcomes implements RequestEnds {
  constructor(private readonly deps: RequestOutcomesDeps) {}

  /** Answers `err` (anything not a GatewayError is an internal error, and logged); the GatewayError answered. */
  answer(ctx: EdgeRequest, err: unknown): GatewayError {
    const gw = err instanceof GatewayError ? err : new GatewayError(GatewayErrorCode.DecisionUnavailable, 'portcullis: internal error', { cause: err });
    if (!(err instanceof GatewayError) || gw.httpStatus >= 500) {
      this.deps.logger.warn('request failed', { auditId: ctx.id, code: gw.code, err: gw.cause ?? gw });
    }
    writeRefusal(ctx.res, ctx.protocol, gw, ctx.id);
    return gw;
  }

  /** A refusal before any decision: answered, and recorded as request.rejected (best effort). */
  reject(ctx: EdgeRequest, err: unknown): void {
    const gw = this.answer(ctx, err);
    const name = ctx.attributes.connection;
    const connection = this.deps.connections.get(name) ? name : NO_CONNECTION;
    this.count(ctx, connection, RequestOutcome.Rejected);
    this.deps.audit.recordLater(this.deps.events.rejected(ctx, gw, connection));
  }

  /** Records request.completed (best effort: the request was admitted by its acked request.decided). */
  complete(ctx: EdgeRequest, status: number, error: string, forwarded: boolean, bodies: ExchangeBodies | undefined): void {
    this.deps.audit.recordLater(this.deps.events.completed(ctx, status, error, forwarded, bodies));
  }

  /** Counts one answered request; labels are bounded (known connections, parsed verbs, outcomes). */
  count(ctx: EdgeRequest, connection: string, outcome: RequestOutcome): void {
    const m = this.deps.metrics;
    if (m === undefined) return;
    const verb = ctx.attributes.kube?.verb || ctx.attributes.method.toLowerCase();
    m.requests.inc([connection, verb, outcome]);
  }
}
