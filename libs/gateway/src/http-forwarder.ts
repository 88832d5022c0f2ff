/**
 * Plain requests through the edge (upgrades have their own forwarder): the upstream request with
 * the gateway's credential over the connection's undici pool, the request body streamed under the
 * cap, the response streamed back with back-pressure or through the masker, the header timeout,
 * and the client leaving. Every exchange ends in exactly one request.completed (`ctx.complete`).
 */
import type { IncomingMessage } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { BodyExcerpt } from '@portcullis/masking';
import { endSpan, SpanKind, startSpan, tracingEnabled, type PortcullisMetrics } from '@portcullis/observability';
import type { EdgeRequest } from './edge-request.js';
import { AUDIT_ID_FIELD } from './edge-responses.js';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';
import { clientResponseHeaders } from './header-hygiene.js';
import {
  auditRequestBody,
  pipeMaskedResponse,
  planMasking,
  requestBodyRecorder,
  rewriteAcceptForMasking,
  type EdgeMasking,
  type ExchangeBodies,
  type MaskedResponseEnd,
} from './response-masking.js';
import { gatewayRequestHeaders } from './upstream-headers.js';

/** What the HTTP forwarder needs. */
export interface HttpForwarderDeps {
  /** How long the upstream may take to send its response headers. */
  readonly upstreamTimeoutMs: number;
  /** Largest request body; a chunked body crossing it is cut and the upstream request aborted. */
  readonly maxBodyBytes: number;
  readonly masking: EdgeMasking;
  readonly metrics?: PortcullisMetrics['edge'] | undefined;
}

/** Forwards admitted plain requests and streams their answers back. */
export class HttpForwarder {
  constructor(private readonly deps: HttpForwarderDeps) {}

  /** Sends `ctx` upstream. Nothing is sent when its masking profile is missing (500, fail closed). */
  forward(ctx: EdgeRequest): void {
    if (ctx.decision.maskProfile !== '' && !this.planMasking(ctx)) return;
    const { req, connection } = ctx;
    const headers = gatewayRequestHeaders(req.headers, connection, ctx.identity!, ctx.id);
    if (ctx.body !== undefined) {
      // The body was buffered while the request was held: send it with its exact length.
      delete headers['transfer-encoding'];
      headers['content-length'] = String(ctx.body.length);
    }
    if (ctx.plan !== undefined) rewriteAcceptForMasking(headers);
    ctx.recorder = requestBodyRecorder(req, this.deps.masking);
    if (ctx.body !== undefined) ctx.recorder?.add(ctx.body);
    if (tracingEnabled()) {
      ctx.upstreamSpan = startSpan(`upstream ${connection.name}`, {
        kind: SpanKind.CLIENT,
        attributes: { 'http.request.method': req.method ?? '', 'portcullis.connection': connection.name },
      });
    }
    ctx.upstreamStart = performance.now();
    const abort = new AbortController();
    ctx.abort = abort;
    ctx.headerTimer = setTimeout(headerTimeout, this.deps.upstreamTimeoutMs, ctx, this.deps.upstreamTimeoutMs);
    ctx.headerTimer.unref();
    const body = this.requestBody(ctx);
    // A client that goes away cancels the upstream request (watches, logs -f).
    ctx.res.on('close', () => this.clientClosed(ctx));
    connection.pool.request(
      {
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        path: connection.basePath + ctx.upstreamTarget,
        headers: headers as Record<string, string | string[]>,
        body,
        signal: abort.signal,
        opaque: ctx,
      },
      this.answered,
    );
  }

  // One callback for every upstream answer: the request travels as undici's `opaque`, so there is no closure (or promise) per request.
  private readonly answered = (err: Error | null, data: Dispatcher.ResponseData): void => {
    const ctx = data.opaque as EdgeRequest;
    clearTimeout(ctx.headerTimer);
    if (err !== null) this.upstreamFailed(ctx, err);
    else this.upstreamAnswered(ctx, data);
  };

  private readonly maskedEnd: MaskedResponseEnd<EdgeRequest> = (ctx, status, error, response, maskedFields) =>
    this.finish(ctx, status, error, true, response, maskedFields);

