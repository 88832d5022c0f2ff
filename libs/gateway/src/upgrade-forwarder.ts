/**
 * Upgraded sessions through the edge: WebSocket (remotecommand channel protocols, port-forward's
 * SPDY-in-WebSocket) and SPDY/3.1. The upgrade request was authenticated, decided and recorded by
 * the pipeline like any request; here it goes upstream with the same headers, and after the
 * upstream's 101 the bytes flow both ways unchanged, with back-pressure. exec and attach over a
 * channel protocol are recorded frame by frame as session events, without the data path waiting.
 * Under a masking decision only exec and attach over a WebSocket channel protocol go upstream:
 * their stdout and stderr are masked on the way to the client and the recording (see
 * masked-channels.ts); any other upgrade (SPDY, port-forward, proxy) is refused before it is
 * forwarded, since its bytes cannot be masked.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
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
  type EventMeta,
  type SessionFrame,
} from '@portcullis/contracts';
import type { Logger } from '@portcullis/common';
import type { AuditPublisher } from './audit-publisher.js';
import type { EdgeRequest } from './edge-request.js';
import { AUDIT_ID_FIELD, AUDIT_ID_HEADER } from './edge-responses.js';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';
import { clientResponseHeaders } from './header-hygiene.js';
import { MaskedChannelRelay } from './masked-channels.js';
import { HeldTextTimer, planMasking, type EdgeMasking, type MaskPlan } from './response-masking.js';
import { isRecordableProtocol, SessionRecorder, type SessionRecordingOptions } from './session-recorder.js';
import { gatewayRequestHeaders } from './upstream-headers.js';

/** The client side of an upgrade request: its socket and the bytes read past the headers. */
export interface UpgradeSocket {
  readonly socket: Duplex;
  readonly head: Buffer;
}

/** Upgrade protocols the edge carries (lower-case `Upgrade` values). */
export const UPGRADE_PROTOCOLS: ReadonlySet<string> = new Set(['websocket', 'spdy/3.1']);

/** What the forwarder needs. */
export interface UpgradeForwarderDeps {
  readonly nodeId: string;
  readonly audit: AuditPublisher;
  readonly logger: Logger;
  readonly upstreamTimeoutMs: number;
  readonly recording: SessionRecordingOptions;
  readonly masking: EdgeMasking;
}

const SESSION_SUBRESOURCES = new Set(['exec', 'attach', 'portforward', 'proxy']);

/** Forwards upgrade requests and carries the upgraded sessions. */
export class UpgradeForwarder {
  constructor(private readonly deps: UpgradeForwarderDeps) {}

