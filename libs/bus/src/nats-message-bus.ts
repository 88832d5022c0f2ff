import { Empty, headers as natsHeaders } from '@nats-io/nats-core';
import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/nats-core';
import { BusError } from './bus.port.js';
import type { BusHeaders, BusMessage, BusSubscription, MessageBus, Responder } from './bus.port.js';
import { BusWireHeaders, headerSafeMessage } from './bus-handle.js';
import { errorMessage } from './error-message.js';
import type { Logger } from '@portcullis/common';
import { toBusError } from './nats-errors.js';
import type { ConnectionFacts } from './nats-errors.js';
import { contextFromHeaders, inSpan, SpanKind, tracingEnabled, withTraceHeaders } from '@portcullis/observability';

/** Converts port headers to NATS headers; undefined when there are none (saves an allocation). */
export function toNatsHeaders(h: BusHeaders | undefined): MsgHdrs | undefined {
  if (h === undefined) return undefined;
  let out: MsgHdrs | undefined;
  for (const key of Object.keys(h)) {
    const value = h[key];
    if (value === undefined) continue;
    out ??= natsHeaders();
    out.set(key, value);
  }
  return out;
}

/** Reads NATS headers into a plain record (first value of each key). */
export function fromNatsHeaders(h: MsgHdrs | undefined): BusHeaders {
  if (h === undefined) return EMPTY_HEADERS;
  const out: Record<string, string> = {};
  for (const key of h.keys()) out[key] = h.get(key);
  return out;
}

const EMPTY_HEADERS: BusHeaders = Object.freeze({});

/** A received NATS message seen through the port; headers are decoded only when read. */
export class NatsBusMessage implements BusMessage {
  #headers: BusHeaders | undefined;
  constructor(private readonly msg: Msg) {}
  get subject(): string {
    return this.msg.subject;
  }
  get data(): Uint8Array {
    return this.msg.data;
  }
  get headers(): BusHeaders {
    this.#headers ??= fromNatsHeaders(this.msg.headers);
    return this.#headers;
  }
}

/** The connection state the NATS bus pieces share (owned by `connectNats`). */
export interface NatsConnectionState extends ConnectionFacts {
  readonly nc: NatsConnection;
  readonly logger: Logger;
  /** The connection's inbox prefix (`NatsBusOptions.inboxPrefix`), undefined for nats.js's default. */
  readonly inboxPrefix: string | undefined;
  /** Throws the BusError a call should fail with right now (closed / disconnected), if any. */
  assertUsable(what: string): void;
  /** Closes the whole connection (the bus, the log and KV share it). */
  close(): Promise<void>;
}

/** {@link MessageBus} over NATS core: request-reply with queue groups, publish/subscribe. */
export class NatsMessageBus implements MessageBus {
  constructor(private readonly state: NatsConnectionState) {}

  request(subject: string, data: Uint8Array, opts: { timeoutMs: number; headers?: BusHeaders }): Promise<BusMessage> {
    if (!tracingEnabled()) return this.send(subject, data, opts.timeoutMs, opts.headers);
    // The span's context travels in the headers (traceparent): the responder continues the trace.
    return inSpan(`nats request ${subject}`, { kind: SpanKind.CLIENT, attributes: { 'messaging.system': 'nats', 'messaging.destination.name': subject } }, () =>
      this.send(subject, data, opts.timeoutMs, withTraceHeaders(opts.headers)),
    );
  }

  private async send(subject: string, data: Uint8Array, timeoutMs: number, headers: BusHeaders | undefined): Promise<BusMessage> {
    const opts = { timeoutMs, headers };
    const what = `request to ${subject}`;
    // Fail fast while disconnected: nats.js would buffer the request and only time out.
    this.state.assertUsable(what);
    let reply: Msg;
    try {
      const h = toNatsHeaders(opts.headers);
      reply = await this.state.nc.request(subject, data, h === undefined ? { timeout: opts.timeoutMs } : { timeout: opts.timeoutMs, headers: h });
    } catch (error) {
      throw toBusError(error, what, this.state, opts.timeoutMs);
    }
    const remote = reply.headers?.get(BusWireHeaders.error);
    if (remote !== undefined && remote !== '') {
      throw new BusError('remote', remote);
    }
    return new NatsBusMessage(reply);
  }