  /** Resolves the decision's masking profile; a missing one is answered (500) and recorded. */
  private planMasking(ctx: EdgeRequest): boolean {
    try {
      ctx.plan = planMasking(this.deps.masking, ctx.decision.maskProfile, ctx.protocol.maskTarget(ctx.attributes));
      return true;
    } catch (err) {
      const gw = ctx.fail(err);
      ctx.complete(gw.httpStatus, gw.message, false);
      return false;
    }
  }

  /** The body to send upstream: the held one, the client's counted as it streams, or none. */
  private requestBody(ctx: EdgeRequest): Buffer | Readable | null {
    const req = ctx.req;
    if (ctx.body !== undefined) {
      ctx.bytesIn = ctx.body.length;
      return ctx.body;
    }
    if (!hasRequestBody(req)) {
      // No body: whatever the client still sends (nothing, for a GET) is read and dropped.
      req.resume();
      return null;
    }
    const counted = new CountedBody(ctx, this.deps.maxBodyBytes, this.refuseBody);
    req.pipe(counted);
    req.on('error', (err) => counted.destroy(err));
    counted.on('error', ignoreError); // undici reports it on the request too
    return counted;
  }

  // A declared Content-Length over the cap was refused before the decision; a chunked body is
  // counted as it streams, and the chunk that would cross the cap is never sent upstream.
  private readonly refuseBody = (ctx: EdgeRequest): void => {
    clearTimeout(ctx.headerTimer);
    this.deps.metrics?.upstreamErrors.inc([ctx.connection.name, 'body_too_large']);
    const gw = new GatewayError(
      GatewayErrorCode.BodyTooLarge,
      `portcullis: the request body exceeds edge.maxRequestBodyBytes (${this.deps.maxBodyBytes} bytes); the upstream request was aborted`,
    );
    // Recorded first: a response already streaming is cut below and must not record itself as a
    // success; its status is the one the client saw before the cut.
    this.finish(ctx, ctx.res.headersSent ? ctx.res.statusCode : gw.httpStatus, gw.message, true);
    // Answering destroys the client socket when the response has already started.
    ctx.fail(gw);
    // Drain what the client still sends so it can read the 413; the socket closes after it (Connection: close).
    ctx.req.resume();
  };

  private upstreamAnswered(ctx: EdgeRequest, up: Dispatcher.ResponseData): void {
    // Aborting (client gone, body refused) errors the body stream: the paths below that care
    // listen for it; this keeps an abort nobody waits for from becoming an uncaught error.
    up.body.on('error', ignoreError);
    this.deps.metrics?.upstreamDuration.observe([ctx.connection.name], (performance.now() - ctx.upstreamStart) / 1000);
    if (ctx.completed) {
      // Answered already (body refused, client gone): drop the response.
      up.body.destroy();
      return;
    }
    if (ctx.plan !== undefined) pipeMaskedResponse(up, ctx, ctx.plan, this.deps.masking, this.maskedEnd);
    else this.streamResponse(ctx, up);
  }

  /** Streams the upstream's answer to the client with back-pressure: the upstream pauses while the client is slow. */
  private streamResponse(ctx: EdgeRequest, up: Dispatcher.ResponseData): void {
    const { res } = ctx;
    const body = up.body;
    const outHeaders = clientResponseHeaders(up.headers);
    outHeaders[AUDIT_ID_FIELD] = ctx.id;
    res.writeHead(up.statusCode, outHeaders);
    // A stream (no length: watch, logs -f) may not send a body byte for a long time, so its
    // headers go out at once; a sized response sends them with its body, in one TLS record.
    if (up.headers['content-length'] === undefined) res.flushHeaders();
    body.on('data', (chunk: Buffer) => {
      ctx.bytesOut += chunk.length;
      if (!res.write(chunk)) body.pause();
    });
    res.on('drain', () => body.resume());
    body.on('end', () => {
      res.end();
    });
    body.on('error', (err) => {
      if (ctx.completed) return; // the edge cut it (client gone, body refused)
      this.deps.metrics?.upstreamErrors.inc([ctx.connection.name, 'aborted']);
      this.finish(ctx, up.statusCode, `upstream response aborted: ${err.message}`, true);
      res.destroy();
    });
    res.on('finish', () => this.finish(ctx, up.statusCode, '', true));
  }