  /**
   * Sends an admitted upgrade request upstream with the gateway's headers; on 101 splices the two
   * sockets, otherwise relays the answer. Its end is recorded through `ctx.complete`.
   */
  forward(ctx: EdgeRequest): void {
    if (ctx.decision.maskProfile !== '' && !this.admitMasked(ctx)) return;
    const { connection, req } = ctx;
    const headers = gatewayRequestHeaders(req.headers, connection, ctx.identity!, ctx.id);
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
      path: connection.basePath + ctx.upstreamTarget,
      headers,
      agent: connection.agent,
    });
    const timer = setTimeout(() => {
      upstream.destroy(
        new GatewayError(
          GatewayErrorCode.UpstreamTimeout,
          `portcullis: the upstream did not answer the upgrade within ${Math.round(this.deps.upstreamTimeoutMs / 1000)}s`,
        ),
      );
    }, this.deps.upstreamTimeoutMs);
    timer.unref();
    let answered = false;
    // The client may leave before the upstream answers.
    ctx.upgrade!.socket.once('close', () => {
      if (!answered) upstream.destroy();
    });
    upstream.on('upgrade', (upRes: IncomingMessage, upSocket: Duplex, upHead: Buffer) => {
      clearTimeout(timer);
      answered = true;
      this.splice(ctx, upRes, upSocket, upHead);
    });
    upstream.on('response', (upRes: IncomingMessage) => {
      clearTimeout(timer);
      answered = true;
      relayRefusal(ctx, upRes);
    });
    upstream.on('error', (err) => {
      clearTimeout(timer);
      if (answered) return;
      answered = true;
      unreachable(ctx, err);
    });
    upstream.end();
  }

  /**
   * A masked upgrade: only exec/attach over a WebSocket channel protocol can be masked; anything
   * else (and a profile this gateway lacks) is answered here and never forwarded.
   */
  private admitMasked(ctx: EdgeRequest): boolean {
    let refusal: GatewayError | undefined;
    try {
      ctx.plan = planMasking(this.deps.masking, ctx.decision.maskProfile, ctx.protocol.maskTarget(ctx.attributes));
    } catch (err) {
      refusal = err as GatewayError;
    }
    if (refusal === undefined && !maskableUpgrade(ctx)) {
      const kube = ctx.attributes.kube;
      const what = kube?.resource === 'pods' && kube.subresource !== '' ? `pods/${kube.subresource}` : 'this upgrade';
      refusal = new GatewayError(
        GatewayErrorCode.UnmaskableResponse,
        `portcullis: ${what} over ${String(ctx.req.headers.upgrade ?? '').slice(0, 20)} cannot be masked (profile ${ctx.decision.maskProfile}): only exec and attach over a WebSocket channel protocol (v4/v5.channel.k8s.io, kubectl 1.30 and later) are; the request was not forwarded`,
      );
    }
    if (refusal === undefined) return true;
    ctx.fail(refusal);
    ctx.complete(refusal.httpStatus, refusal.message, false);
    return false;
  }

  private splice(ctx: EdgeRequest, upRes: IncomingMessage, upSocket: Duplex, upHead: Buffer): void {
    const client = ctx.upgrade!.socket;
    const started = performance.now();
    ctx.res.detachSocket(client as Parameters<ServerResponse['detachSocket']>[0]);
    if (client.destroyed) {
      upSocket.destroy();
      ctx.complete(101, 'client disconnected before the upgrade', true);
      return;
    }
    setNoDelay(client);
    setNoDelay(upSocket);
    client.write(switchingProtocolsHead(upRes, ctx.id));
    new UpgradedSession(ctx, this.deps, client, upSocket, started).start(upRes, upHead);
  }
}

