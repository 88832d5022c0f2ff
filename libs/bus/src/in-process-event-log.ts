import { BusError, FULL_EVENT_LOG_CAPABILITIES } from './bus.port.js';
import type { AppendAck, BusHeaders, BusMessage, BusSubscription, ConsumeOptions, EventLog, LogConsumer, LogMessage, StreamSpec } from './bus.port.js';
import { errorMessage } from './error-message.js';
import type { Logger } from '@portcullis/common';
import { subjectMatches } from './subject-match.js';
import { WakeSignal, backoffMs } from './wake-signal.js';

interface StoredMessage {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: BusHeaders;
  readonly timeMs: number;
}

interface PendingDelivery {
  /** Deliveries so far. */
  count: number;
  /** When it becomes deliverable again (ack wait lapsed or nak delay over). */
  dueMs: number;
}

interface Durable {
  filter: string | undefined;
  ackWaitMs: number;
  /** Next stream sequence never delivered. */
  nextSeq: number;
  /** Delivered, not yet acked or termed. */
  readonly pending: Map<number, PendingDelivery>;
}

interface MemoryStream {
  spec: StreamSpec;
  /** messages[i].seq === firstSeq + i */
  messages: StoredMessage[];
  firstSeq: number;
  lastSeq: number;
  bytes: number;
  /** msgId → first seq and time, in insertion (= time) order. */
  readonly dedupe: Map<string, { seq: number; timeMs: number }>;
  readonly durables: Map<string, Durable>;
}

/** Tuning of the in-memory event log. */
export interface InProcessEventLogOptions {
  /** Delay before a message of a failed batch is redelivered. Default 500 ms. */
  readonly nakDelayMs?: number;
}

const DEFAULT_ACK_WAIT_MS = 30_000;

/**
 * {@link EventLog} in memory with JetStream semantics: sequences, a msgId de-duplication window,
 * max age and bytes limits, durable consumers shared by name with ack / nak / redelivery after
 * the ack wait, and ordered reads. Timers are unref'd and cleared on close.
 */
export class InProcessEventLog implements EventLog {
  readonly capabilities = FULL_EVENT_LOG_CAPABILITIES;
  private closed = false;
  private readonly streams = new Map<string, MemoryStream>();
  private readonly signal = new WakeSignal();
  private readonly running = new Set<{ stop(): Promise<void> }>();
  private readonly nakDelayMs: number;
  private timer: NodeJS.Timeout | undefined;
  private timerDueMs = Infinity;

  constructor(
    private readonly logger: Logger,
    opts: InProcessEventLogOptions = {},
  ) {
    this.nakDelayMs = opts.nakDelayMs ?? 500;
  }

  append(subject: string, data: Uint8Array, msgId: string, opts?: { timeoutMs?: number; headers?: BusHeaders }): Promise<AppendAck> {
    const what = `append to ${subject}`;
    if (this.closed) return Promise.reject(new BusError('closed', `${what} failed: the bus is closed`));
    const stream = this.streamFor(subject);
    if (stream === undefined) {
      return Promise.reject(new BusError('unavailable', `${what} failed: no stream for the subject`));
    }
    const now = Date.now();
    this.expire(stream, now);
    const seen = stream.dedupe.get(msgId);
    if (seen !== undefined) return Promise.resolve({ stream: stream.spec.name, seq: seen.seq, duplicate: true });
    const seq = ++stream.lastSeq;
    if (stream.messages.length === 0) stream.firstSeq = seq;
    const headers: BusHeaders = Object.freeze({ ...opts?.headers, 'Nats-Msg-Id': msgId });
    stream.messages.push({ seq, subject, data: data.slice(), headers, timeMs: now });
    stream.bytes += data.byteLength;
    stream.dedupe.set(msgId, { seq, timeMs: now });
    this.enforceLimits(stream);
    this.signal.notify();
    return Promise.resolve({ stream: stream.spec.name, seq, duplicate: false });
  }

  ensureStream(spec: StreamSpec): Promise<void> {
    if (this.closed) return Promise.reject(new BusError('closed', `ensure stream ${spec.name} failed: the bus is closed`));
    const copy: StreamSpec = { ...spec, subjects: [...spec.subjects] };
    const existing = this.streams.get(spec.name);
    if (existing !== undefined) {
      existing.spec = copy;
      this.enforceLimits(existing);
    } else {
      this.streams.set(spec.name, {
        spec: copy,
        messages: [],
        firstSeq: 1,
        lastSeq: 0,
        bytes: 0,
        dedupe: new Map(),
        durables: new Map(),
      });
    }
    this.signal.notify();
    return Promise.resolve();
  }