  /** No answer: unreachable, timed out, or failed mid-response. */
  private upstreamFailed(ctx: EdgeRequest, err: Error): void {
    // The edge cut the upstream request itself (body over the cap, client gone): already answered and recorded.
    if (ctx.completed) return;
    const { res } = ctx;
    const signal = ctx.abort?.signal;
    const cause: unknown = signal?.aborted === true && signal.reason instanceof GatewayError ? signal.reason : err;
    const timedOut = cause instanceof GatewayError && cause.code === GatewayErrorCode.UpstreamTimeout;
    this.deps.metrics?.upstreamErrors.inc([ctx.connection.name, timedOut ? 'timeout' : res.headersSent ? 'aborted' : 'unreachable']);
    if (res.headersSent) {
      this.finish(ctx, res.statusCode, `upstream failed mid-response: ${(cause as Error).message}`, true);
      res.destroy();
      return;
    }
    const gw =
      cause instanceof GatewayError
        ? cause
        : new GatewayError(GatewayErrorCode.UpstreamUnreachable, `portcullis: upstream ${ctx.connection.name} unreachable (${upstreamErrorCode(cause)})`, {
            cause,
          });
    ctx.fail(gw);
    this.finish(ctx, gw.httpStatus, gw.message, false);
  }

  private clientClosed(ctx: EdgeRequest): void {
    if (ctx.res.writableFinished) return;
    ctx.abort?.abort();
    this.finish(ctx, ctx.res.statusCode, 'client disconnected', true);
  }

  /** The exchange ended: its span closes and request.completed is recorded with the audited bodies (once). */
  private finish(ctx: EdgeRequest, status: number, error: string, forwarded: boolean, response?: BodyExcerpt, maskedFields = 0): void {
    if (ctx.completed) return;
    if (ctx.upstreamSpan !== undefined) endSpan(ctx.upstreamSpan, error, { 'http.response.status_code': status });
    ctx.complete(status, error, forwarded, this.bodies(ctx, response, maskedFields));
  }

  private bodies(ctx: EdgeRequest, response: BodyExcerpt | undefined, maskedFields: number): ExchangeBodies | undefined {
    const { recorder, plan } = ctx;
    if (recorder === undefined && plan === undefined) return undefined;
    const masking = this.deps.masking;
    return {
      ...(recorder !== undefined
        ? { requestBody: auditRequestBody(recorder, ctx.req, masking, plan, plan?.target ?? ctx.protocol.maskTarget(ctx.attributes)) }
        : {}),
      ...(response !== undefined ? { responseBody: response } : {}),
      maskedFields,
      maskProfile: plan?.profile.name ?? '',
    };
  }
}

/** The request body on its way upstream, counted against the cap and copied for the audit as it streams. */
class CountedBody extends Transform {
  constructor(
    private readonly ctx: EdgeRequest,
    private readonly maxBytes: number,
    private readonly overCap: (ctx: EdgeRequest) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const ctx = this.ctx;
    if (ctx.bytesIn + chunk.length > this.maxBytes) {
      ctx.req.unpipe(this);
      this.overCap(ctx);
      // Failing the body stream makes undici abort the request mid-body: the upstream sees an
      // aborted request, never a complete truncated one.
      done(new GatewayError(GatewayErrorCode.BodyTooLarge, 'request body over the cap'));
      return;
    }
    ctx.bytesIn += chunk.length;
    ctx.recorder?.add(chunk);
    done(null, chunk);
  }
}

function headerTimeout(ctx: EdgeRequest, timeoutMs: number): void {
  ctx.abort?.abort(new GatewayError(GatewayErrorCode.UpstreamTimeout, `portcullis: the upstream did not answer within ${Math.round(timeoutMs / 1000)}s`));
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