/** exec/attach over WebSocket offering a channel protocol the relay can read. */
function maskableUpgrade(ctx: EdgeRequest): boolean {
  const kube = ctx.attributes.kube;
  if (kube?.resource !== 'pods' || (kube.subresource !== 'exec' && kube.subresource !== 'attach')) return false;
  if ((ctx.req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return false;
  const offered = String(ctx.req.headers['sec-websocket-protocol'] ?? '').split(',');
  return offered.some((p) => isRecordableProtocol(p.trim()));
}

/** A refusal from the upstream (404 pod, 400 bad options, 403 RBAC): relayed as the plain response it is. */
function relayRefusal(ctx: EdgeRequest, upRes: IncomingMessage): void {
  const status = upRes.statusCode ?? 502;
  const out = clientResponseHeaders(upRes.headers);
  out[AUDIT_ID_FIELD] = ctx.id;
  out['connection'] = 'close';
  ctx.res.writeHead(status, out);
  upRes.on('data', (c: Buffer) => {
    ctx.bytesOut += c.length;
  });
  upRes.pipe(ctx.res);
  ctx.res.on('finish', () => ctx.complete(status, '', true));
}

/** The upstream could not be reached (or did not answer in time): answered, nothing was forwarded. */
function unreachable(ctx: EdgeRequest, err: Error): void {
  const gw =
    err instanceof GatewayError
      ? err
      : new GatewayError(
          GatewayErrorCode.UpstreamUnreachable,
          `portcullis: upstream ${ctx.connection.name} unreachable (${(err as NodeJS.ErrnoException).code ?? err.message})`,
          { cause: err },
        );
  ctx.fail(gw);
  ctx.complete(gw.httpStatus, gw.message, false);
}

/** The 101 as the upstream sent it (names as sent, extensions dropped), plus the request's Audit-Id. */
function switchingProtocolsHead(upRes: IncomingMessage, requestId: string): string {
  let head = `HTTP/1.1 101 ${upRes.statusMessage || 'Switching Protocols'}\r\n`;
  const raw = upRes.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const lower = name.toLowerCase();
    if (lower === AUDIT_ID_FIELD || lower === 'sec-websocket-extensions') continue;
    head += `${name}: ${raw[i + 1] ?? ''}\r\n`;
  }
  return `${head}${AUDIT_ID_HEADER}: ${requestId}\r\n\r\n`;
}

/**
 * One upgraded session: the bytes flow both ways unchanged (pipe() pauses the faster side), counted;
 * session.started and session.ended frame it, and exec/attach over a channel protocol is recorded.
 */
class UpgradedSession {
  private recorder: SessionRecorder | undefined;
  private relay: MaskedChannelRelay | undefined;
  private protocol = '';
  private withheld = '';
  private meta!: EventMeta;
  private startedEventId = '';
  private ended = false;

  constructor(
    private readonly ctx: EdgeRequest,
    private readonly deps: UpgradeForwarderDeps,
    private readonly client: Duplex,
    private readonly upSocket: Duplex,
    private readonly started: number,
  ) {}

  start(upRes: IncomingMessage, upHead: Buffer): void {
    this.announce(upRes);
    this.carry(upHead);
  }

  /** session.started, and the recorder when the session is recordable. */
  private announce(upRes: IncomingMessage): void {
    const ctx = this.ctx;
    const transport = (ctx.req.headers.upgrade ?? '').toLowerCase() === 'websocket' ? 'websocket' : 'spdy';
    const protocolHeader = transport === 'websocket' ? upRes.headers['sec-websocket-protocol'] : upRes.headers['x-stream-protocol-version'];
    const protocol = (Array.isArray(protocolHeader) ? protocolHeader[0] : protocolHeader) ?? '';
    this.protocol = protocol;
    const kube = ctx.attributes.kube;
    const sub = kube?.resource === 'pods' && SESSION_SUBRESOURCES.has(kube.subresource) ? kube.subresource : 'other';
    const recorded = transport === 'websocket' && (sub === 'exec' || sub === 'attach') && isRecordableProtocol(protocol);
    this.meta = { correlationId: ctx.id, causationId: ctx.decidedId, sessionId: ctx.id, nodeId: this.deps.nodeId, connection: ctx.connection.name };
    const query = new URLSearchParams(ctx.query);
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
        // A masked session is always recorded: its masking reads the same frames.
        recorded,
        recordLimitBytes: recorded ? this.deps.recording.maxBytes : 0,
      }),
      this.meta,
    );
    this.startedEventId = startedEvent.id;
    this.deps.audit.recordLater(startedEvent);
    if (recorded) {
      const emit = (sequence: number, frames: SessionFrame[]): void =>
        this.deps.audit.recordLater(
          buildEvent(EventType.SessionFrames, create(SessionFramesSchema, { sequence, frames }), { ...this.meta, causationId: this.startedEventId }),
        );
      this.recorder = new SessionRecorder(protocol, this.started, this.deps.recording, emit, ctx.plan?.profile);
    }
  }

  private carry(upHead: Buffer): void {
    const { ctx, client, upSocket } = this;
    if (ctx.plan !== undefined) {
      this.carryMasked(ctx.plan, upHead);
      return;
    }
    client.on('data', (c: Buffer) => {
      ctx.bytesIn += c.length;
      this.recorder?.fromClient(c);
    });
    upSocket.on('data', (c: Buffer) => {
      ctx.bytesOut += c.length;
      this.recorder?.fromServer(c);
    });
    if (upHead.length > 0) {
      ctx.bytesOut += upHead.length;
      this.recorder?.fromServer(upHead);
      client.write(upHead);
    }
    const clientHead = ctx.upgrade!.head;
    if (clientHead.length > 0) {
      ctx.bytesIn += clientHead.length;
      this.recorder?.fromClient(clientHead);
      upSocket.write(clientHead);
    }
    // pipe() pauses the faster side while the other cannot keep up.
    client.pipe(upSocket);
    upSocket.pipe(client);
    this.closeTogether();
  }

  /**
   * The masked session: client bytes flow upstream unchanged (the recorder masks stdin in its
   * copy); upstream bytes go through the relay, whose masked frames reach the client and the
   * recording. A channel protocol the relay cannot read ends the session at once.
   */
  private carryMasked(plan: MaskPlan, upHead: Buffer): void {
    const { ctx, client, upSocket } = this;
    if (!isRecordableProtocol(this.protocol)) {
      this.failed('upstream', new Error(`the upstream chose ${JSON.stringify(this.protocol.slice(0, 40))}, which cannot be masked`));
      return;
    }
    const relay = new MaskedChannelRelay(
      this.protocol,
      plan.profile,
      (bytes) => {
        ctx.bytesOut += bytes.length;
        this.recorder?.fromServer(bytes);
        if (!client.write(bytes)) upSocket.pause();
      },
      (why) => {
        this.withheld = `output withheld: ${why}`;
        upSocket.destroy();
      },
    );
    this.relay = relay;
    const held = new HeldTextTimer((all) => {
      relay.flush(all);
      return relay.holding;
    });
    const fromUpstream = (c: Buffer): void => {
      relay.push(c);
      held.update(relay.holding);
    };
    client.on('drain', () => upSocket.resume());
    upSocket.on('data', fromUpstream);
    if (upHead.length > 0) fromUpstream(upHead);
    client.on('data', (c: Buffer) => {
      ctx.bytesIn += c.length;
      this.recorder?.fromClient(c);
    });
    const clientHead = ctx.upgrade!.head;
    if (clientHead.length > 0) {
      ctx.bytesIn += clientHead.length;
      this.recorder?.fromClient(clientHead);
      upSocket.write(clientHead);
    }
    client.pipe(upSocket);
    client.on('close', () => held.stop());
    upSocket.on('end', () => {
      held.stop();
      relay.flush();
    });
    this.closeTogether();
  }

  /** Either side closing ends the session normally; only socket errors are reported as errors. */
  private closeTogether(): void {
    const { client, upSocket } = this;
    upSocket.on('close', () => {
      // Let what is buffered reach the client, then make sure the socket goes.
      client.end();
      setTimeout(() => client.destroy(), 5_000).unref();
      this.end('');
    });
    client.on('close', () => {
      upSocket.destroy();
      this.end('');
    });
    client.on('error', (err) => this.failed('client', err));
    upSocket.on('error', (err) => this.failed('upstream', err));
  }

  private failed(side: string, err: Error): void {
    this.deps.logger.debug('upgraded session error', { auditId: this.ctx.id, side, err });
    this.client.destroy();
    this.upSocket.destroy();
    this.end(`${side} error: ${err.message}`);
  }

  /** session.ended with the recording's summary, then request.completed. */
  private end(error: string): void {
    if (this.ended) return;
    this.ended = true;
    const ctx = this.ctx;
    const summary = this.recorder?.finish();
    this.deps.audit.recordLater(
      buildEvent(
        EventType.SessionEnded,
        create(SessionEndedSchema, {
          exitCode: summary?.exitCode ?? -1,
          status: summary?.status ?? '',
          message: summary?.message ?? '',
          bytesIn: ctx.bytesIn,
          bytesOut: ctx.bytesOut,
          durationMs: Math.round(performance.now() - this.started),
          recordedBytes: summary?.recordedBytes ?? 0,
          truncated: summary?.truncated ?? false,
          frameBatches: summary?.batches ?? 0,
          error: error || this.withheld || summary?.error || '',
        }),
        { ...this.meta, causationId: this.startedEventId },
      ),
    );
    const plan = ctx.plan;
    ctx.complete(
      101,
      error || this.withheld,
      true,
      plan === undefined ? undefined : { maskedFields: this.relay?.maskedFields ?? 0, maskProfile: plan.profile.name },
    );
  }
}

function setNoDelay(socket: Duplex): void {
  const s = socket as Duplex & { setNoDelay?: (on: boolean) => unknown };
  s.setNoDelay?.(true);
}
