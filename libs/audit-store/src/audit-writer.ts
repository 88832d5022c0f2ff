/**
 * The audit writer: drains the audit stream into an {@link AuditSink}. At-least-once from the
 * log, exactly-once as seen by queries (the sinks collapse redelivered events by id).
 */
import { createHash } from 'node:crypto';
import type { EventLog, LogConsumer, LogMessage } from '@portcullis/bus/pure';
import type { Logger } from '@portcullis/common';
import { BusHeaders, Consumers, Streams, Subjects, auditMessageEvents, decodeEvent } from '@portcullis/contracts';
import { toAuditRowOfWire, type AuditRow } from './audit-row.js';
import type { AuditSink } from './audit-sink.port.js';

/** Sends an undecodable message to the dead-letter subject, with the reason. */
export type DeadLetter = (data: Uint8Array, subject: string, reason: string) => Promise<void>;

/** The part of the process's {@link Logger} the writer reports through; structured fields, no event contents. */
export type AuditWriterLogger = Pick<Logger, 'info' | 'warn' | 'error'>;

/** Told what the writer did, for metrics and traces; every method is optional work. */
export interface AuditWriterObserver {
  /** A batch insert stored `rows` rows of `messages`, from `startedAtMs` to `endedAtMs` (epoch ms). */
  inserted(rows: number, messages: readonly LogMessage[], startedAtMs: number, endedAtMs: number): void;
  /** A batch insert failed (it is retried). */
  insertFailed(): void;
  /** An undecodable message went to the dead-letter stream. */
  deadLettered(): void;
}

/** Options of {@link AuditWriter}. */
export interface AuditWriterOptions {
  log: EventLog;
  sink: AuditSink;
  /** Default: {@link eventLogDeadLetter} on `log`. */
  deadLetter?: DeadLetter;
  /** Messages fetched per batch (default 1000). */
  batchSize?: number;
  /**
   * Most rows in one insert (default 100,000, about 100 MB of rows): a batch of group-committed
   * messages carries up to 512 events per message, so a batch of `batchSize` messages could
   * otherwise hold millions of rows at once. ClickHouse pays per insert (a new part of every
   * column, merged later), so the cap is large: smaller inserts cost it several times more per row.
   */
  maxInsertRows?: number;
  /** Longest wait to fill a batch (default 200 ms). */
  maxWaitMs?: number;
  /**
   * Inserts in flight at once (default 2): when a batch's insert is under way, the next batch is
   * decoded and inserted too, instead of waiting. It only matters when batches queue up (a backlog,
   * a high rate): a batch that comes every flush interval still finds the previous insert done.
   * Each batch is acked only after its own insert.
   */
  insertsInFlight?: number;
  logger: AuditWriterLogger;
  /** First retry delay after a failed insert (default 100 ms), doubled up to `maxBackoffMs`. */
  initialBackoffMs?: number;
  /** Longest retry delay (default 5 s); keep it well under the consumer's ack wait. */
  maxBackoffMs?: number;
  /** Durable consumer name (default {@link Consumers.auditWriter}). */
  durable?: string;
  /** Metrics and tracing hook. */
  observer?: AuditWriterObserver;
}

/**
 * A dead-letter sink that appends the original bytes to {@link Subjects.auditDeadLetter} with
 * the reason and original subject in headers. The message id is derived from the bytes, so a
 * redelivered bad message is dead-lettered once.
 */
export function eventLogDeadLetter(log: EventLog): DeadLetter {
  return async (data, subject, reason) => {
    const digest = createHash('sha256').update(subject).update('\0').update(data).digest('hex');
    await log.append(Subjects.auditDeadLetter(), data, `deadletter-${digest.slice(0, 40)}`, {
      headers: { [BusHeaders.deadLetterReason]: reason, [BusHeaders.deadLetterSubject]: subject },
    });
  };
}

/** Thrown inside the handler when the writer stops during a retry, so the batch is redelivered. */
class WriterStoppingError extends Error {
  override readonly name = 'WriterStoppingError';
}

