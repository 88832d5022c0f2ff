/**
 * Upgraded sessions through the edge: WebSocket (remotecommand channel protocols, port-forward's
 * SPDY-in-WebSocket) and SPDY/3.1. The upgrade request was authenticated, decided and recorded by
 * the pipeline like any request; here it goes upstream with the same headers, and after the
 * upstream's 101 the bytes flow both ways unchanged, with back-pressure. exec and attach over a
 * channel protocol are recorded frame by frame as session events, without the data path waiting.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import {
  buildEvent,
  create,
  EventType,
  SessionEndedSchema,
  SessionFramesSchema,
  SessionStartedSchema,
  type RequestAttributes,
} from '@portcullis/contracts';
import type { Logger } from '@portcullis/common';
import type { AuditPublisher } from './audit-publisher.js';
import type { UpstreamConnection } from './connection-registry.js';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';
import { clientResponseHeaders } from './header-hygiene.js';
import { isRecordableProtocol, SessionRecorder, type SessionRecordingOptions } from './session-recorder.js';

/** The client side of an upgrade request: its socket and the bytes read past the headers. */
export interface UpgradeSocket {
  readonly socket: Duplex;
  readonly head: Buffer;
}

/** Upgrade protocols the edge carries (lower-case `Upgrade` values). */
export const UPGRADE_PROTOCOLS: ReadonlySet<string> = new Set(['websocket', 'spdy/3.1']);

/** One admitted upgrade request, ready to go upstream. */
export interface UpgradeRequest {
  readonly req: IncomingMessage;
  /** Writes an HTTP response onto the client socket (refusals, the upstream's non-101 answer). */
  readonly res: ServerResponse;
  readonly upgrade: UpgradeSocket;
  readonly connection: UpstreamConnection;
  readonly upstreamPath: string;
  /** The upstream request headers after hygiene, with the gateway credential and impersonation. */
  readonly headers: OutgoingHttpHeaders;
  readonly attributes: RequestAttributes;
  readonly requestId: string;
  /** The request.decided event id. */
  readonly causationId: string;
  readonly answerError: (err: unknown) => void;
  readonly complete: (status: number, bytesIn: number, bytesOut: number, error: string, forwarded: boolean) => void;
}

/** What the forwarder needs. */
export interface UpgradeForwarderDeps {
  readonly nodeId: string;
  readonly audit: AuditPublisher;
  readonly logger: Logger;
  readonly upstreamTimeoutMs: number;
  readonly recording: SessionRecordingOptions;
}

const SESSION_SUBRESOURCES = new Set(['exec', 'attach', 'portforward', 'proxy']);

/** Forwards upgrade requests and carries the upgraded sessions. */
export class UpgradeForwarder {
  constructor(private readonly deps: UpgradeForwarderDeps) {}

  /** Sends the upgrade upstream; on 101 splices the two sockets, otherwise relays the answer. */
  forward(u: UpgradeRequest): void {
    const { connection, req, res } = u;
    const headers = { ...u.headers };
    headers['connection'] = 'Upgrade';
    headers['upgrade'] = req.headers.upgrade ?? '';
    // No WebSocket extensions: the recorder reads frames as sent, and compression under TLS leaks (CRIME).
    delete headers['sec-websocket-extensions'];
    const requestFn = connection.url.protocol === 'https:' ? httpsRequest : httpRequest;
    const upstream = requestFn({
      protocol: connection.url.protocol,
      hostname: connection.url.hostname,
      port: connection.url.port,
      method: req.method,
      path: connection.basePath + u.upstreamPath,
      headers,
      agent: connection.agent,
    });
    const timer = setTimeout(() => {
      upstream.destroy(new GatewayError(GatewayErrorCode.UpstreamTimeout, `portcullis: the upstream did not answer the upgrade within ${Math.round(this.deps.upstreamTimeoutMs / 1000)}s`));
    }, this.deps.upstreamTimeoutMs);
    timer.unref();
    let answered = false;
    // The client may leave before the upstream answers.
    u.upgrade.socket.once('close', () => {
      if (!answered) upstream.destroy();
    });

    upstream.on('upgrade', (upRes: IncomingMessage, upSocket: Duplex, upHead: Buffer) => {
      clearTimeout(timer);
      answered = true;
      this.splice(u, upRes, upSocket, upHead);
    });
    upstream.on('response', (upRes: IncomingMessage) => {
      // Refused upstream (404 pod, 400 bad options, 403 RBAC): relayed as the plain response it is.
      clearTimeout(timer);
      answered = true;
      const out = clientResponseHeaders(upRes.headers);
      out['audit-id'] = u.requestId;
      out['connection'] = 'close';
      res.writeHead(upRes.statusCode ?? 502, out);
      let bytesOut = 0;
      upRes.on('data', (c: Buffer) => {
        bytesOut += c.length;
      });
      upRes.pipe(res);
      res.on('finish', () => u.complete(upRes.statusCode ?? 502, 0, bytesOut, '', true));
    });
    upstream.on('error', (err) => {
      clearTimeout(timer);
      if (answered) return;
      answered = true;
      const gw =
        err instanceof GatewayError
          ? err
          : new GatewayError(GatewayErrorCode.UpstreamUnreachable, `portcullis: upstream ${connection.name} unreachable (${(err as NodeJS.ErrnoException).code ?? err.message})`, { cause: err });
      u.answerError(gw);
      u.complete(gw.httpStatus, 0, 0, gw.message, false);
    });
    upstream.end();
  }

