import type { IncomingMessage, ServerResponse } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  buildEvent,
  create,
  Effect,
  effectOf,
  EventType,
  HttpAttributesSchema,
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
} from '../../contracts/src/index.js';
import { assertCleanPath, failureStatus, parseKubeRequest, RequestPathError, type KubeStatus } from '../../kube/src/index.js';
import { TokenError, TokenErrorCode, type TokenVerifier } from '../../identity/src/index.js';
import type { Logger } from '../../common/src/index.js';
import { endSpan, RequestOutcome, runInSpan, SpanKind, startSpan, type PortcullisMetrics } from '../../observability/src/index.js';
import type { AuditPublisher } from './audit-publisher.js';
import type { ConnectionRegistry, UpstreamConnection } from './connection-registry.js';
import type { DecisionClient } from './decision-client.js';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './header-hygiene.js';

/** What the pipeline needs; every piece is a port or a pure helper. */
export interface EdgePipelineDeps {
  nodeId: string;
  connections: ConnectionRegistry;
  verifier: TokenVerifier;
  decisions: DecisionClient;
  audit: AuditPublisher;
  logger: Logger;
  upstreamTimeoutMs: number;
  /** Request, decision, audit and upstream metrics (absent in unit tests). */
  metrics?: PortcullisMetrics['edge'];
}

/** The response header carrying the request's event id. */
export const AUDIT_ID_HEADER = 'Audit-Id';

const NO_CONNECTION = '_none';

/**
 * The edge's request path for `/k8s/<connection>/…` and `/http/<connection>/…`: authenticate,
 * parse, decide, record (acked), forward with the gateway's credential, stream back, record the
 * completion. Every refusal is answered before anything reaches the upstream.
 */
export class EdgePipeline {
  constructor(private readonly deps: EdgePipelineDeps) {}