/**
 * Consumes {@link Streams.audit} with a durable consumer and writes each batch to the sink in
 * one insert. A message is acknowledged only after its row is stored (or, if it cannot be
 * decoded, after it was dead-lettered); while the sink fails, the batch stays unacknowledged
 * and is retried with backoff, so events wait in the log until the sink is back.
 */
export class AuditWriter {
  readonly #log: EventLog;
  readonly #sink: AuditSink;
  readonly #deadLetter: DeadLetter;
  readonly #logger: AuditWriterLogger;
  readonly #batchSize: number;
  readonly #maxWaitMs: number;
  readonly #initialBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #durable: string;
  readonly #observer: AuditWriterObserver | undefined;
  readonly #maxInFlight: number;
  readonly #maxInsertRows: number;
  readonly #inFlight = new Set<Promise<void>>();
  #consumer: LogConsumer | undefined;
  #stopping = false;
  readonly #wakeUps = new Set<() => void>();
  #written = 0;
  #deadLettered = 0;

  constructor(options: AuditWriterOptions) {
    this.#log = options.log;
    this.#sink = options.sink;
    this.#deadLetter = options.deadLetter ?? eventLogDeadLetter(options.log);
    this.#logger = options.logger;
    this.#batchSize = options.batchSize ?? 1000;
    this.#maxWaitMs = options.maxWaitMs ?? 200;
    this.#initialBackoffMs = options.initialBackoffMs ?? 100;
    this.#maxBackoffMs = options.maxBackoffMs ?? 5000;
    this.#durable = options.durable ?? Consumers.auditWriter;
    this.#observer = options.observer;
    this.#maxInFlight = Math.max(1, Math.floor(options.insertsInFlight ?? 2));
    this.#maxInsertRows = Math.max(1, Math.floor(options.maxInsertRows ?? 100_000));
  }

