import { BaseRpcContext, Server, type CustomTransportStrategy, type MessageHandler } from '@nestjs/microservices';
import { isObservable, lastValueFrom } from 'rxjs';
import type { BusHeaders, BusMessage, BusSubscription, MessageBus } from '@portcullis/bus';
import type { Logger } from '@portcullis/common';
import type { BusServeGate } from './bus-serve-gate.js';

/** The transport id `@MessagePattern(…, BUS_TRANSPORT, …)` may name. */
export const BUS_TRANSPORT = Symbol('portcullis.bus-transport');

/** What a `@MessagePattern` handler on the bus gets besides the request bytes (`@Ctx()`). */
export class BusContext extends BaseRpcContext<[BusMessage]> {
  /** The request as received. */
  getMessage(): BusMessage {
    return this.args[0];
  }

  /** The subject the request was sent to. */
  getSubject(): string {
    return this.args[0].subject;
  }

  /** The request's headers (trace context, …). */
  getHeaders(): BusHeaders {
    return this.args[0].headers;
  }
}

/** What the transport needs from the process: the bus, and a flush after subscribing. */
export interface BusTransportOptions {
  readonly bus: MessageBus;
  /** Resolves once the server has processed the subscriptions (other processes' requests then reach us). */
  readonly flush: () => Promise<void>;
  readonly gate: BusServeGate;
  readonly logger: Logger;
}

/**
 * `@nestjs/microservices` over the {@link MessageBus} port: NATS in cluster mode, in-process in
 * the embedded mode. Each `@MessagePattern(subject, { queue })` handler serves `subject` in its
 * queue group; requests and replies are the protobuf bytes the contracts define (the handler
 * gets the request bytes and returns the reply bytes), so other processes and older versions
 * interoperate. A queue group held at the {@link BusServeGate} is joined only once it opens.
 * A handler that throws answers as the bus reports a responder failure (`remote`, its message:
 * the process's ProcessExceptionFilter hands the error back untouched). `close()` drains:
 * in-flight requests are answered before it resolves.
 */
export class BusTransportStrategy extends Server implements CustomTransportStrategy {
  override readonly transportId = BUS_TRANSPORT;
  private readonly subscriptions: BusSubscription[] = [];
  private closed = false;

  constructor(private readonly opts: BusTransportOptions) {
    super();
  }

  /** Subscribes every handler (again, after a `close()`: the transport can pause and resume). */
  listen(callback: (err?: unknown) => void): void {
    this.closed = false;
    this.start().then(
      () => callback(),
      (err: unknown) => callback(err),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    const subscriptions = this.subscriptions.splice(0);
    await Promise.all(subscriptions.map((s) => s.unsubscribe()));
  }

  on(): never {
    throw new Error('the bus transport emits no events');
  }

  unwrap<T>(): T {
    return this.opts.bus as T;
  }

  private async start(): Promise<void> {
    const byQueue = new Map<string, [string, MessageHandler][]>();
    for (const [pattern, handler] of this.messageHandlers) {
      if (handler.isEventHandler === true)
        throw new Error(`@EventPattern(${JSON.stringify(pattern)}): the bus transport serves request-reply (@MessagePattern) only`);
      const queue: unknown = handler.extras?.['queue'];
      if (typeof queue !== 'string' || queue === '') throw new Error(`@MessagePattern(${JSON.stringify(pattern)}) names no queue group: add { queue }`);
      const list = byQueue.get(queue) ?? [];
      list.push([pattern, handler]);
      byQueue.set(queue, list);
    }
    for (const [queue, handlers] of byQueue) {
      if (this.opts.gate.isOpen(queue)) {
        this.serveQueue(queue, handlers);
        continue;
      }
      this.opts.logger.info('queue group held until its role is ready', { queue, subjects: handlers.map(([p]) => p) });
      void this.opts.gate
        .whenOpen(queue)
        .then(async () => {
          if (this.closed) return;
          this.serveQueue(queue, handlers);
          await this.opts.flush();
        })
        .catch((err: unknown) => this.opts.logger.error('could not join a queue group', { queue, err }));
    }
    await this.opts.flush();
  }

  private serveQueue(queue: string, handlers: readonly [string, MessageHandler][]): void {
    for (const [subject, handler] of handlers) {
      this.subscriptions.push(this.opts.bus.serve(subject, queue, (msg) => answer(handler, msg)));
    }
    this.opts.logger.info('serving on the bus', { queue, subjects: handlers.map(([s]) => s) });
  }
}

/** Runs one handler: plain promises on the common path; an Observable only when a filter or interceptor made one. */
async function answer(handler: MessageHandler, msg: BusMessage): Promise<Uint8Array> {
  let reply: unknown = await handler(msg.data, new BusContext([msg]));
  if (isObservable(reply)) reply = await lastValueFrom(reply);
  if (!(reply instanceof Uint8Array)) throw new TypeError(`the handler of ${msg.subject} answered without bytes`);
  return reply;
}