  consume(stream: string, opts: ConsumeOptions, handler: (batch: readonly LogMessage[]) => Promise<void>): LogConsumer {
    if (this.closed) throw new BusError('closed', `consume ${stream} failed: the bus is closed`);
    let stopped = false;
    const batchSize = Math.max(1, Math.floor(opts.batchSize));
    const run = async (): Promise<void> => {
      let failures = 0;
      while (!stopped) {
        const durable = this.durable(stream, opts);
        if (durable === undefined) {
          await this.signal.wait(); // the stream does not exist yet
          continue;
        }
        const batch = this.take(stream, durable, batchSize);
        if (batch.length === 0) {
          await this.signal.wait();
          continue;
        }
        if (batch.length < batchSize) {
          const deadline = Date.now() + opts.maxWaitMs;
          while (batch.length < batchSize && !stopped && Date.now() < deadline) {
            await this.signal.wait(deadline - Date.now());
            batch.push(...this.take(stream, durable, batchSize - batch.length));
          }
        }
        if (stopped) {
          for (const m of batch) m.nak(0);
          break;
        }
        try {
          await handler(batch);
          failures = 0;
        } catch (error) {
          const unsettled = batch.filter((m) => !m.settled);
          this.logger.warn('log batch handler failed; redelivering', {
            stream,
            durable: opts.durable,
            error: errorMessage(error),
            batch: batch.length,
            naked: unsettled.length,
          });
          for (const m of unsettled) m.nak(this.nakDelayMs);
          failures++;
          await this.signal.wait(backoffMs(failures, 5000));
        }
      }
    };
    const done = run().catch((error: unknown) => this.logger.error('log consumer crashed', { stream, error: errorMessage(error) }));
    const handle = {
      stop: async (): Promise<void> => {
        stopped = true;
        this.signal.notify();
        await done;
        this.running.delete(handle);
      },
    };
    this.running.add(handle);
    return handle;
  }

  read(
    streamName: string,
    opts: { startSeq?: number; startTimeMs?: number; filterSubject?: string },
    handler: (msg: BusMessage & { seq: number }) => void,
  ): BusSubscription {
    let stopped = false;
    let cursor: number | undefined;
    const run = async (): Promise<void> => {
      while (!stopped) {
        const stream = this.streams.get(streamName);
        if (stream !== undefined) {
          cursor ??= this.startSeq(stream, opts);
          cursor = Math.max(cursor, stream.firstSeq);
          while (!stopped && cursor <= stream.lastSeq) {
            const m = stream.messages[cursor - stream.firstSeq];
            cursor++;
            if (m === undefined || (opts.filterSubject !== undefined && !subjectMatches(opts.filterSubject, m.subject))) continue;
            try {
              handler({ subject: m.subject, data: m.data.slice(), headers: m.headers, seq: m.seq });
            } catch (error) {
              this.logger.error('log reader handler threw', { stream: streamName, seq: m.seq, error: errorMessage(error) });
            }
          }
        }
        if (!stopped) await this.signal.wait();
      }
    };
    const done = (async () => {
      await Promise.resolve(); // deliver asynchronously, like the wire
      await run();
    })();
    const handle = {
      stop: async (): Promise<void> => {
        stopped = true;
        this.signal.notify();
        await done;
        this.running.delete(handle);
      },
    };
    this.running.add(handle);
    return { unsubscribe: () => handle.stop() };
  }

  snapshot(streamName: string, opts: { startTimeMs?: number; filterSubject?: string }): Promise<(BusMessage & { seq: number })[]> {
    const stream = this.streams.get(streamName);
    if (stream === undefined) return Promise.resolve([]);
    const out: (BusMessage & { seq: number })[] = [];
    for (let seq = Math.max(this.startSeq(stream, opts), stream.firstSeq); seq <= stream.lastSeq; seq++) {
      const m = stream.messages[seq - stream.firstSeq];
      if (m === undefined || (opts.filterSubject !== undefined && !subjectMatches(opts.filterSubject, m.subject))) continue;
      out.push({ subject: m.subject, data: m.data.slice(), headers: m.headers, seq: m.seq });
    }
    return Promise.resolve(out);
  }

