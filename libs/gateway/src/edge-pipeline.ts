/**
 * The edge's request path, as named steps in the shape of an authorizer's check:
 *
 *   screen → authenticate → route → decide → admit (acked record) → forward → complete
 *
 * {@link EdgePipeline.serve} reads top to bottom; each step is a method here or its own file
 * (the forwarders, the approval hold, the responses and events). Every refusal is answered before
 * anything reaches the upstream, and nothing is forwarded before request.received and
 * request.decided are acknowledged by the audit log.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Effect, effectOf } from '@portcullis/contracts';
import { assertCleanPath } from '@portcullis/kube';
import { TokenError, TokenErrorCode, tokenHash, unverifiedIssuer, type TokenVerifier } from '@portcullis/identity';
import type { Logger } from '@portcullis/common';
import { endSpan, RequestOutcome, runInSpan, SpanKind, startSpan, tracingEnabled, type PortcullisMetrics } from '@portcullis/observability';
import type { ApprovalGate } from './approval-gate.js';
import { holdForApproval } from './approval-hold.js';
import type { AuditPublisher } from './audit-publisher.js';
import type { ConnectionRegistry } from './connection-registry.js';
import type { DecisionClient, DecisionOutcome } from './decision-client.js';
import { EdgeRequest, headerValue } from './edge-request.js';
import { AUDIT_ID_HEADER, approvalsOffMessage, denyMessage } from './edge-responses.js';
import type { EdgeRoute } from './edge-route.js';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';
import { HttpForwarder } from './http-forwarder.js';
import { DEFAULT_PROTOCOLS, ProtocolTable, type ProtocolAdapter } from './protocol-adapter.js';
import { RequestEvents } from './request-events.js';
import { RequestOutcomes } from './request-outcomes.js';
import { defaultEdgeMasking, type EdgeMasking } from './response-masking.js';
import type { SessionRecordingOptions } from './session-recorder.js';
import { UpgradeForwarder, type UpgradeSocket } from './upgrade-forwarder.js';

/** What the pipeline needs; every piece is a port or a pure helper. */
export interface EdgePipelineDeps {
  nodeId: string;
  connections: ConnectionRegistry;
  verifier: TokenVerifier;
  decisions: DecisionClient;
  audit: AuditPublisher;
  logger: Logger;
  upstreamTimeoutMs: number;
  /** Limits of exec/attach session recording (default: 1 MiB per session, batches every 200 ms or 64 KiB). */
  sessionRecording?: SessionRecordingOptions;
  /** Masking profiles and body-capture limits; default: the built-in `secrets` profile. */
  masking?: EdgeMasking;
  /** Holds require_approval requests for a human decision; without it they are refused (403). */
  approvals?: ApprovalGate | undefined;
  /** Largest request body: a larger declared Content-Length is refused (413); a chunked body is counted as it arrives (held: buffered and refused; forwarded: the upstream request is aborted). Default 16 MiB. */
  maxRequestBodyBytes?: number;
  /** Request, decision, audit and upstream metrics (absent in unit tests). */
  metrics?: PortcullisMetrics['edge'];
  /** The protocols served, by path prefix and connection kind (default: {@link DEFAULT_PROTOCOLS}, Kubernetes and HTTP). */
  protocols?: readonly ProtocolAdapter[];
}

/** Session recording limits used when the config says nothing. */
export const DEFAULT_SESSION_RECORDING: SessionRecordingOptions = { maxBytes: 1024 * 1024, flushIntervalMs: 200, flushBytes: 64 * 1024 };

// Histograms without labels share one (empty) label list rather than allocating one per request.
const NO_LABELS: readonly string[] = [];

/** The edge's request path for every data-path route (`/k8s/<connection>/…`, `/http/<connection>/…`, host-routed). */
export class EdgePipeline {
  /** The protocols served: the server routes by their prefixes. */
  readonly protocols: ProtocolTable;
  private readonly events: RequestEvents;
  private readonly outcomes: RequestOutcomes;
  private readonly http: HttpForwarder;
  private readonly upgrades: UpgradeForwarder;
  private readonly maxBodyBytes: number;
  private readonly masking: EdgeMasking;

