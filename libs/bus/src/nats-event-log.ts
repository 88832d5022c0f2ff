import { nanos } from '@nats-io/nats-core';
import { AckPolicy, DeliverPolicy, DiscardPolicy, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type {
  Consumer,
  ConsumerConfig,
  ConsumerInfo,
  ConsumerMessages,
  JetStreamClient,
  JetStreamManager,
  JsMsg,
  OrderedConsumerOptions,
  StreamConfig,
} from '@nats-io/jetstream';
import type { AppendAck, BusHeaders, BusMessage, BusSubscription, ConsumeOptions, EventLog, LogConsumer, LogMessage, StreamSpec } from './bus.port.js';
import { FULL_EVENT_LOG_CAPABILITIES } from './bus.port.js';
import { errorMessage } from './error-message.js';
import { toBusError } from './nats-errors.js';
import { fromNatsHeaders } from './nats-message-bus.js';
import type { NatsConnectionState } from './nats-message-bus.js';
import { WakeSignal, backoffMs } from './wake-signal.js';
import { JetStreamAckInbox } from './jetstream-acks.js';
import { inSpan, SpanKind, tracingEnabled, withTraceHeaders } from '@portcullis/observability';

/** Tuning of the JetStream event log; the defaults suit the gateway. */
export interface NatsEventLogOptions {
  /** Append timeout when the caller gives none. Default 5000 ms. */
  readonly appendTimeoutMs?: number;
  /** Delay before a message of a failed batch is redelivered. Default 500 ms. */
  readonly nakDelayMs?: number;
  /** How long one pull request waits on the server (>= 1000). Default 5000 ms. */
  readonly fetchExpiresMs?: number;
}

const DEFAULT_ACK_WAIT_MS = 30_000;
/** Unacknowledged messages a durable may have out across all members. */
const MIN_MAX_ACK_PENDING = 10_000;

/** {@link EventLog} over JetStream. */
export class NatsEventLog implements EventLog {
  readonly capabilities = FULL_EVENT_LOG_CAPABILITIES;
  private readonly appendTimeoutMs: number;
  private readonly nakDelayMs: number;
  private readonly fetchExpiresMs: number;
  private readonly consumers = new Set<NatsLogConsumer>();
  private readonly readers = new Set<BusSubscription>();
  private acks: JetStreamAckInbox | undefined;

  constructor(
    private readonly state: NatsConnectionState,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    opts: NatsEventLogOptions = {},
  ) {
    this.appendTimeoutMs = opts.appendTimeoutMs ?? 5000;
    this.nakDelayMs = opts.nakDelayMs ?? 500;
    this.fetchExpiresMs = Math.max(1000, opts.fetchExpiresMs ?? 5000);
  }

  append(subject: string, data: Uint8Array, msgId: string, opts?: { timeoutMs?: number; headers?: BusHeaders }): Promise<AppendAck> {
    if (!tracingEnabled()) return this.publish(subject, data, msgId, opts);
    // The publish span's context is stored with the message: the consumer's span continues the trace.
    return inSpan(
      `jetstream publish ${subject}`,
      { kind: SpanKind.PRODUCER, attributes: { 'messaging.system': 'nats', 'messaging.destination.name': subject, 'messaging.message.id': msgId } },
      () => this.publish(subject, data, msgId, { ...opts, headers: withTraceHeaders(opts?.headers) }),
    );
  }

  private async publish(subject: string, data: Uint8Array, msgId: string, opts?: { timeoutMs?: number; headers?: BusHeaders | undefined }): Promise<AppendAck> {
    const what = `append to ${subject}`;
    const timeout = opts?.timeoutMs ?? this.appendTimeoutMs;
    this.state.assertUsable(what);
    this.acks ??= new JetStreamAckInbox(this.state.nc, this.state, this.state.inboxPrefix);
    return this.acks.publish(subject, data, msgId, timeout, opts?.headers, what);
  }

  async ensureStream(spec: StreamSpec): Promise<void> {
    const what = `ensure stream ${spec.name}`;
    this.state.assertUsable(what);
    const config = {
      name: spec.name,
      subjects: [...spec.subjects],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: nanos(spec.maxAgeMs),
      duplicate_window: nanos(spec.duplicateWindowMs),
      num_replicas: spec.replicas,
      max_bytes: spec.maxBytes ?? -1,
      deny_delete: spec.denyDelete ?? false,
      deny_purge: spec.denyPurge ?? false,
    } satisfies Partial<StreamConfig>;
    try {
      let current: StreamConfig | undefined;
      try {
        current = (await this.jsm.streams.info(spec.name)).config;
      } catch (error) {
        if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error;
      }
      if (current === undefined) {
        try {
          await this.jsm.streams.add(config);
          return;
        } catch (error) {
          // Another process created it between our info and add: fall through to update.
          current = (await this.jsm.streams.info(spec.name)).config;
          void error;
        }
      }
      if (spec.updateExisting === false) {
        if (!streamConfigMatches(current, config))
          this.state.logger.warn('stream settings differ from this config; left to the stream owner', { stream: spec.name });
        return;
      }
      if (!streamConfigMatches(current, config)) {
        const { name: _name, storage: _storage, ...changeable } = config;
        await this.jsm.streams.update(spec.name, changeable);
      }
    } catch (error) {
      throw toBusError(error, what, this.state);
    }
  }

  consume(stream: string, opts: ConsumeOptions, handler: (batch: readonly LogMessage[]) => Promise<void>): LogConsumer {
    const consumer = new NatsLogConsumer(this.state, this.js, this.jsm, stream, opts, handler, {
      nakDelayMs: this.nakDelayMs,
      fetchExpiresMs: this.fetchExpiresMs,
    });
    this.consumers.add(consumer);
    return {
      stop: async () => {
        await consumer.stop();
        this.consumers.delete(consumer);
      },
    };
  }

  read(
    stream: string,
    opts: { startSeq?: number; startTimeMs?: number; filterSubject?: string },
    handler: (msg: BusMessage & { seq: number }) => void,
  ): BusSubscription {
    let stopped = false;
    let messages: ConsumerMessages | undefined;
    const run = (async () => {
      const oco: Partial<OrderedConsumerOptions> = {};
      if (opts.startTimeMs !== undefined) oco.opt_start_time = new Date(opts.startTimeMs).toISOString();
      else oco.opt_start_seq = Math.max(1, opts.startSeq ?? 1);
      if (opts.filterSubject !== undefined) oco.filter_subjects = opts.filterSubject;
      const ordered = await this.js.consumers.get(stream, oco);
      if (stopped) return;
      messages = await ordered.consume({ max_messages: 512 });
      if (stopped) messages.stop();
      for await (const m of messages) {
        try {
          handler({ subject: m.subject, data: m.data, headers: fromNatsHeaders(m.headers), seq: m.seq });
        } catch (error) {
          this.state.logger.error('log reader handler threw', { stream, seq: m.seq, error: errorMessage(error) });
        }
      }
    })().catch((error: unknown) => {
      if (!stopped) this.state.logger.error('log reader failed', { stream, error: errorMessage(error) });
    });
    const sub: BusSubscription = {
      unsubscribe: async () => {
        stopped = true;
        messages?.stop();
        await run;
        this.readers.delete(sub);
      },
    };
    this.readers.add(sub);
    return sub;
  }

  async snapshot(stream: string, opts: { startTimeMs?: number; filterSubject?: string }): Promise<(BusMessage & { seq: number })[]> {
    const what = `snapshot of ${stream}`;
    this.state.assertUsable(what);
    const out: (BusMessage & { seq: number })[] = [];
    try {
      const oco: Partial<OrderedConsumerOptions> = {};
      if (opts.startTimeMs !== undefined) oco.opt_start_time = new Date(opts.startTimeMs).toISOString();
      if (opts.filterSubject !== undefined) oco.filter_subjects = opts.filterSubject;
      const ordered = await this.js.consumers.get(stream, oco);
      // Fetch until the server says nothing is pending after the last message; an empty
      // fetch (nothing matches) ends after its expiry.
      for (;;) {
        const batch = await ordered.fetch({ max_messages: 1000, expires: 1000 });
        let last: JsMsg | undefined;
        for await (const m of batch) {
          out.push({ subject: m.subject, data: m.data, headers: fromNatsHeaders(m.headers), seq: m.seq });
          last = m;
        }
        if (last === undefined || last.info.pending === 0) return out;
      }
    } catch (error) {
      throw toBusError(error, what, this.state);
    }
  }

  /** Stops every consumer and reader (before the connection closes). */
  async stopAll(): Promise<void> {
    await Promise.allSettled([...this.consumers].map((c) => c.stop()));
    await Promise.allSettled([...this.readers].map((r) => r.unsubscribe()));
  }
}

function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

function streamConfigMatches(current: StreamConfig, want: Partial<StreamConfig>): boolean {
  return (
    JSON.stringify([...current.subjects].sort()) === JSON.stringify([...(want.subjects ?? [])].sort()) &&
    current.max_age === want.max_age &&
    current.duplicate_window === want.duplicate_window &&
    current.num_replicas === want.num_replicas &&
    current.max_bytes === want.max_bytes &&
    current.discard === want.discard &&
    Boolean(current.deny_delete) === Boolean(want.deny_delete) &&
    Boolean(current.deny_purge) === Boolean(want.deny_purge)
  );
}

/** A message of a batch; remembers whether the handler settled it. */
class NatsLogMessage implements LogMessage {
  settled = false;
  #headers: BusHeaders | undefined;
  constructor(private readonly m: JsMsg) {}
  get subject(): string {
    return this.m.subject;
  }
  get data(): Uint8Array {
    return this.m.data;
  }
  get headers(): BusHeaders {
    this.#headers ??= fromNatsHeaders(this.m.headers);
    return this.#headers;
  }
  get seq(): number {
    return this.m.seq;
  }
  get deliveryCount(): number {
    return this.m.info.deliveryCount;
  }
  ack(): void {
    this.settle(() => this.m.ack());
  }
  nak(delayMs?: number): void {
    this.settle(() => this.m.nak(delayMs));
  }
  working(): void {
    try {
      this.m.working();
    } catch {
      // connection gone: the ack deadline lapses and the message is redelivered
    }
  }
  term(reason?: string): void {
    this.settle(() => this.m.term(reason));
  }
  private settle(send: () => void): void {
    this.settled = true;
    try {
      send();
    } catch {
      // connection gone: an unsent ack means redelivery, which consumers must tolerate anyway
    }
  }
}

/**
 * A durable pull consumer: a reader keeps up to one batch of messages fetched ahead while the
 * handler works on the current one; the batcher hands over a full batch at once, or what has
 * arrived `maxWaitMs` after the first message. Any failure (NATS restart, consumer gone) ends
 * the pump and the outer loop re-creates the consumer with back-off.
 */
class NatsLogConsumer {
  private stopped = false;
  private readonly signal = new WakeSignal();
  private activeFetch: ConsumerMessages | undefined;
  private readonly done: Promise<void>;
  private readonly batchSize: number;
  private readonly ackWaitMs: number;

  constructor(
    private readonly state: NatsConnectionState,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly opts: ConsumeOptions,
    private readonly handler: (batch: readonly LogMessage[]) => Promise<void>,
    private readonly tuning: { nakDelayMs: number; fetchExpiresMs: number },
  ) {
    this.batchSize = Math.max(1, Math.floor(opts.batchSize));
    this.ackWaitMs = opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
    this.done = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.activeFetch?.stop();
    this.signal.notify();
    await this.done;
  }

  private log(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
    this.state.logger[level](msg, { stream: this.stream, durable: this.opts.durable, ...fields });
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        const consumer = await this.ensureConsumer();
        if (failures > 0) this.log('info', 'log consumer resumed', { failures });
        failures = 0;
        await this.pump(consumer);
      } catch (error) {
        if (this.stopped) break;
        failures++;
        const wait = backoffMs(failures);
        this.log('warn', 'log consumer failed; retrying', { error: errorMessage(error), attempt: failures, retryInMs: wait });
        await this.signal.wait(wait);
      }
    }
  }

  private async ensureConsumer(): Promise<Consumer> {
    const { durable, filterSubject } = this.opts;
    const maxAckPending = Math.max(MIN_MAX_ACK_PENDING, this.batchSize * 20);
    const want: Partial<ConsumerConfig> = {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(this.ackWaitMs),
      max_ack_pending: maxAckPending,
      max_deliver: -1,
      ...(filterSubject === undefined ? {} : { filter_subject: filterSubject }),
    };
    let info: ConsumerInfo | undefined;
    try {
      info = await this.jsm.consumers.info(this.stream, durable);
    } catch (error) {
      if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
    }
    if (info === undefined) {
      try {
        info = await this.jsm.consumers.add(this.stream, want);
      } catch (error) {
        // Another member created it first.
        info = await this.jsm.consumers.info(this.stream, durable).catch(() => {
          throw error;
        });
      }
    } else if (
      info.config.ack_wait !== want.ack_wait ||
      info.config.max_ack_pending !== want.max_ack_pending ||
      (info.config.filter_subject ?? '') !== (filterSubject ?? '')
    ) {
      info = await this.jsm.consumers.update(this.stream, durable, {
        ack_wait: want.ack_wait,
        max_ack_pending: maxAckPending,
        ...(filterSubject === undefined ? {} : { filter_subject: filterSubject }),
      });
    }
    return this.js.consumers.getConsumerFromInfo(info);
  }

  private async pump(consumer: Consumer): Promise<void> {
    const queue: JsMsg[] = [];
    let readerDone = false;
    // Boxed, so whatever the reader threw (even undefined) is rethrown as it was.
    let readerFailure: { error: unknown } | undefined;
    const reader = (async () => {
      try {
        while (!this.stopped) {
          if (queue.length >= this.batchSize) {
            await this.signal.wait();
            continue;
          }
          const messages = await consumer.fetch({ max_messages: this.batchSize - queue.length, expires: this.tuning.fetchExpiresMs });
          this.activeFetch = messages;
          if (this.stopped) messages.stop();
          // nats.js has no client-side deadline on a pull while disconnected; bound it ourselves.
          const watchdog = setTimeout(() => messages.stop(), this.tuning.fetchExpiresMs + 5000);
          watchdog.unref();
          try {
            for await (const m of messages) {
              queue.push(m);
              this.signal.notify();
            }
          } finally {
            clearTimeout(watchdog);
            this.activeFetch = undefined;
          }
        }
      } catch (error) {
        readerFailure = { error };
      } finally {
        readerDone = true;
        this.signal.notify();
      }
    })();

    let handlerFailures = 0;
    for (;;) {
      while (queue.length === 0 && !readerDone && !this.stopped) await this.signal.wait();
      if (queue.length === 0 || this.stopped) break;
      if (queue.length < this.batchSize) {
        const deadline = Date.now() + this.opts.maxWaitMs;
        while (queue.length < this.batchSize && !readerDone && !this.stopped && Date.now() < deadline) {
          await this.signal.wait(deadline - Date.now());
        }
      }
      if (this.stopped) break;
      const batch = queue.splice(0, this.batchSize).map((m) => new NatsLogMessage(m));
      this.signal.notify(); // room for the reader to fetch ahead
      if (await this.deliver(batch)) {
        handlerFailures = 0;
      } else {
        handlerFailures++;
        await this.signal.wait(backoffMs(handlerFailures, 5000));
      }
    }
    await reader;
    // Fetched but never handed over: give them back now rather than after the ack wait.
    for (const m of queue.splice(0)) {
      try {
        m.nak();
      } catch {
        // connection gone; they come back after the ack wait
      }
    }
    if (readerFailure !== undefined && !this.stopped) throw readerFailure.error;
  }

  /** Runs the handler; on failure naks what it left unsettled. True when it succeeded. */
  private async deliver(batch: NatsLogMessage[]): Promise<boolean> {
    try {
      await this.handler(batch);
      return true;
    } catch (error) {
      const unsettled = batch.filter((m) => !m.settled);
      this.log('warn', 'log batch handler failed; redelivering', {
        error: errorMessage(error),
        batch: batch.length,
        naked: unsettled.length,
        firstSeq: batch[0]?.seq,
      });
      for (const m of unsettled) m.nak(this.tuning.nakDelayMs);
      return false;
    }
  }
}