  serve(subject: string, queue: string, responder: Responder): BusSubscription {
    const inFlight = new Set<Promise<void>>();
    const sub = this.subscribeOrThrow(subject, queue, (msg) => {
      // Each request runs on its own: one slow decision must not hold up the others.
      const answered = this.answer(subject, msg, responder);
      inFlight.add(answered);
      void answered.then(() => inFlight.delete(answered));
    });
    return { unsubscribe: () => this.stopSubscription(sub, inFlight) };
  }

  publish(subject: string, data: Uint8Array, headers?: BusHeaders): void {
    const what = `publish to ${subject}`;
    if (this.state.nc.isClosed()) this.state.assertUsable(what);
    try {
      const h = toNatsHeaders(headers);
      this.state.nc.publish(subject, data, h === undefined ? undefined : { headers: h });
    } catch (error) {
      throw toBusError(error, what, this.state);
    }
  }

  subscribe(subject: string, handler: (msg: BusMessage) => void): BusSubscription {
    const sub = this.subscribeOrThrow(subject, undefined, (msg) => {
      try {
        handler(new NatsBusMessage(msg));
      } catch (error) {
        this.state.logger.error('subscriber threw', { subject: msg.subject, error: errorMessage(error) });
      }
    });
    return { unsubscribe: () => this.stopSubscription(sub, undefined) };
  }

  isConnected(): boolean {
    return this.state.isConnected();
  }

  close(): Promise<void> {
    return this.state.close();
  }

  private subscribeOrThrow(subject: string, queue: string | undefined, onMsg: (msg: Msg) => void): Subscription {
    const what = `subscribe to ${subject}`;
    if (this.state.nc.isClosed()) this.state.assertUsable(what);
    try {
      return this.state.nc.subscribe(subject, {
        ...(queue === undefined ? {} : { queue }),
        callback: (err, msg) => {
          if (err !== null) {
            this.state.logger.error('subscription failed', { subject, queue, error: errorMessage(err) });
            return;
          }
          onMsg(msg);
        },
      });
    } catch (error) {
      throw toBusError(error, what, this.state);
    }
  }

  private async answer(subject: string, msg: Msg, responder: Responder): Promise<void> {
    if (!tracingEnabled()) return this.answerNow(subject, msg, responder);
    const message = new NatsBusMessage(msg);
    return inSpan(
      `nats serve ${subject}`,
      { kind: SpanKind.SERVER, parent: contextFromHeaders(message.headers), attributes: { 'messaging.system': 'nats', 'messaging.destination.name': subject } },
      () => this.answerNow(subject, msg, responder, message),
    );
  }

  private async answerNow(subject: string, msg: Msg, responder: Responder, message: BusMessage = new NatsBusMessage(msg)): Promise<void> {
    let body: Uint8Array;
    try {
      body = await responder(message);
    } catch (error) {
      const h = natsHeaders();
      h.set(BusWireHeaders.error, headerSafeMessage(errorMessage(error)));
      this.reply(subject, msg, Empty, h);
      return;
    }
    this.reply(subject, msg, body, undefined);
  }

  private reply(subject: string, msg: Msg, body: Uint8Array, h: MsgHdrs | undefined): void {
    if (msg.reply === undefined || msg.reply === '') return;
    try {
      msg.respond(body, h === undefined ? undefined : { headers: h });
    } catch (error) {
      // The connection went away while we worked; the requester times out or sees unavailable.
      this.state.logger.warn('could not send a reply', { subject, error: errorMessage(error) });
    }
  }

  private async stopSubscription(sub: Subscription, inFlight: Set<Promise<void>> | undefined): Promise<void> {
    if (!sub.isClosed()) {
      try {
        // drain: stop interest, but still handle what the server already sent us.
        await (this.state.isConnected() ? sub.drain() : Promise.resolve(sub.unsubscribe()));
      } catch {
        sub.unsubscribe();
      }
    }
    if (inFlight !== undefined) await Promise.allSettled([...inFlight]);
  }
}