  /** Handles one request whose path starts with /k8s/ or /http/. */
  handle(req: IncomingMessage, res: ServerResponse, kind: 'kubernetes' | 'http'): Promise<void> {
    const requestId = newEventId();
    // One trace per request (when tracing is on): the span ends when the response does.
    const span = startSpan('edge request', { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method ?? '', 'portcullis.audit_id': requestId } });
    if (span !== undefined) res.once('close', () => endSpan(span, undefined, { 'http.response.status_code': res.statusCode }));
    return runInSpan(span, requestId, () => this.serve(req, res, kind, requestId));
  }

  private async serve(req: IncomingMessage, res: ServerResponse, kind: 'kubernetes' | 'http', requestId: string): Promise<void> {
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
      identity = await this.authenticate(req);
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
    try {
      decision = await this.deps.decisions.decide(requestId, identity, attributes);
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
      create(RequestDecidedSchema, { decision, decisionLatencyUs: Math.round((performance.now() - decideStart) * 1000) }),
      { correlationId: requestId, causationId: requestId, nodeId: this.deps.nodeId, connection: connection.name },
    );
    try {
      await this.deps.audit.record(received, decided);
    } catch (err) {
      this.deps.metrics?.auditPublishFailures.inc(['request']);
      this.count(attributes, connection.name, RequestOutcome.AuditUnavailable);
      this.answerError(res, kind, err, requestId);
      return;
    }

    const effect = effectOf(decision);
    this.count(attributes, connection.name, effect);
    if (effect !== Effect.Allow) {
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
    this.forward(req, res, kind, connection, upstreamPath, identity, requestId, decided.id, started);
  }

  private async authenticate(req: IncomingMessage): Promise<Identity> {
    const auth = headerValue(req.headers['authorization']);
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (!m) {
      throw new GatewayError(
        GatewayErrorCode.Unauthenticated,
        auth === '' ? 'portcullis: no bearer token (Authorization: Bearer <short-lived OIDC token>)' : 'portcullis: the Authorization header is not a bearer token',
      );
    }
    try {
      return await this.deps.verifier.verify(m[1]!);
    } catch (cause) {
      if (cause instanceof TokenError && cause.code === TokenErrorCode.Unavailable) {
        throw new GatewayError(GatewayErrorCode.IdentityUnavailable, `portcullis: cannot verify tokens right now: ${cause.message}`, { cause });
      }
      const why = cause instanceof TokenError ? cause.message : 'the token could not be verified';
      throw new GatewayError(GatewayErrorCode.Unauthenticated, `portcullis: unauthorized: ${why}`, { cause });
    }
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
        ? failureStatus(gw.httpStatus, message)
        : { error: gw.code, message, auditId: requestId };
    const text = JSON.stringify(body);
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    };
    if (gw.httpStatus === 401) headers['www-authenticate'] = 'Bearer realm="portcullis"';
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
  ): void {
    const headers = upstreamRequestHeaders(req.headers);
    headers['host'] = connection.url.host;
    const credential = connection.credential();
    if (credential !== undefined) headers['authorization'] = `Bearer ${credential}`;
    if (connection.impersonate) {
      headers['impersonate-user'] = `${connection.impersonationPrefix}${identity.subject}`;
      if (identity.groups.length > 0) headers['impersonate-group'] = identity.groups.map((g) => `${connection.impersonationPrefix}${g}`);
      headers['impersonate-extra-portcullis.dev%2faudit-id'] = requestId;
      if (identity.clientId) headers['impersonate-extra-portcullis.dev%2fclient-id'] = identity.clientId;
    }
    const basePath = connection.url.pathname.replace(/\/$/, '');
    const requestFn = connection.url.protocol === 'https:' ? httpsRequest : httpRequest;
    let bytesIn = 0;
    let bytesOut = 0;
    let finished = false;
    const finish = (status: number, error: string, forwarded: boolean): void => {
      if (finished) return;
      finished = true;
      endSpan(upstreamSpan, error, { 'http.response.status_code': status });
      this.complete(connection, requestId, decisionId, status, bytesIn, bytesOut, started, error, forwarded);
    };
    const upstreamSpan = startSpan(`upstream ${connection.name}`, { kind: SpanKind.CLIENT, attributes: { 'http.request.method': req.method ?? '', 'portcullis.connection': connection.name } });
    const upstreamStart = performance.now();
    const upstream = requestFn({
      protocol: connection.url.protocol,
      hostname: connection.url.hostname,
      port: connection.url.port,
      method: req.method,
      path: basePath + upstreamPath,
      headers,
      agent: connection.agent,
    });
    const headerTimer = setTimeout(() => {
      upstream.destroy(new GatewayError(GatewayErrorCode.UpstreamTimeout, `portcullis: the upstream did not answer within ${Math.round(this.deps.upstreamTimeoutMs / 1000)}s`));
    }, this.deps.upstreamTimeoutMs);
    headerTimer.unref();

    upstream.on('response', (up) => {
      clearTimeout(headerTimer);
      this.deps.metrics?.upstreamDuration.observe([connection.name], (performance.now() - upstreamStart) / 1000);
      const outHeaders = clientResponseHeaders(up.headers);
      outHeaders[AUDIT_ID_HEADER.toLowerCase()] = requestId;
      res.writeHead(up.statusCode ?? 502, outHeaders);
      // Stream with back-pressure: pause the upstream while the client is slow.
      up.on('data', (chunk: Buffer) => {
        bytesOut += chunk.length;
        if (!res.write(chunk)) up.pause();
      });
      res.on('drain', () => up.resume());
      up.on('end', () => {
        res.end();
      });
      up.on('error', (err) => {
        this.deps.metrics?.upstreamErrors.inc([connection.name, 'aborted']);
        finish(up.statusCode ?? 502, `upstream response aborted: ${err.message}`, true);
        res.destroy();
      });
      res.on('finish', () => finish(up.statusCode ?? 502, '', true));
    });
    upstream.on('error', (err) => {
      clearTimeout(headerTimer);
      const timedOut = err instanceof GatewayError && err.code === GatewayErrorCode.UpstreamTimeout;
      this.deps.metrics?.upstreamErrors.inc([connection.name, timedOut ? 'timeout' : res.headersSent ? 'aborted' : 'unreachable']);
      if (res.headersSent) {
        finish(res.statusCode, `upstream failed mid-response: ${err.message}`, true);
        res.destroy();
        return;
      }
      const gw =
        err instanceof GatewayError
          ? err
          : new GatewayError(GatewayErrorCode.UpstreamUnreachable, `portcullis: upstream ${connection.name} unreachable (${(err as NodeJS.ErrnoException).code ?? err.message})`, { cause: err });
      this.answerError(res, kind, gw, requestId);
      finish(gw.httpStatus, gw.message, false);
    });
    // A client that goes away cancels the upstream request (watches, logs -f).
    res.on('close', () => {
      if (!res.writableFinished) {
        upstream.destroy();
        finish(res.statusCode, 'client disconnected', true);
      }
    });
    req.on('data', (chunk: Buffer) => {
      bytesIn += chunk.length;
      if (!upstream.write(chunk)) req.pause();
    });
    upstream.on('drain', () => req.resume());
    req.on('end', () => upstream.end());
    req.on('error', () => upstream.destroy());
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
      }),
      { correlationId: requestId, causationId, nodeId: this.deps.nodeId, connection: connection.name },
    );
    this.deps.audit.recordLater(event);
  }
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
