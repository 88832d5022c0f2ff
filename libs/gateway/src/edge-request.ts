import type { IncomingMessage, ServerResponse } from 'node:http';
import { create, newEventId, RequestAttributesSchema, type Decision, type Identity, type RequestAttributes } from '@portcullis/contracts';
import type { BodyRecorder } from '@portcullis/masking';
import type { Span } from '@portcullis/observability';
import type { UpstreamConnection } from './connection-registry.js';
import type { EdgeRoute } from './edge-route.js';
import type { GatewayError } from './gateway-error.js';
import type { ProtocolAdapter } from './protocol-adapter.js';
import type { ExchangeBodies, MaskPlan } from './response-masking.js';
import type { UpgradeSocket } from './upgrade-forwarder.js';

/** Where a request reports how it ended: answers a refusal, records request.completed. */
export interface RequestEnds {
  /** Answers `err` in the request's protocol (or cuts a response already started); the GatewayError answered. */
  answer(ctx: EdgeRequest, err: unknown): GatewayError;
  /** Records request.completed for the request. */
  complete(ctx: EdgeRequest, status: number, error: string, forwarded: boolean, bodies: ExchangeBodies | undefined): void;
}

/**
 * One request through the edge: what the server routed, what each step learned, and the state of
 * its exchange with the upstream. One object per request, passed from step to step instead of
 * long parameter lists and closures. The steps fill it in order; a field is read only after the
 * step that sets it (noted on each).
 */
export class EdgeRequest {
  /** The request's event id: request.received's id, every other event's correlation id, the Audit-Id. */
  readonly id: string = newEventId();
  /** When the edge began serving it (`performance.now()`). */
  readonly started: number = performance.now();
  /** The policy's input: the route step adds what the protocol reads. */
  readonly attributes: RequestAttributes;
  /**
   * Set by route: the path and query the upstream is sent (after the connection's base path) — the
   * canonical path the protocol read, which the policy decided on, and the query as received.
   */
  upstreamTarget = '';
  /** Set by route: the raw query ('' when none). */
  query = '';
  /** Set by screen: the connection the route names, of the route's kind. */
  connection!: UpstreamConnection;
  /** Set by authenticate. */
  identity: Identity | undefined = undefined;
  /** Set by authenticate: the token's claims for the policy's claim conditions. */
  claimsJson = '';
  /** Set by decide. */
  decision!: Decision;
  /** Set by admit: request.decided's id, the causation of request.completed and the session events. */
  decidedId = '';
  /** Set when the request was held for approval: its buffered body, forwarded with its exact length. */
  body: Buffer | undefined = undefined;
  /** Set by the HTTP forwarder when the decision names a masking profile. */
  plan: MaskPlan | undefined = undefined;
  /** The request body's audit copy while it streams upstream (requests with a body only). */
  recorder: BodyRecorder | undefined = undefined;
  /** Request body bytes sent upstream. */
  bytesIn = 0;
  /** Response bytes sent to the client. */
  bytesOut = 0;
  /** request.completed is recorded: whatever else ends the exchange later changes nothing. */
  completed = false;
  /** Cancels the upstream request: client gone, body over the cap, no answer in time. */
  abort: AbortController | undefined = undefined;
  /** Fires when the upstream has not answered within the timeout. */
  headerTimer: NodeJS.Timeout | undefined = undefined;
  /** The upstream call's span (tracing on). */
  upstreamSpan: Span | undefined = undefined;
  /** When the upstream request was sent (`performance.now()`). */
  upstreamStart = 0;

  constructor(
    readonly req: IncomingMessage,
    /** The response; for an upgrade it writes onto the client socket (refusals, a non-101 answer). */
    readonly res: ServerResponse,
    readonly route: EdgeRoute,
    /** The client side of an upgrade request (WebSocket, SPDY); undefined for a plain request. */
    readonly upgrade: UpgradeSocket | undefined,
    private readonly ends: RequestEnds,
  ) {
    this.attributes = create(RequestAttributesSchema, {
      connection: route.connectionName,
      connectionType: route.protocol.kind,
      method: req.method ?? 'GET',
      sourceIp: req.socket.remoteAddress ?? '',
      userAgent: headerValue(req.headers['user-agent']).slice(0, 256),
      bodyBytes: Number(req.headers['content-length'] ?? 0) || 0,
    });
  }

  /** The protocol serving the request. */
  get protocol(): ProtocolAdapter {
    return this.route.protocol;
  }

  /** Answers `err` in the request's protocol; the GatewayError answered. */
  fail(err: unknown): GatewayError {
    return this.ends.answer(this, err);
  }

  /** Records request.completed, once: the first end of the exchange is the one recorded. */
  complete(status: number, error: string, forwarded: boolean, bodies?: ExchangeBodies): void {
    if (this.completed) return;
    this.completed = true;
    this.ends.complete(this, status, error, forwarded, bodies);
  }
}

/** The first value of a request header, '' when absent. */
export function headerValue(v: string | string[] | undefined): string {
  return Array.isArray(v) ? (v[0] ?? '') : (v ?? '');
}