  /** Stops every consumer and reader and forgets the timers; appends fail with `closed`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.running].map((r) => r.stop()));
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private streamFor(subject: string): MemoryStream | undefined {
    for (const stream of this.streams.values()) {
      if (stream.spec.subjects.some((p) => subjectMatches(p, subject))) return stream;
    }
    return undefined;
  }

  private startSeq(stream: MemoryStream, opts: { startSeq?: number; startTimeMs?: number }): number {
    if (opts.startTimeMs !== undefined) {
      const startTimeMs = opts.startTimeMs;
      const first = stream.messages.find((m) => m.timeMs >= startTimeMs);
      return first?.seq ?? stream.lastSeq + 1;
    }
    return Math.max(1, opts.startSeq ?? 1);
  }

  private durable(streamName: string, opts: ConsumeOptions): Durable | undefined {
    const stream = this.streams.get(streamName);
    if (stream === undefined) return undefined;
    let durable = stream.durables.get(opts.durable);
    if (durable === undefined) {
      durable = { filter: opts.filterSubject, ackWaitMs: opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS, nextSeq: stream.firstSeq, pending: new Map() };
      stream.durables.set(opts.durable, durable);
    } else {
      // Like a consumer update: the latest member's settings win.
      durable.filter = opts.filterSubject;
      durable.ackWaitMs = opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
    }
    return durable;
  }

  /** Hands out up to `max` messages: due redeliveries first, then new ones. */
  private take(streamName: string, durable: Durable, max: number): InProcessLogMessage[] {
    const stream = this.streams.get(streamName);
    if (stream === undefined || max <= 0) return [];
    const now = Date.now();
    const out: InProcessLogMessage[] = [];
    const due = [...durable.pending.entries()].filter(([, p]) => p.dueMs <= now).sort(([a], [b]) => a - b);
    for (const [seq, p] of due) {
      if (out.length >= max) break;
      const m = stream.messages[seq - stream.firstSeq];
      if (m === undefined) {
        durable.pending.delete(seq); // aged out of the stream
        continue;
      }
      p.count++;
      p.dueMs = now + durable.ackWaitMs;
      out.push(new InProcessLogMessage(m, p.count, durable, this));
    }
    durable.nextSeq = Math.max(durable.nextSeq, stream.firstSeq);
    while (out.length < max && durable.nextSeq <= stream.lastSeq) {
      const m = stream.messages[durable.nextSeq - stream.firstSeq];
      durable.nextSeq++;
      if (m === undefined || (durable.filter !== undefined && !subjectMatches(durable.filter, m.subject))) continue;
      const p: PendingDelivery = { count: 1, dueMs: now + durable.ackWaitMs };
      durable.pending.set(m.seq, p);
      out.push(new InProcessLogMessage(m, 1, durable, this));
    }
    if (out.length > 0) this.wakeAt(now + durable.ackWaitMs);
    return out;
  }

  /** Called by messages when their pending state changed. */
  rescheduled(dueMs: number): void {
    this.signal.notify();
    this.wakeAt(dueMs);
  }

  /** Wakes the consumers when the earliest pending delivery falls due. */
  private wakeAt(dueMs: number): void {
    if (this.closed || dueMs >= this.timerDueMs) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerDueMs = dueMs;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerDueMs = Infinity;
        this.signal.notify();
        const now = Date.now();
        let next = Infinity;
        for (const s of this.streams.values())
          for (const d of s.durables.values()) for (const p of d.pending.values()) if (p.dueMs > now && p.dueMs < next) next = p.dueMs;
        if (next !== Infinity) this.wakeAt(next);
      },
      Math.max(0, dueMs - Date.now()),
    );
    this.timer.unref();
  }

  private expire(stream: MemoryStream, now: number): void {
    const window = stream.spec.duplicateWindowMs;
    for (const [id, entry] of stream.dedupe) {
      if (now - entry.timeMs < window) break;
      stream.dedupe.delete(id);
    }
    this.enforceLimits(stream, now);
  }

  private enforceLimits(stream: MemoryStream, now = Date.now()): void {
    const { maxAgeMs, maxBytes } = stream.spec;
    let drop = 0;
    while (drop < stream.messages.length) {
      const m = stream.messages[drop];
      if (m === undefined) break;
      const tooOld = maxAgeMs > 0 && now - m.timeMs > maxAgeMs;
      const tooBig = maxBytes !== undefined && maxBytes > 0 && stream.bytes > maxBytes;
      if (!tooOld && !tooBig) break;
      stream.bytes -= m.data.byteLength;
      drop++;
    }
    if (drop > 0) {
      stream.messages = stream.messages.slice(drop);
      stream.firstSeq += drop;
    }
  }
}

/** A delivered message; its ack / nak / working act on the durable's pending table. */
class InProcessLogMessage implements LogMessage {
  settled = false;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: BusHeaders;
  readonly seq: number;

  constructor(
    m: StoredMessage,
    readonly deliveryCount: number,
    private readonly durable: Durable,
    private readonly log: { rescheduled(dueMs: number): void },
  ) {
    this.subject = m.subject;
    this.data = m.data.slice();
    this.headers = m.headers;
    this.seq = m.seq;
  }

  ack(): void {
    this.settled = true;
    this.durable.pending.delete(this.seq);
  }

  nak(delayMs?: number): void {
    this.settled = true;
    this.reschedule(Date.now() + Math.max(0, delayMs ?? 0));
  }

  working(): void {
    this.reschedule(Date.now() + this.durable.ackWaitMs);
  }

  term(): void {
    this.settled = true;
    this.durable.pending.delete(this.seq);
  }

  private reschedule(dueMs: number): void {
    const p = this.durable.pending.get(this.seq);
    // Only the current delivery may move the deadline; a stale one was already given away.
    if (p === undefined || p.count !== this.deliveryCount) return;
    p.dueMs = dueMs;
    this.log.rescheduled(dueMs);
  }
}
