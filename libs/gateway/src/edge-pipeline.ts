import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import {
  buildEvent,
  create,
  Effect,
  effectOf,
  EventType,
  HttpAttributesSchema,
  IdentityAuthenticatedSchema,
  IdentityRejectedSchema,
  KubeAttributesSchema,
  newEventId,
  RequestAttributesSchema,
  RequestCompletedSchema,
  RequestDecidedSchema,
  RequestReceivedSchema,
  RequestRejectedSchema,
  type Decision,
  type EventEnvelope,
  type Identity,
  type RequestAttributes,
} from '@portcullis/contracts';
import { assertCleanPath, failureStatus, parseKubeRequest, RequestPathError, type KubeStatus } from '@portcullis/kube';
import { TokenError, TokenErrorCode, tokenHash, unverifiedIssuer, type TokenVerifier } from '@portcullis/identity';
import type { Logger } from '@portcullis/common';
import { endSpan, RequestOutcome, runInSpan, SpanKind, startSpan, type PortcullisMetrics } from '@portcullis/observability';
import type { AuditPublisher } from './audit-publisher.js';
import type { ConnectionRegistry, UpstreamConnection } from './connection-registry.js';
import type { DecisionClient } from './decision-client.js';
import { APPROVAL_HEADER, ApprovalGate } from './approval-gate.js';
// The pure entry point: the approval library's index also loads Redis and BullMQ.
import { bodyExcerpt, bodySha256, requestFingerprint } from '@portcullis/approval/pure';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';
import { clientResponseHeaders } from './header-hygiene.js';
import { gatewayRequestHeaders } from './upstream-headers.js';
import { UpgradeForwarder, type UpgradeSocket } from './upgrade-forwarder.js';
import type { SessionRecordingOptions } from './session-recorder.js';
import {
  auditRequestBody,
  defaultEdgeMasking,
  maskTargetFor,
  pipeMaskedResponse,
  planMasking,
  requestBodyRecorder,
  rewriteAcceptForMasking,
  type EdgeMasking,
  type ExchangeBodies,
  type MaskPlan,
  type UpstreamResponse,
} from './response-masking.js';

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
}

/** Session recording limits used when the config says nothing. */
export const DEFAULT_SESSION_RECORDING: SessionRecordingOptions = { maxBytes: 1024 * 1024, flushIntervalMs: 200, flushBytes: 64 * 1024 };

/** The response header carrying the request's event id. */
export const AUDIT_ID_HEADER = 'Audit-Id';

const NO_CONNECTION = '_none';

/**
 * The edge's request path for `/k8s/<connection>/…` and `/http/<connection>/…`: authenticate,
 * parse, decide, record (acked), forward with the gateway's credential, stream back, record the
 * completion. Every refusal is answered before anything reaches the upstream.
 */
export class EdgePipeline {
  private readonly upgrades: UpgradeForwarder;
  private readonly masking: EdgeMasking;
  private readonly maxBodyBytes: number;

  constructor(private readonly deps: EdgePipelineDeps) {
    this.masking = deps.masking ?? defaultEdgeMasking();
    this.maxBodyBytes = deps.maxRequestBodyBytes ?? 16 * 1024 * 1024;
    this.upgrades = new UpgradeForwarder({
      nodeId: deps.nodeId,
      audit: deps.audit,
      logger: deps.logger,
      upstreamTimeoutMs: deps.upstreamTimeoutMs,
      recording: deps.sessionRecording ?? DEFAULT_SESSION_RECORDING,
    });
  }