  /** Rows stored and messages dead-lettered since start. */
  get stats(): { written: number; deadLettered: number } {
    return { written: this.#written, deadLettered: this.#deadLettered };
  }

  /** Starts consuming. The sink must be migrated. */
  start(): void {
    if (this.#consumer !== undefined) throw new Error('AuditWriter already started');
    this.#stopping = false;
    this.#consumer = this.#log.consume(Streams.audit.name, { durable: this.#durable, batchSize: this.#batchSize, maxWaitMs: this.#maxWaitMs }, (batch) =>
      this.#handle(batch),
    );
    this.#logger.info('audit writer started', { stream: Streams.audit.name, durable: this.#durable, insertsInFlight: this.#maxInFlight });
  }

  /** Stops consuming; a batch being retried is abandoned unacknowledged (it is redelivered). */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const wake of [...this.#wakeUps]) wake();
    const consumer = this.#consumer;
    this.#consumer = undefined;
    await consumer?.stop();
    // Inserts already sent finish (and ack); ones retrying gave up above and are redelivered.
    await Promise.allSettled([...this.#inFlight]);
  }

  /**
   * Decodes the batch into rows and inserts them, in chunks of at most `maxInsertRows` rows (a
   * batch of group-committed messages can hold far more events than messages). Each chunk is
   * inserted as soon as it is decoded (up to `insertsInFlight` at once) and its messages are acked
   * after that insert.
   */
  async #handle(batch: readonly LogMessage[]): Promise<void> {
    let rows: AuditRow[] = [];
    let seen = new Set<string>();
    let toAck: LogMessage[] = [];
    const flushChunk = async (): Promise<void> => {
      if (rows.length === 0 && toAck.length === 0) return;
      const chunk = rows;
      const acks = toAck;
      rows = [];
      seen = new Set<string>();
      toAck = [];
      await this.#store(chunk, acks);
    };
    for (const msg of batch) {
      // A message is one event, or a group-committed batch of them (audit._batch.events).
      let entries: Uint8Array[];
      try {
        entries = auditMessageEvents(msg.subject, msg.data);
      } catch (error) {
        await this.#deadLetterOne(msg, msg.data, error);
        msg.ack();
        continue;
      }
      for (const data of entries) {
        let row: AuditRow;
        try {
          row = toAuditRowOfWire(decodeEvent(data), data);
        } catch (error) {
          // One bad entry of a batch is dead-lettered alone; the others are stored.
          await this.#deadLetterOne(msg, data, error);
          continue;
        }
        // A redelivery inside one chunk is written once (across chunks, the store collapses it).
        if (!seen.has(row.event_id)) {
          seen.add(row.event_id);
          rows.push(row);
        }
      }
      toAck.push(msg);
      if (rows.length >= this.#maxInsertRows) await flushChunk();
    }
    await flushChunk();
  }

  /** Inserts one chunk and then acks its messages; returns once fewer than `insertsInFlight` inserts run. */
  async #store(rows: AuditRow[], toAck: LogMessage[]): Promise<void> {
    const stored = (async () => {
      if (rows.length > 0) await this.#insertWithRetry(rows, toAck);
      for (const msg of toAck) msg.ack();
      this.#written += rows.length;
    })();
    if (this.#maxInFlight === 1) return stored;
    // Runs on while the next chunk is decoded; a failure that ends it (the writer stopping
    // mid-retry) leaves its messages unacked, so they are redelivered.
    const tracked = stored.catch((error: unknown) => {
      if (!(error instanceof WriterStoppingError)) this.#logger.error('audit insert abandoned; its events stay in the log', { error: String(error) });
    });
    this.#inFlight.add(tracked);
    void tracked.finally(() => this.#inFlight.delete(tracked));
    // Back-pressure: at most #maxInFlight inserts at once.
    while (this.#inFlight.size >= this.#maxInFlight) await Promise.race(this.#inFlight);
  }

  /**
   * Dead-letters undecodable bytes first; the message is acked after, so if the dead-letter
   * append fails the handler throws, the batch is redelivered and nothing is dropped silently.
   */
  async #deadLetterOne(msg: LogMessage, data: Uint8Array, error: unknown): Promise<void> {
    const reason = error instanceof Error ? error.message : String(error);
    await this.#deadLetter(data, msg.subject, reason);
    this.#deadLettered++;
    this.#observer?.deadLettered();
    this.#logger.warn('audit event dead-lettered', { subject: msg.subject, seq: msg.seq, reason });
  }

  async #insertWithRetry(rows: AuditRow[], messages: readonly LogMessage[]): Promise<void> {
    let delay = this.#initialBackoffMs;
    for (let attempt = 1; ; attempt++) {
      try {
        const startedAtMs = Date.now();
        await this.#sink.insert(rows);
        this.#observer?.inserted(rows.length, messages, startedAtMs, Date.now());
        if (attempt > 1) this.#logger.info('audit sink recovered', { rows: rows.length, attempts: attempt });
        return;
      } catch (error) {
        this.#observer?.insertFailed();
        if (this.#stopping) throw new WriterStoppingError('audit writer stopped while the sink was failing', { cause: error });
        this.#logger.error('audit insert failed; retrying, events stay in the log', {
          rows: rows.length,
          attempt,
          retryInMs: delay,
          error: error instanceof Error ? error.message : String(error),
        });
      }
      for (const msg of messages) msg.working();
      await this.#pause(delay);
      if (this.#stopping) throw new WriterStoppingError('audit writer stopped while the sink was failing');
      delay = Math.min(delay * 2, this.#maxBackoffMs);
    }
  }

  /** Waits `ms`, or less if stop() is called (each insert in flight may be pausing). */
  #pause(ms: number): Promise<void> {
    let wake: (() => void) | undefined;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      wake = done;
      this.#wakeUps.add(done);
    }).finally(() => {
      if (wake !== undefined) this.#wakeUps.delete(wake);
    });
  }
}
