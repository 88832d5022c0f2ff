/**
 * The bus ports: core request-reply and broadcast ({@link MessageBus}), the durable event log
 * ({@link EventLog}, JetStream in cluster mode) and a key-value store ({@link KeyValueStore},
 * NATS KV in cluster mode). Each has a NATS implementation and an in-process one for the
 * embedded mode; callers never know which one they hold.
 */

/** Headers carried with a message (NATS headers in cluster mode). */
export type BusHeaders = Readonly<Record<string, string>>;

/** A message received from the bus. */
export interface BusMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: BusHeaders;
}

/** Answers one request; the returned bytes are the reply. Throwing answers with an error. */
export type Responder = (msg: BusMessage) => Promise<Uint8Array> | Uint8Array;

/** A live subscription. */
export interface BusSubscription {
  /** Stops delivery; in-flight handlers finish. */
  unsubscribe(): Promise<void>;
}

/** Core messaging: request-reply with queue groups, and fire-and-forget broadcast. */
export interface MessageBus {
  /**
   * Sends a request and waits for one reply. Rejects with a {@link BusError}:
   * `timeout` when no reply came in time, `no_responders` when nobody serves the subject,
   * `unavailable` when the bus is disconnected, `remote` when the responder threw.
   */
  request(subject: string, data: Uint8Array, opts: { timeoutMs: number; headers?: BusHeaders }): Promise<BusMessage>;
  /** Serves requests on `subject`; members of the same `queue` share them, one answer each. */
  serve(subject: string, queue: string, responder: Responder): BusSubscription;
  /** Broadcasts to every subscriber; no acknowledgement. */
  publish(subject: string, data: Uint8Array, headers?: BusHeaders): void;
  /** Receives broadcasts on `subject` (NATS wildcards `*` and `>` allowed). */
  subscribe(subject: string, handler: (msg: BusMessage) => void): BusSubscription;
  /** Whether the bus is connected right now. */
  isConnected(): boolean;
  /** Drains and closes. */
  close(): Promise<void>;
}

/** The durable store's acknowledgement of an appended message. */
export interface AppendAck {
  readonly stream: string;
  readonly seq: number;
  /** True when the message id was already in the de-duplication window. */
  readonly duplicate: boolean;
}

/** One message handed to a log consumer. */
export interface LogMessage extends BusMessage {
  /** Stream sequence. */
  readonly seq: number;
  /** How many times this message has been delivered (1 the first time). */
  readonly deliveryCount: number;
  /** Marks the message done; it is never delivered again. */
  ack(): void;
  /** Asks for redelivery after `delayMs`. */
  nak(delayMs?: number): void;
  /** Tells the log the message is still being worked on (extends the ack deadline). */
  working(): void;
  /** Gives up on the message for good (after it was dead-lettered). */
  term(reason?: string): void;
}

/** Options of a durable, shared consumer. */
export interface ConsumeOptions {
  /** Durable consumer name; processes using the same name share the messages. */
  durable: string;
  /** Subject filter within the stream; default: all. */
  filterSubject?: string;
  /** Largest batch handed to the handler. */
  batchSize: number;
  /** Longest wait to fill a batch before handing over what there is. */
  maxWaitMs: number;
  /** How long a delivered, unacknowledged message stays invisible to other members. */
  ackWaitMs?: number;
}

/** A running consumer. */
export interface LogConsumer {
  /** Stops fetching; waits for the batch in hand to finish. */
  stop(): Promise<void>;
}

/**
 * What an {@link EventLog} offers of the full contract. JetStream and the in-process log offer
 * all of it ({@link FULL_EVENT_LOG_CAPABILITIES}); the embedded mode's SQLite audit log is the
 * audit store itself and offers less: one stream, audit events only, no durable consumers. The
 * bus conformance suite runs against every implementation with the capabilities it declares, and
 * checks the documented refusal where one is absent. Callers check a capability, not the mode.
 */
export interface EventLogCapabilities {
  /** `consume` runs durable consumers shared by name. Without: `consume` throws a BusError `unavailable`. */
  readonly durableConsumers: boolean;
  /**
   * `'any'`: the streams `ensureStream` creates. A list: the only streams the log holds, whatever
   * `ensureStream` is asked (another stream is refused with a BusError `unavailable`, as is an
   * append to a subject none of them captures).
   */
  readonly streams: 'any' | readonly string[];
  /**
   * `'any'`: `append` stores any bytes. `'event-envelopes'`: only encoded audit event envelopes;
   * other bytes are refused with the contracts' `EventDecodeError` (not a BusError), nothing stored.
   */
  readonly payloads: 'any' | 'event-envelopes';
}