  /**
   * Handles one request whose path starts with /k8s/ or /http/. An upgrade request (WebSocket,
   * SPDY) passes `upgrade` (its socket, `res` writing onto it) and takes exactly the same steps.
   */
  handle(req: IncomingMessage, res: ServerResponse, kind: 'kubernetes' | 'http', upgrade?: UpgradeSocket): Promise<void> {
    const requestId = newEventId();
    // One trace per request (when tracing is on): the span ends when the response does.
    const span = startSpan('edge request', { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method ?? '', 'portcullis.audit_id': requestId } });
    if (span !== undefined) res.once('close', () => endSpan(span, undefined, { 'http.response.status_code': res.statusCode }));
    return runInSpan(span, requestId, () => this.serve(req, res, kind, requestId, upgrade));
  }

  private async serve(req: IncomingMessage, res: ServerResponse, kind: 'kubernetes' | 'http', requestId: string, upgrade?: UpgradeSocket): Promise<void> {
    const started = performance.now();
    res.setHeader(AUDIT_ID_HEADER, requestId);
    const rawUrl = req.url ?? '/';
    const prefixLen = kind === 'kubernetes' ? 5 : 6; // "/k8s/" | "/http/"
    const afterPrefix = rawUrl.slice(prefixLen);
    const slash = afterPrefix.search(/[/?]/);
    const connectionName = slash === -1 ? afterPrefix : afterPrefix.slice(0, slash);
    let upstreamPath = slash === -1 ? '/' : afterPrefix.slice(slash);
    if (upstreamPath.startsWith('?')) upstreamPath = `/${upstreamPath}`;

    const attributes = create(RequestAttributesSchema, {
      connection: connectionName,
      connectionType: kind,
      method: req.method ?? 'GET',
      sourceIp: req.socket.remoteAddress ?? '',
      userAgent: headerValue(req.headers['user-agent']).slice(0, 256),
      bodyBytes: Number(req.headers['content-length'] ?? 0) || 0,
    });
    let identity: Identity | undefined;
    let claimsJson = '';
    const connection = this.deps.connections.get(connectionName);
    try {
      if (connection === undefined || connection.type !== kind) {
        throw new GatewayError(GatewayErrorCode.UnknownConnection, `no ${kind} connection named ${JSON.stringify(connectionName.slice(0, 64))}`);
      }
      try {
        assertCleanPath(upstreamPath);
      } catch (cause) {
        throw new GatewayError(GatewayErrorCode.BadPath, (cause as Error).message, { cause });
      }
      // A declared body over the limit is refused before anything else looks at the request.
      if (attributes.bodyBytes > this.maxBodyBytes) {
        throw new GatewayError(GatewayErrorCode.BodyTooLarge, `portcullis: the request body (${attributes.bodyBytes} bytes) exceeds edge.maxRequestBodyBytes (${this.maxBodyBytes})`);
      }
      ({ identity, claimsJson } = await this.authenticate(req, connection.name, requestId));
      const q = upstreamPath.indexOf('?');
      const pathOnly = q === -1 ? upstreamPath : upstreamPath.slice(0, q);
      const query = new URLSearchParams(q === -1 ? '' : upstreamPath.slice(q + 1));
      if (kind === 'kubernetes') {
        try {
          attributes.kube = parseKubeRequest(attributes.method, pathOnly, query);
        } catch (cause) {
          if (cause instanceof RequestPathError) throw new GatewayError(GatewayErrorCode.BadPath, cause.message, { cause });
          throw cause;
        }
      } else {
        attributes.http = create(HttpAttributesSchema, { method: attributes.method, path: pathOnly, query: query.toString() });
        attributes.kube = create(KubeAttributesSchema, {});
      }
    } catch (err) {
      this.refuse(res, kind, requestId, err, attributes, identity);
      return;
    }

    const decideStart = performance.now();
    let decision: Decision;
    let cached: boolean;
    try {
      ({ decision, cached } = await this.deps.decisions.decide(requestId, identity, attributes, claimsJson));
    } catch (err) {
      this.deps.metrics?.decisionDuration.observe([], (performance.now() - decideStart) / 1000);
      this.refuse(res, kind, requestId, err, attributes, identity);
      return;
    }
    this.deps.metrics?.decisionDuration.observe([], (performance.now() - decideStart) / 1000);
    const received = buildEvent(EventType.RequestReceived, create(RequestReceivedSchema, { identity, attributes }), {
      id: requestId,
      correlationId: requestId,
      nodeId: this.deps.nodeId,
      connection: connection.name,
    });
    const decided = buildEvent(
      EventType.RequestDecided,
      create(RequestDecidedSchema, { decision, cached, decisionLatencyUs: Math.round((performance.now() - decideStart) * 1000) }),
      { correlationId: requestId, causationId: requestId, nodeId: this.deps.nodeId, connection: connection.name },
    );
    const auditStart = performance.now();
    try {
      await this.deps.audit.record(received, decided);
      this.deps.metrics?.auditAckDuration.observe([], (performance.now() - auditStart) / 1000);
    } catch (err) {
      this.deps.metrics?.auditPublishFailures.inc(['request']);
      this.count(attributes, connection.name, RequestOutcome.AuditUnavailable);
      this.answerError(res, kind, err, requestId);
      return;
    }

    const effect = effectOf(decision);
    this.count(attributes, connection.name, effect);
    let heldBody: Buffer | undefined;
    if (effect === Effect.RequireApproval && this.deps.approvals !== undefined) {
      // Held until a human decides; undefined means the answer (denied, pending, gone) was given.
      heldBody = await this.holdForApproval(req, res, kind, connection, upstreamPath, identity, attributes, decision, requestId, decided.id, started, upgrade !== undefined);
      if (heldBody === undefined) return;
    } else if (effect !== Effect.Allow) {
      const err =
        effect === Effect.Deny
          ? new GatewayError(GatewayErrorCode.Denied, denyMessage(decision, attributes, identity))
          : new GatewayError(
              GatewayErrorCode.ApprovalRequired,
              `portcullis: this request requires approval by rule ${decision.ruleId} (policy ${decision.policyVersion}); approvals are not enabled on this gateway yet`,
            );
      this.answerError(res, kind, err, requestId);
      this.complete(connection, requestId, decided.id, res.statusCode, 0, 0, started, '', false);
      return;
    }
    if (upgrade !== undefined) {
      const complete = (status: number, bytesIn: number, bytesOut: number, error: string, forwarded: boolean): void =>
        this.complete(connection, requestId, decided.id, status, bytesIn, bytesOut, started, error, forwarded);
      this.upgrades.forward({
        req,
        res,
        upgrade,
        connection,
        upstreamPath,
        headers: gatewayRequestHeaders(req.headers, connection, identity, requestId),
        attributes,
        requestId,
        causationId: decided.id,
        answerError: (err) => this.answerError(res, kind, err, requestId),
        complete,
      });
      return;
    }
    this.forward(req, res, kind, connection, upstreamPath, identity, requestId, decided.id, started, decision, attributes, heldBody);
  }

  /**
   * require_approval: buffer the body (bounded), bind an approval to the request's fingerprint,
   * hold the request until it is decided, then forward the buffered body or answer why not.
   */
  private async holdForApproval(
    req: IncomingMessage,
    res: ServerResponse,
    kind: 'kubernetes' | 'http',
    connection: UpstreamConnection,
    upstreamPath: string,
    identity: Identity,
    attributes: RequestAttributes,
    decision: Decision,
    requestId: string,
    decisionId: string,
    started: number,
    isUpgrade: boolean,
  ): Promise<Buffer | undefined> {
    const gate = this.deps.approvals!;
    const clientGone = new AbortController();
    const onClose = (): void => {
      if (!res.writableFinished) clientGone.abort();
    };
    res.on('close', onClose);
    let body: Buffer;
    try {
      const approvalId = ApprovalGate.approvalIdFrom(req.headers[APPROVAL_HEADER]);
      // An upgrade request (exec, attach, port-forward) has no body to bind: its stream starts after the 101.
      body = isUpgrade ? Buffer.alloc(0) : await readBody(req, this.maxBodyBytes);
      const q = upstreamPath.indexOf('?');
      const hash = bodySha256(body);
      await gate.hold(
        {
          requestId,
          identity,
          attributes,
          decision,
          fingerprint: requestFingerprint(identity, attributes, q === -1 ? '' : upstreamPath.slice(q + 1), hash),
          bodySha256: hash,
          bodyExcerpt: bodyExcerpt(body, attributes.kube?.resource ?? '', headerValue(req.headers['content-type'])),
          approvalId,
        },
        clientGone.signal,
      );
    } catch (err) {
      res.off('close', onClose);
      if (clientGone.signal.aborted) {
        this.complete(connection, requestId, decisionId, 499, 0, 0, started, 'client disconnected while held for approval', false);
        return;
      }
      const gw = this.answerError(res, kind, err, requestId);
      // Approval answers (pending, denied) are outcomes, not failures; an oversized body is a failure and says so.
      this.complete(connection, requestId, decisionId, res.statusCode, 0, 0, started, gw.code === GatewayErrorCode.BodyTooLarge ? gw.message : '', false);
      return;
    }
    res.off('close', onClose);
    return body;
  }

  /**
   * Verifies the bearer token for `connection`. A token's first use at this edge is announced as
   * identity.authenticated (a verifier cache miss, so the hot path emits nothing); every refused
   * token as identity.rejected. Both best effort: request.received/rejected carry the outcome too.
   */
  private async authenticate(req: IncomingMessage, connection: string, requestId: string): Promise<{ identity: Identity; claimsJson: string }> {
    const auth = headerValue(req.headers['authorization']);
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    const token = m?.[1];
    if (token === undefined) {
      const message =
        auth === '' ? 'portcullis: no bearer token (Authorization: Bearer <short-lived OIDC token>)' : 'portcullis: the Authorization header is not a bearer token';
      this.identityRejected(connection, requestId, auth === '' ? TokenErrorCode.Missing : TokenErrorCode.Malformed, message, 401, '', '');
      throw new GatewayError(GatewayErrorCode.Unauthenticated, message);
    }
    try {
      const verified = await this.deps.verifier.authenticate(token, connection);
      if (verified.first) {
        const event = buildEvent(
          EventType.IdentityAuthenticated,
          create(IdentityAuthenticatedSchema, { identity: verified.identity, expiresAtMs: verified.expiresAtMs }),
          { correlationId: requestId, causationId: requestId, nodeId: this.deps.nodeId, connection },
        );
        this.deps.audit.recordLater(event);
      }
      return { identity: verified.identity, claimsJson: verified.claimsJson };
    } catch (cause) {
      const unavailable = cause instanceof TokenError && cause.code === TokenErrorCode.Unavailable;
      const gw = unavailable
        ? new GatewayError(GatewayErrorCode.IdentityUnavailable, `portcullis: cannot verify tokens right now: ${cause.message}`, { cause })
        : new GatewayError(GatewayErrorCode.Unauthenticated, `portcullis: unauthorized: ${cause instanceof TokenError ? cause.message : 'the token could not be verified'}`, { cause });
      let issuer = '';
      try {
        issuer = (unverifiedIssuer(token) ?? '').slice(0, 256);
      } catch {
        // Not decodable: no issuer to report.
      }
      const reason = cause instanceof TokenError ? cause.code : TokenErrorCode.BadSignature;
      this.identityRejected(connection, requestId, reason, gw.message, gw.httpStatus, issuer, tokenHash(token));
      throw gw;
    }
  }

  private identityRejected(connection: string, requestId: string, reason: string, message: string, status: number, issuer: string, hash: string): void {
    const event = buildEvent(
      EventType.IdentityRejected,
      create(IdentityRejectedSchema, { reason, issuer, message, tokenHash: hash, status }),
      { correlationId: requestId, causationId: requestId, nodeId: this.deps.nodeId, connection },
    );
    this.deps.audit.recordLater(event);
  }

  /** A refusal before any decision: answered, and recorded as request.rejected (best effort). */
  private refuse(
    res: ServerResponse,
    kind: 'kubernetes' | 'http',
    requestId: string,
    err: unknown,
    attributes: RequestAttributes,
    identity: Identity | undefined,
  ): void {
    const gw = this.answerError(res, kind, err, requestId);
    const connection = this.deps.connections.get(attributes.connection) ? attributes.connection : NO_CONNECTION;
    this.count(attributes, connection, RequestOutcome.Rejected);
    const event = buildEvent(
      EventType.RequestRejected,
      create(RequestRejectedSchema, {
        status: gw.httpStatus,
        reason: gw.code,
        message: gw.message,
        attributes,
        ...(identity ? { identity } : {}),
      }),
      { id: requestId, correlationId: requestId, nodeId: this.deps.nodeId, connection },
    );
    this.deps.audit.recordLater(event);
  }

  /** Counts one answered request; labels are bounded (known connections, parsed verbs, outcomes). */
  private count(attributes: RequestAttributes, connection: string, outcome: RequestOutcome): void {
    const m = this.deps.metrics;
    if (m === undefined) return;
    const verb = attributes.kube?.verb || attributes.method.toLowerCase();
    m.requests.inc([connection, verb, outcome]);
  }

  /** Writes a GatewayError as a Kubernetes Status (k8s) or JSON error (http). */
  private answerError(res: ServerResponse, kind: 'kubernetes' | 'http', err: unknown, requestId: string): GatewayError {
    const gw =
      err instanceof GatewayError
        ? err
        : new GatewayError(GatewayErrorCode.DecisionUnavailable, 'portcullis: internal error', { cause: err });
    if (!(err instanceof GatewayError) || gw.httpStatus >= 500) {
      this.deps.logger.warn('request failed', { auditId: requestId, code: gw.code, err: gw.cause ?? gw });
    }
    if (res.headersSent) {
      res.destroy();
      return gw;
    }
    const message = gw.message.startsWith('portcullis:') ? gw.message : `portcullis: ${gw.message}`;
    const body: KubeStatus | { error: string; message: string; auditId: string } =
      kind === 'kubernetes'
        ? failureStatus(gw.httpStatus, message, gw.details)
        : { error: gw.code, message, auditId: requestId };
    const text = JSON.stringify(body);
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    };
    if (gw.httpStatus === 401) headers['www-authenticate'] = 'Bearer realm="portcullis"';
    // A refused body is not read: close rather than leave the client's bytes to be parsed as the next request.
    if (gw.httpStatus === 413) headers['connection'] = 'close';
    // No Retry-After on 503: client-go would silently retry up to ten times and hide the outage.
    res.writeHead(gw.httpStatus, headers);
    res.end(text);
    return gw;
  }

  private forward(
    req: IncomingMessage,
    res: ServerResponse,
    kind: 'kubernetes' | 'http',
    connection: UpstreamConnection,
    upstreamPath: string,
    identity: Identity,
    requestId: string,
    decisionId: string,
    started: number,
    decision: Decision,
    attributes: RequestAttributes,
    body?: Buffer,
  ): void {
    let plan: MaskPlan | undefined;
    if (decision.maskProfile !== '') {
      try {
        plan = planMasking(this.masking, decision.maskProfile, kind, attributes);
      } catch (err) {
        const gw = this.answerError(res, kind, err, requestId);
        this.complete(connection, requestId, decisionId, gw.httpStatus, 0, 0, started, gw.message, false);
        return;
      }
    }
    const headers = gatewayRequestHeaders(req.headers, connection, identity, requestId);
    if (body !== undefined) {
      // The body was buffered while the request was held: send it with its exact length.
      delete headers['transfer-encoding'];
      headers['content-length'] = String(body.length);
    }
    if (plan !== undefined) rewriteAcceptForMasking(headers);
    const recorder = requestBodyRecorder(req, this.masking);
    if (body !== undefined) recorder?.add(body);
    let bytesIn = 0;
    let bytesOut = 0;
    let finished = false;
    let bodyRefused = false;
    const finish = (status: number, error: string, forwarded: boolean, response?: ExchangeBodies['responseBody'], maskedFields = 0): void => {
      if (finished) return;
      finished = true;
      const bodies: ExchangeBodies | undefined =
        recorder === undefined && plan === undefined
          ? undefined
          : {
              ...(recorder !== undefined ? { requestBody: auditRequestBody(recorder, req, this.masking, plan, maskTargetFor(kind, attributes)) } : {}),
              ...(response !== undefined ? { responseBody: response } : {}),
              maskedFields,
              maskProfile: plan?.profile.name ?? '',
            };
      endSpan(upstreamSpan, error, { 'http.response.status_code': status });
      this.complete(connection, requestId, decisionId, status, bytesIn, bytesOut, started, error, forwarded, bodies);
    };
    const upstreamSpan = startSpan(`upstream ${connection.name}`, { kind: SpanKind.CLIENT, attributes: { 'http.request.method': req.method ?? '', 'portcullis.connection': connection.name } });
    const upstreamStart = performance.now();
    const abort = new AbortController();
    const headerTimer = setTimeout(() => {
      abort.abort(new GatewayError(GatewayErrorCode.UpstreamTimeout, `portcullis: the upstream did not answer within ${Math.round(this.deps.upstreamTimeoutMs / 1000)}s`));
    }, this.deps.upstreamTimeoutMs);
    headerTimer.unref();

    // A declared Content-Length over the cap was refused before the decision; a chunked body is
    // counted as it streams, and the chunk that would cross the cap is never sent upstream.
    const refuseBody = (): void => {
      bodyRefused = true;
      clearTimeout(headerTimer);
      this.deps.metrics?.upstreamErrors.inc([connection.name, 'body_too_large']);
      const gw = new GatewayError(
        GatewayErrorCode.BodyTooLarge,
        `portcullis: the request body exceeds edge.maxRequestBodyBytes (${this.maxBodyBytes} bytes); the upstream request was aborted`,
      );
      // Recorded first: a response already streaming is cut below and must not record itself as a
      // success; its status is the one the client saw before the cut.
      finish(res.headersSent ? res.statusCode : gw.httpStatus, gw.message, true);
      // answerError destroys the client socket when the response has already started.
      this.answerError(res, kind, gw, requestId);
      // Drain what the client still sends so it can read the 413; the socket closes after it (Connection: close).
      req.resume();
    };
    let requestBody: Buffer | Readable | undefined;
    if (body !== undefined) {
      bytesIn = body.length;
      requestBody = body;
    } else if (hasRequestBody(req)) {
      const maxBytes = this.maxBodyBytes;
      const counted = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          if (bytesIn + chunk.length > maxBytes) {
            req.unpipe(counted);
            refuseBody();
            // Failing the body stream makes undici abort the request mid-body: the upstream sees an
            // aborted request, never a complete truncated one.
            done(new GatewayError(GatewayErrorCode.BodyTooLarge, 'request body over the cap'));
            return;
          }
          bytesIn += chunk.length;
          recorder?.add(chunk);
          done(null, chunk);
        },
      });
      req.pipe(counted);
      req.on('error', (err) => counted.destroy(err));
      counted.on('error', ignoreError); // undici reports it on the request too
      requestBody = counted;
    } else {
      // No body: whatever the client still sends (nothing, for a GET) is read and dropped.
      req.resume();
    }
    // A client that goes away cancels the upstream request (watches, logs -f).
    res.on('close', () => {
      if (!res.writableFinished) {
        abort.abort();
        finish(res.statusCode, 'client disconnected', true);
      }
    });

    connection.pool
      .request({
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        path: connection.basePath + upstreamPath,
        headers: headers as Record<string, string | string[]>,
        body: requestBody ?? null,
        signal: abort.signal,
      })
      .then(
        (up) => {
          clearTimeout(headerTimer);
          // Aborting (client gone, body refused) errors the body stream: the paths below that care
          // listen for it; this keeps an abort nobody waits for from becoming an uncaught error.
          up.body.on('error', ignoreError);
          this.deps.metrics?.upstreamDuration.observe([connection.name], (performance.now() - upstreamStart) / 1000);
          if (finished) {
            // Answered already (body refused, client gone): drop the response.
            up.body.destroy();
            return;
          }
          const response: UpstreamResponse = { statusCode: up.statusCode, headers: up.headers, body: up.body };
          if (plan !== undefined) {
            pipeMaskedResponse(response, res, attributes.method, plan, this.masking, AUDIT_ID_HEADER, requestId, {
              refuse: (err) => this.answerError(res, kind, err, requestId),
              finish: (status, error, sent, masked, maskedFields) => {
                bytesOut = sent;
                finish(status, error, true, masked, maskedFields);
              },
            });
            return;
          }
          const outHeaders = clientResponseHeaders(response.headers);
          outHeaders[AUDIT_ID_HEADER.toLowerCase()] = requestId;
          res.writeHead(up.statusCode, outHeaders);
          // A stream (no length: watch, logs -f) may not send a body byte for a long time, so its
          // headers go out at once; a sized response sends them with its body, in one TLS record.
          if (response.headers['content-length'] === undefined) res.flushHeaders();
          // Stream with back-pressure: pause the upstream while the client is slow.
          up.body.on('data', (chunk: Buffer) => {
            bytesOut += chunk.length;
            if (!res.write(chunk)) up.body.pause();
          });
          res.on('drain', () => up.body.resume());
          up.body.on('end', () => {
            res.end();
          });
          up.body.on('error', (err) => {
            if (finished) return; // the edge cut it (client gone, body refused)
            this.deps.metrics?.upstreamErrors.inc([connection.name, 'aborted']);
            finish(up.statusCode, `upstream response aborted: ${err.message}`, true);
            res.destroy();
          });
          res.on('finish', () => finish(up.statusCode, '', true));
        },
        (err: unknown) => {
          clearTimeout(headerTimer);
          // The edge cut the upstream request itself (body over the cap, client gone): already answered and recorded.
          if (bodyRefused || finished) return;
          const cause = abort.signal.aborted && abort.signal.reason instanceof GatewayError ? abort.signal.reason : err;
          const timedOut = cause instanceof GatewayError && cause.code === GatewayErrorCode.UpstreamTimeout;
          this.deps.metrics?.upstreamErrors.inc([connection.name, timedOut ? 'timeout' : res.headersSent ? 'aborted' : 'unreachable']);
          if (res.headersSent) {
            finish(res.statusCode, `upstream failed mid-response: ${(cause as Error).message}`, true);
            res.destroy();
            return;
          }
          const gw =
            cause instanceof GatewayError
              ? cause
              : new GatewayError(GatewayErrorCode.UpstreamUnreachable, `portcullis: upstream ${connection.name} unreachable (${upstreamErrorCode(cause)})`, { cause });
          this.answerError(res, kind, gw, requestId);
          finish(gw.httpStatus, gw.message, false);
        },
      );
  }

  private complete(
    connection: UpstreamConnection,
    requestId: string,
    causationId: string,
    status: number,
    bytesIn: number,
    bytesOut: number,
    started: number,
    error: string,
    forwarded: boolean,
    bodies?: ExchangeBodies,
  ): void {
    const event: EventEnvelope = buildEvent(
      EventType.RequestCompleted,
      create(RequestCompletedSchema, {
        status,
        bytesIn,
        bytesOut,
        durationMs: Math.round(performance.now() - started),
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
      { correlationId: requestId, causationId, nodeId: this.deps.nodeId, connection: connection.name },
    );
    this.deps.audit.recordLater(event);
  }
}

/** For streams whose errors are reported elsewhere. */
function ignoreError(): void {}

/** Whether the client sends a body: a length above zero, or any transfer coding (chunked). */
function hasRequestBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/** The short reason an upstream could not be reached: the socket or TLS error code, else the message. */
function upstreamErrorCode(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { cause?: unknown };
  // undici wraps socket failures (UND_ERR_SOCKET, UND_ERR_CONNECT_TIMEOUT) around the system error.
  const inner = e.cause as NodeJS.ErrnoException | undefined;
  if (typeof e.code === 'string' && e.code.startsWith('UND_ERR_') && typeof inner?.code === 'string') return inner.code;
  return typeof e.code === 'string' ? e.code : e instanceof Error ? e.message : String(err);
}

/** Reads a request body up to `max` bytes; GatewayError `body_too_large` (413) above. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) {
    return Promise.reject(new GatewayError(GatewayErrorCode.BodyTooLarge, `portcullis: the request body (${declared} bytes) exceeds the ${max} bytes a held request may carry`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.resume();
        reject(new GatewayError(GatewayErrorCode.BodyTooLarge, `portcullis: the request body exceeds the ${max} bytes a held request may carry`));
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    req.once('error', reject);
  });
}

function headerValue(v: string | string[] | undefined): string {
  return Array.isArray(v) ? (v[0] ?? '') : (v ?? '');
}

function denyMessage(decision: Decision, attributes: RequestAttributes, identity: Identity): string {
  const k = attributes.kube;
  const what =
    k?.isResourceRequest === true
      ? `${k.verb} ${k.subresource ? `${k.resource}/${k.subresource}` : k.resource}${k.name ? ` ${k.name}` : ''}${k.namespace ? ` in namespace ${k.namespace}` : ''}`
      : `${attributes.method} ${k?.path || attributes.http?.path || ''}`;
  const why = decision.message ? `: ${decision.message}` : '';
  return `portcullis: ${identity.subject} may not ${what} (rule ${decision.ruleId}, policy ${decision.policyVersion})${why}`;
}