  private splice(u: UpgradeRequest, upRes: IncomingMessage, upSocket: Duplex, upHead: Buffer): void {
    const client = u.upgrade.socket;
    const started = performance.now();
    u.res.detachSocket(client as Parameters<ServerResponse['detachSocket']>[0]);
    if (client.destroyed) {
      upSocket.destroy();
      u.complete(101, 0, 0, 'client disconnected before the upgrade', true);
      return;
    }
    setNoDelay(client);
    setNoDelay(upSocket);

    // The 101 as the upstream sent it (names as sent), plus the request's Audit-Id.
    let head = `HTTP/1.1 101 ${upRes.statusMessage || 'Switching Protocols'}\r\n`;
    const raw = upRes.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i] ?? '';
      const lower = name.toLowerCase();
      if (lower === 'audit-id' || lower === 'sec-websocket-extensions') continue;
      head += `${name}: ${raw[i + 1] ?? ''}\r\n`;
    }
    head += `Audit-Id: ${u.requestId}\r\n\r\n`;
    client.write(head);

    const transport = (u.req.headers.upgrade ?? '').toLowerCase() === 'websocket' ? 'websocket' : 'spdy';
    const protocolHeader = transport === 'websocket' ? upRes.headers['sec-websocket-protocol'] : upRes.headers['x-stream-protocol-version'];
    const protocol = (Array.isArray(protocolHeader) ? protocolHeader[0] : protocolHeader) ?? '';
    const kube = u.attributes.kube;
    const sub = kube?.resource === 'pods' && SESSION_SUBRESOURCES.has(kube.subresource) ? kube.subresource : 'other';
    const recorded = transport === 'websocket' && (sub === 'exec' || sub === 'attach') && isRecordableProtocol(protocol);
    const meta = { correlationId: u.requestId, causationId: u.causationId, sessionId: u.requestId, nodeId: this.deps.nodeId, connection: u.connection.name };
    const query = new URLSearchParams(u.upstreamPath.includes('?') ? u.upstreamPath.slice(u.upstreamPath.indexOf('?') + 1) : '');
    const startedEvent = buildEvent(
      EventType.SessionStarted,
      create(SessionStartedSchema, {
        kind: sub,
        protocol,
        transport,
        command: query.getAll('command'),
        container: query.get('container') ?? '',
        stdin: query.get('stdin') === 'true' || query.get('stdin') === '1',
        tty: query.get('tty') === 'true' || query.get('tty') === '1',
        recorded,
        recordLimitBytes: recorded ? this.deps.recording.maxBytes : 0,
      }),
      meta,
    );
    this.deps.audit.recordLater(startedEvent);
    const recorder = recorded
      ? new SessionRecorder(protocol, started, this.deps.recording, (sequence, frames) => {
          this.deps.audit.recordLater(buildEvent(EventType.SessionFrames, create(SessionFramesSchema, { sequence, frames }), { ...meta, causationId: startedEvent.id }));
        })
      : undefined;

    let bytesIn = 0;
    let bytesOut = 0;
    client.on('data', (c: Buffer) => {
      bytesIn += c.length;
      recorder?.fromClient(c);
    });
    upSocket.on('data', (c: Buffer) => {
      bytesOut += c.length;
      recorder?.fromServer(c);
    });
    if (upHead.length > 0) {
      bytesOut += upHead.length;
      recorder?.fromServer(upHead);
      client.write(upHead);
    }
    if (u.upgrade.head.length > 0) {
      bytesIn += u.upgrade.head.length;
      recorder?.fromClient(u.upgrade.head);
      upSocket.write(u.upgrade.head);
    }
    // pipe() pauses the faster side while the other cannot keep up.
    client.pipe(upSocket);
    upSocket.pipe(client);

    let ended = false;
    const end = (error: string): void => {
      if (ended) return;
      ended = true;
      const summary = recorder?.finish();
      const durationMs = Math.round(performance.now() - started);
      this.deps.audit.recordLater(
        buildEvent(
          EventType.SessionEnded,
          create(SessionEndedSchema, {
            exitCode: summary?.exitCode ?? -1,
            status: summary?.status ?? '',
            message: summary?.message ?? '',
            bytesIn,
            bytesOut,
            durationMs,
            recordedBytes: summary?.recordedBytes ?? 0,
            truncated: summary?.truncated ?? false,
            frameBatches: summary?.batches ?? 0,
            error: error || summary?.error || '',
          }),
          { ...meta, causationId: startedEvent.id },
        ),
      );
      u.complete(101, bytesIn, bytesOut, error, true);
    };
    // Either side closing ends the session normally; only socket errors are reported as errors.
    upSocket.on('close', () => {
      // Let what is buffered reach the client, then make sure the socket goes.
      client.end();
      setTimeout(() => client.destroy(), 5_000).unref();
      end('');
    });
    client.on('close', () => {
      upSocket.destroy();
      end('');
    });
    const onError = (side: string) => (err: Error) => {
      this.deps.logger.debug('upgraded session error', { auditId: u.requestId, side, err });
      client.destroy();
      upSocket.destroy();
      end(`${side} error: ${err.message}`);
    };
    client.on('error', onError('client'));
    upSocket.on('error', onError('upstream'));
  }
}

function setNoDelay(socket: Duplex): void {
  const s = socket as Duplex & { setNoDelay?: (on: boolean) => unknown };
  s.setNoDelay?.(true);
}