/** The whole {@link EventLog} contract (JetStream, the in-process log). */
export const FULL_EVENT_LOG_CAPABILITIES: EventLogCapabilities = Object.freeze({ durableConsumers: true, streams: 'any', payloads: 'any' });

/**
 * The durable, de-duplicating event log (JetStream in cluster mode). An implementation that
 * offers less than what is written here declares it in {@link EventLog.capabilities}.
 */
export interface EventLog {
  /** What this log offers of the contract; absent means all of it ({@link FULL_EVENT_LOG_CAPABILITIES}). */
  readonly capabilities?: EventLogCapabilities;
  /**
   * Appends and waits for the durable acknowledgement. `msgId` de-duplicates retries within the
   * stream's window (the SQLite log: for ever, by message id and by event id). Rejects with a
   * {@link BusError} when no acknowledgement came or no stream captures the subject.
   */
  append(subject: string, data: Uint8Array, msgId: string, opts?: { timeoutMs?: number; headers?: BusHeaders }): Promise<AppendAck>;
  /**
   * Runs a durable consumer: the handler receives batches and acks each message itself
   * (after the data is safe elsewhere). A handler that throws naks the whole batch.
   * Only where {@link EventLogCapabilities.durableConsumers}.
   */
  consume(stream: string, opts: ConsumeOptions, handler: (batch: readonly LogMessage[]) => Promise<void>): LogConsumer;
  /**
   * Reads messages from `startSeq` (or from `startTimeMs`) on without a durable consumer, then
   * follows the stream (for tail/replay). `startTimeMs` is when the message was stored; the
   * SQLite audit log compares the event's own occurred-at time, which is when the edge sealed it.
   */
  read(
    stream: string,
    opts: { startSeq?: number; startTimeMs?: number; filterSubject?: string },
    handler: (msg: BusMessage & { seq: number }) => void,
  ): BusSubscription;
  /**
   * Reads every message stored right now whose subject matches `filterSubject` (from
   * `startTimeMs`, default the beginning), in sequence order, and resolves once it has caught up
   * with the end of the stream: the approval role rebuilds its projection from it.
   */
  snapshot(stream: string, opts: { startTimeMs?: number; filterSubject?: string }): Promise<(BusMessage & { seq: number })[]>;
  /**
   * Creates or updates the streams this process relies on. A log with a fixed list of
   * {@link EventLogCapabilities.streams} creates nothing: it resolves for those, refuses others.
   */
  ensureStream(spec: StreamSpec): Promise<void>;
}

/** A stream's durable settings. */
export interface StreamSpec {
  name: string;
  subjects: readonly string[];
  /** Keep messages this long (0 = forever). */
  maxAgeMs: number;
  /** De-duplication window for Nats-Msg-Id. */
  duplicateWindowMs: number;
  replicas: number;
  maxBytes?: number;
  /** Refuse deleting single messages (JetStream deny_delete; cannot be turned off again). */
  denyDelete?: boolean;
  /** Refuse purging the stream (JetStream deny_purge; cannot be turned off again). */
  denyPurge?: boolean;
  /**
   * Bring an existing stream's settings up to these (default true). False: create the stream
   * when it is missing, leave an existing one as it is (a role whose NATS user may not change
   * streams; the stream's owner updates it).
   */
  updateExisting?: boolean;
}

/** A versioned key-value bucket (NATS KV in cluster mode). */
export interface KeyValueStore {
  get(key: string): Promise<{ value: Uint8Array; revision: number } | undefined>;
  put(key: string, value: Uint8Array): Promise<number>;
  /** Calls the handler with the current value (if any) and then every change. */
  watch(key: string, handler: (entry: { value: Uint8Array; revision: number } | undefined) => void): BusSubscription;
}

/** Bus failure codes. */
export const BusErrorCode = {
  Timeout: 'timeout',
  NoResponders: 'no_responders',
  Unavailable: 'unavailable',
  Remote: 'remote',
  Closed: 'closed',
} as const;
export type BusErrorCode = (typeof BusErrorCode)[keyof typeof BusErrorCode];

/** The one error type of the bus: a code plus the cause. */
export class BusError extends Error {
  override readonly name = 'BusError';
  constructor(
    readonly code: BusErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