  constructor(private readonly deps: EdgePipelineDeps) {
    this.masking = deps.masking ?? defaultEdgeMasking();
    this.protocols = new ProtocolTable(deps.protocols ?? DEFAULT_PROTOCOLS);
    this.maxBodyBytes = deps.maxRequestBodyBytes ?? 16 * 1024 * 1024;
    this.events = new RequestEvents(deps.nodeId);
    this.outcomes = new RequestOutcomes({ connections: deps.connections, events: this.events, audit: deps.audit, logger: deps.logger, metrics: deps.metrics });
    this.http = new HttpForwarder({
      upstreamTimeoutMs: deps.upstreamTimeoutMs,
      maxBodyBytes: this.maxBodyBytes,
      masking: this.masking,
      metrics: deps.metrics,
    });
    this.upgrades = new UpgradeForwarder({
      masking: deps.masking ?? defaultEdgeMasking(),
      nodeId: deps.nodeId,
      audit: deps.audit,
      logger: deps.logger,
      upstreamTimeoutMs: deps.upstreamTimeoutMs,
      recording: deps.sessionRecording ?? DEFAULT_SESSION_RECORDING,
    });
  }

  /**
   * Serves one request the server routed. An upgrade request (WebSocket, SPDY) passes `upgrade`
   * (its socket, `res` writing onto it) and takes exactly the same steps.
   */
  handle(req: IncomingMessage, res: ServerResponse, route: EdgeRoute, upgrade?: UpgradeSocket): Promise<void> {
    const ctx = new EdgeRequest(req, res, route, upgrade, this.outcomes);
    if (!tracingEnabled()) return this.serve(ctx);
    // One trace per request: the span ends when the response does.
    const span = startSpan('edge request', { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method ?? '', 'portcullis.audit_id': ctx.id } });
    if (span !== undefined) res.once('close', () => endSpan(span, undefined, { 'http.response.status_code': res.statusCode }));
    return runInSpan(span, ctx.id, () => this.serve(ctx));
  }

  /** The steps, top to bottom. A step that answers the request ends it here. */
  private async serve(ctx: EdgeRequest): Promise<void> {
    ctx.res.setHeader(AUDIT_ID_HEADER, ctx.id);
    // screen → authenticate → route: who asks, on which connection, for what; refusals are request.rejected.
    try {
      this.screen(ctx);
      await this.authenticate(ctx);
      this.route(ctx);
    } catch (err) {
      this.outcomes.reject(ctx, err);
      return;
    }
    // decide: the policy's answer (the decision client caches it).
    const decideStart = performance.now();
    let outcome: DecisionOutcome;
    try {
      outcome = await this.deps.decisions.decide(ctx.id, ctx.identity!, ctx.attributes, ctx.claimsJson);
    } catch (err) {
      this.deps.metrics?.decisionDuration.observe(NO_LABELS, (performance.now() - decideStart) / 1000);
      this.outcomes.reject(ctx, err);
      return;
    }
    this.deps.metrics?.decisionDuration.observe(NO_LABELS, (performance.now() - decideStart) / 1000);
    // admit: request.received and request.decided acknowledged by the audit log, or nothing happens.
    const received = this.events.received(ctx);
    const decided = this.events.decided(ctx, outcome, Math.round((performance.now() - decideStart) * 1000));
    ctx.decision = outcome.decision;
    ctx.decidedId = decided.id;
    const auditStart = performance.now();
    try {
      await this.deps.audit.record(received, decided);
    } catch (err) {
      this.auditFailed(ctx, err);
      return;
    }
    this.deps.metrics?.auditAckDuration.observe(NO_LABELS, (performance.now() - auditStart) / 1000);
    // ...then the decision's effect: allow goes on, require_approval is held, anything else is refused.
    const effect = effectOf(ctx.decision);
    this.outcomes.count(ctx, ctx.connection.name, effect);
    if (effect === Effect.RequireApproval && this.deps.approvals !== undefined) {
      if (!(await holdForApproval(ctx, this.deps.approvals, this.maxBodyBytes, this.masking.bodyDigest))) return;
    } else if (effect !== Effect.Allow) {
      this.refuseByDecision(ctx, effect);
      return;
    }
    // forward → complete: the forwarder records request.completed when the exchange ends.
    if (ctx.upgrade !== undefined) this.upgrades.forward(ctx);
    else this.http.forward(ctx);
  }

  /** The cheap refusals, before a token is looked at: an unknown connection, an unclean path, a declared body over the cap. */
  private screen(ctx: EdgeRequest): void {
    const { route } = ctx;
    const connection = this.deps.connections.get(route.connectionName);
    if (connection === undefined || connection.type !== route.protocol.kind) {
      throw new GatewayError(
        GatewayErrorCode.UnknownConnection,
        `no ${route.protocol.kind} connection named ${JSON.stringify(route.connectionName.slice(0, 64))}`,
      );
    }
    ctx.connection = connection;
    try {
      assertCleanPath(route.upstreamPath);
    } catch (cause) {
      throw new GatewayError(GatewayErrorCode.BadPath, (cause as Error).message, { cause });
    }
    if (ctx.attributes.bodyBytes > this.maxBodyBytes) {
      throw new GatewayError(
        GatewayErrorCode.BodyTooLarge,
        `portcullis: the request body (${ctx.attributes.bodyBytes} bytes) exceeds edge.maxRequestBodyBytes (${this.maxBodyBytes})`,
      );
    }
  }

  /**
   * Verifies the bearer token for the connection. A token's first use at this edge is announced as
   * identity.authenticated (a verifier cache miss, so the hot path emits nothing); every refused
   * token as identity.rejected. Both best effort: request.received/rejected carry the outcome too.
   */
  private async authenticate(ctx: EdgeRequest): Promise<void> {
    const auth = headerValue(ctx.req.headers['authorization']);
    const token = /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1];
    if (token === undefined) throw this.noBearerToken(ctx, auth);
    try {
      const verified = await this.deps.verifier.authenticate(token, ctx.connection.name);
      if (verified.first) this.deps.audit.recordLater(this.events.identityAuthenticated(ctx, verified));
      ctx.identity = verified.identity;
      ctx.claimsJson = verified.claimsJson;
    } catch (cause) {
      throw this.tokenRefused(ctx, token, cause);
    }
  }

  private noBearerToken(ctx: EdgeRequest, auth: string): GatewayError {
    const message =
      auth === ''
        ? 'portcullis: no bearer token (Authorization: Bearer <short-lived OIDC token>)'
        : 'portcullis: the Authorization header is not a bearer token';
    const reason = auth === '' ? TokenErrorCode.Missing : TokenErrorCode.Malformed;
    this.deps.audit.recordLater(this.events.identityRejected(ctx, { reason, message, status: 401, issuer: '', tokenHash: '' }));
    return new GatewayError(GatewayErrorCode.Unauthenticated, message);
  }

  private tokenRefused(ctx: EdgeRequest, token: string, cause: unknown): GatewayError {
    const unavailable = cause instanceof TokenError && cause.code === TokenErrorCode.Unavailable;
    const gw = unavailable
      ? new GatewayError(GatewayErrorCode.IdentityUnavailable, `portcullis: cannot verify tokens right now: ${cause.message}`, { cause })
      : new GatewayError(
          GatewayErrorCode.Unauthenticated,
          `portcullis: unauthorized: ${cause instanceof TokenError ? cause.message : 'the token could not be verified'}`,
          { cause },
        );
    let issuer = '';
    try {
      issuer = (unverifiedIssuer(token) ?? '').slice(0, 256);
    } catch {
      // Not decodable: no issuer to report.
    }
    const reason = cause instanceof TokenError ? cause.code : TokenErrorCode.BadSignature;
    this.deps.audit.recordLater(this.events.identityRejected(ctx, { reason, message: gw.message, status: gw.httpStatus, issuer, tokenHash: tokenHash(token) }));
    return gw;
  }

  /**
   * What the request asks for, as its protocol reads the upstream path and query; what is sent
   * upstream is the canonical form of the path it read (and the query as received), never the raw path.
   */
  private route(ctx: EdgeRequest): void {
    const path = ctx.route.upstreamPath;
    const q = path.indexOf('?');
    const query = q === -1 ? '' : path.slice(q + 1);
    const canonical = ctx.protocol.readAttributes(ctx.attributes, q === -1 ? path : path.slice(0, q), new URLSearchParams(query));
    ctx.query = query;
    ctx.upstreamTarget = q === -1 ? canonical : `${canonical}?${query}`;
  }

  /** The audit log did not acknowledge the request: 503, nothing forwarded. */
  private auditFailed(ctx: EdgeRequest, err: unknown): void {
    this.deps.metrics?.auditPublishFailures.inc(['request']);
    this.outcomes.count(ctx, ctx.connection.name, RequestOutcome.AuditUnavailable);
    ctx.fail(err);
  }

  /** deny, or require_approval on an edge without approvals: 403, recorded as completed, nothing forwarded. */
  private refuseByDecision(ctx: EdgeRequest, effect: Effect): void {
    const err =
      effect === Effect.Deny
        ? new GatewayError(GatewayErrorCode.Denied, denyMessage(ctx.decision, ctx.protocol.describe(ctx.attributes), ctx.identity!))
        : new GatewayError(GatewayErrorCode.ApprovalRequired, approvalsOffMessage(ctx.decision));
    ctx.fail(err);
    ctx.complete(ctx.res.statusCode, '', false);
  }
}
