import { encodeEventBatch, newEventId, Subjects, type EventEnvelope } from '@portcullis/contracts';
import { AuditChain, SettledHeads, type ChainHead } from '@portcullis/audit-store/pure';
import type { EventLog } from '@portcullis/bus/pure';
import type { Logger } from '@portcullis/common';
import type { PortcullisMetrics } from '@portcullis/observability';
import { GatewayError, GatewayErrorCode } from './gateway-error.js';

/** Tuning of {@link AuditPublisher}'s background re-appends. */
export interface AuditPublisherOptions {
  /**
   * How long an event that could not be appended is retried in the background (default 120 s,
   * the stream's default duplicate window: within it a retry that races a late ack is stored once).
   */
  retryForMs?: number;
  /** Events waiting for a retry at most; beyond it new failures are logged as lost (default 50,000). */
  maxPendingRetries?: number;
  /** The chain to seal events with; default one {@link AuditChain} per node id, started lazily. */
  chain?: AuditChain;
  /** Counts appends the log did not acknowledge (`stage`: admission or background). */
  metrics?: PortcullisMetrics['edge'];
  /**
   * Group commit: the events recorded during one turn of the event loop (the events of every
   * request handled in it) go out as one message on `audit._batch.events`, and each caller waits
   * for the ack of the message holding its events. Off: one message per event. Use it where the
   * log pays per message (JetStream); the embedded SQLite log already commits a tick at a time.
   */
  groupCommit?: GroupCommitOptions;
}

/** Limits of one group-committed message. */
export interface GroupCommitOptions {
  /** Most events in one message (default 512). */
  readonly maxEvents?: number;
  /** Most encoded bytes in one message (default 256 KiB; NATS refuses messages over its max_payload, 1 MiB by default). */
  readonly maxBytes?: number;
  /**
   * How long an event recorded with `recordLater` (a completion: nobody waits for it) may wait to
   * ride in the next admission message instead of a message of its own (default 10 ms). Under a
   * steady load this halves the messages per request; when idle it goes out after the linger.
   */
  readonly lingerMs?: number;
}

/** One message for the log: a single event on its own subject, or a batch of them. */
interface Sealed {
  readonly events: readonly EventEnvelope[];
  readonly bytes: Uint8Array;
  readonly subject: string;
  /** Nats-Msg-Id: the event's id, or the batch's own id. */
  readonly msgId: string;
}

/** Events sealed by `recordLater`, waiting (at most the linger) for the next admission message. */
interface Lingering {
  readonly events: EventEnvelope[];
  readonly encoded: Uint8Array[];
  bytes: number;
  readonly timer: NodeJS.Timeout;
}

/** The batch being filled during this turn of the event loop. */
interface OpenBatch {
  readonly events: EventEnvelope[];
  readonly encoded: Uint8Array[];
  bytes: number;
  flushed: boolean;
  readonly acked: Promise<void>;
  settle: (err?: Error) => void;
}

/**
 * Appends audit events to the durable log. Every event is sealed into this process's hash chain
 * ({@link AuditChain}) first, in call order, so the chain order is the order the edge handled
 * events. `record` waits for every acknowledgement and fails closed; `recordLater` is for events
 * after the response (completion). An event whose append failed — also one whose request was
 * refused for it — is re-appended in the background with the same id and bytes, so that a short
 * JetStream outage leaves no gap in the chain; one still missing after `retryForMs` is logged
 * as lost (and `portcullis audit verify` reports the gap). With {@link AuditPublisherOptions.groupCommit}
 * the events of concurrent requests share one message (one ack for all; each waiter still fails
 * closed when the message holding its events is not acknowledged).
 */
export class AuditPublisher {
  private readonly retryForMs: number;
  private readonly maxPendingRetries: number;
  private readonly chains = new Map<string, AuditChain>();
  /** The chains' acknowledged heads, for the signed checkpoints. */
  private readonly heads = new SettledHeads();
  private pendingRetries = 0;
  private lostCount = 0;
  private readonly metrics: PortcullisMetrics['edge'] | undefined;
  private readonly group: { maxEvents: number; maxBytes: number; lingerMs: number } | undefined;
  private open: OpenBatch | undefined;
  private lingering: Lingering | undefined;
  /** Appends sent and not yet settled (so a shutdown can wait for them). */
  private readonly inFlight = new Set<Promise<unknown>>();

  /** Events given up after every retry (session frames included): a metric to alert on. */
  get lost(): number {
    return this.lostCount;
  }

  constructor(
    private readonly log: EventLog,
    private readonly ackTimeoutMs: number,
    private readonly logger: Logger,
    options: AuditPublisherOptions = {},
  ) {
    this.metrics = options.metrics;
    this.retryForMs = options.retryForMs ?? 120_000;
    this.maxPendingRetries = options.maxPendingRetries ?? 50_000;
    if (options.chain !== undefined) this.chains.set('', options.chain);
    const g = options.groupCommit;
    this.group = g === undefined ? undefined : { maxEvents: g.maxEvents ?? 512, maxBytes: g.maxBytes ?? 256 * 1024, lingerMs: g.lingerMs ?? 10 };
  }

  /** Appends the events and waits for all acks; GatewayError `audit_unavailable` otherwise. */
  async record(...events: EventEnvelope[]): Promise<void> {
    if (this.group !== undefined) {
      let waits: Promise<void>[] = [];
      for (const event of events) {
        const acked = this.enqueue(event);
        if (!waits.includes(acked)) waits = [...waits, acked];
      }
      try {
        await (waits.length === 1 ? waits[0] : Promise.all(waits));
      } catch (cause) {
        throw new GatewayError(GatewayErrorCode.AuditUnavailable, 'audit log unavailable: the request was not forwarded', { cause });
      }
      return;
    }
    const appends = events.map((event) => {
      const sealed = this.seal(event);
      return this.append(sealed).catch((err: unknown) => {
        this.metrics?.auditPublishFailures.inc(['admission']);
        this.retryLater(sealed, Date.now());
        throw err;
      });
    });
    try {
      await Promise.all(appends);
    } catch (cause) {
      throw new GatewayError(GatewayErrorCode.AuditUnavailable, 'audit log unavailable: the request was not forwarded', { cause });
    }
  }

  /** Appends without holding the caller; retried in the background, then logged loudly as lost. */
  recordLater(event: EventEnvelope): void {
    if (this.group !== undefined) {
      this.linger(event); // a failed message is retried in the background
      return;
    }
    const sealed = this.seal(event);
    this.append(sealed).catch(() => this.retryLater(sealed, Date.now()));
  }

  /**
   * Sends every event still waiting (lingering or in the open batch) and waits for the acks of
   * all appends in flight; failures stay with the background retry. For shutdown.
   */
  async flush(): Promise<void> {
    if (this.open !== undefined) this.flushBatch(this.open);
    this.flushLingering();
    await Promise.allSettled([...this.inFlight]);
  }

  /** The heads of this process's chains acknowledged since the last call (for the checkpointer). */
  takeChainHeads(): ChainHead[] {
    return this.heads.takeHeads();
  }

  /** Events currently waiting for a background retry. */
  get retrying(): number {
    return this.pendingRetries;
  }

  /**
   * Seals the event now (chain order = call order) and adds it to the open batch; the promise
   * settles with the ack of the message that carries it. A failed batch is retried in the
   * background as a whole (same id, same bytes), like a single event.
   */
  private enqueue(event: EventEnvelope): Promise<void> {
    const group = this.group!;
    const bytes = this.sealBytes(event);
    let batch = this.open;
    if (batch !== undefined && batch.events.length > 0 && batch.bytes + bytes.length > group.maxBytes) {
      this.flushBatch(batch);
      batch = undefined;
    }
    if (batch === undefined) {
      let settle!: (err?: Error) => void;
      const acked = new Promise<void>((resolve, reject) => {
        settle = (err) => (err === undefined ? resolve() : reject(err));
      });
      // Background-only batches (completions) have no waiter: their failure is handled by the retry.
      acked.catch(() => undefined);
      batch = { events: [], encoded: [], bytes: 0, flushed: false, acked, settle };
      this.open = batch;
      const scheduled = batch;
      // setImmediate, not a microtask: the requests whose I/O callbacks run in this turn join in.
      setImmediate(() => this.flushBatch(scheduled));
    }
    batch.events.push(event);
    batch.encoded.push(bytes);
    batch.bytes += bytes.length;
    const acked = batch.acked;
    if (batch.events.length >= group.maxEvents) this.flushBatch(batch);
    return acked;
  }

  /** Seals a completion now (chain order) and lets it wait for the next admission message. */
  private linger(event: EventEnvelope): void {
    const group = this.group!;
    const bytes = this.sealBytes(event);
    let waiting = this.lingering;
    if (waiting !== undefined && (waiting.bytes + bytes.length > group.maxBytes || waiting.events.length >= group.maxEvents)) {
      this.flushLingering();
      waiting = undefined;
    }
    if (waiting === undefined) {
      const timer = setTimeout(() => this.flushLingering(), group.lingerMs);
      // Shutdown flushes explicitly (flush()); the timer alone must not keep a process alive.
      timer.unref();
      waiting = this.lingering = { events: [], encoded: [], bytes: 0, timer };
    }
    waiting.events.push(event);
    waiting.encoded.push(bytes);
    waiting.bytes += bytes.length;
  }

  /** Sends the lingering events in a message of their own. */
  private flushLingering(): void {
    const waiting = this.takeLingering();
    if (waiting === undefined) return;
    this.send(this.message(waiting.events, waiting.encoded), undefined);
  }

  private takeLingering(): Lingering | undefined {
    const waiting = this.lingering;
    if (waiting === undefined) return undefined;
    this.lingering = undefined;
    clearTimeout(waiting.timer);
    return waiting;
  }

  private flushBatch(batch: OpenBatch): void {
    if (this.open === batch) this.open = undefined;
    // Already flushed (a limit flushed it before its setImmediate ran).
    if (batch.flushed) return;
    batch.flushed = true;
    let events: readonly EventEnvelope[] = batch.events;
    let encoded: readonly Uint8Array[] = batch.encoded;
    // Lingering completions ride along when they fit; the message stays in chain order.
    const waiting = this.lingering;
    if (waiting !== undefined && batch.bytes + waiting.bytes <= this.group!.maxBytes && batch.events.length + waiting.events.length <= this.group!.maxEvents) {
      this.takeLingering();
      ({ events, encoded } = mergeByChainSeq(waiting, batch));
    }
    this.send(this.message(events, encoded), batch);
  }

  private message(events: readonly EventEnvelope[], encoded: readonly Uint8Array[]): Sealed {
    return events.length === 1
      ? this.single(events[0]!, encoded[0]!)
      : { events, bytes: encodeEventBatch(encoded), subject: Subjects.auditBatch(), msgId: newEventId() };
  }

  /** Appends one message; its waiters (if any) settle with the ack, a failure goes to the background retry. */
  private send(sealed: Sealed, batch: OpenBatch | undefined): void {
    const sent = this.append(sealed).then(
      () => batch?.settle(),
      (err: unknown) => {
        this.retryLater(sealed, Date.now());
        batch?.settle(err instanceof Error ? err : new Error('append failed', { cause: err }));
      },
    );
    this.inFlight.add(sent);
    void sent.finally(() => this.inFlight.delete(sent));
  }

  private seal(event: EventEnvelope): Sealed {
    return this.single(event, this.sealBytes(event));
  }

  private single(event: EventEnvelope, bytes: Uint8Array): Sealed {
    return { events: [event], bytes, subject: Subjects.auditEvent(event.connection, event.type), msgId: event.id };
  }

  private sealBytes(event: EventEnvelope): Uint8Array {
    const key = this.chains.has('') ? '' : event.nodeId;
    let chain = this.chains.get(key);
    if (chain === undefined) {
      chain = new AuditChain(event.nodeId);
      this.chains.set(key, chain);
      this.logger.info('audit chain segment started', { chainId: chain.chainId });
    }
    return chain.seal(event);
  }

  private append(sealed: Sealed): Promise<unknown> {
    return this.log.append(sealed.subject, sealed.bytes, sealed.msgId, { timeoutMs: this.ackTimeoutMs }).then((ack) => {
      this.heads.settled(sealed.events);
      return ack;
    });
  }

  private retryLater(sealed: Sealed, firstFailureAt: number): void {
    if (this.pendingRetries >= this.maxPendingRetries) {
      this.giveUp(sealed, 'too many events waiting for a retry');
      return;
    }
    this.pendingRetries++;
    const attempt = (n: number): void => {
      // Same event id and bytes on every try: the stream's de-duplication keeps it once.
      const delay = Math.min(200 * 2 ** n, 5000);
      setTimeout(() => {
        this.append(sealed).then(
          () => {
            this.pendingRetries--;
          },
          () => {
            if (Date.now() - firstFailureAt + Math.min(200 * 2 ** (n + 1), 5000) > this.retryForMs) {
              this.pendingRetries--;
              this.giveUp(sealed, `not acknowledged for ${Math.round(this.retryForMs / 1000)}s`);
            } else {
              attempt(n + 1);
            }
          },
        );
      }, delay).unref();
    };
    attempt(0);
  }

  private giveUp(sealed: Sealed, why: string): void {
    this.heads.settled(sealed.events);
    this.lostCount += sealed.events.length;
    this.metrics?.auditPublishFailures.inc(['lost'], sealed.events.length);
    const first = sealed.events[0];
    const last = sealed.events.at(-1);
    this.logger.error('audit event could not be appended: it is lost, and audit verify will report a gap', {
      ...(sealed.events.length === 1 ? { eventId: first?.id, type: first?.type } : { batchId: sealed.msgId, events: sealed.events.length }),
      chainId: first?.chainId,
      chainSeq: sealed.events.length === 1 ? first?.chainSeq : `${first?.chainSeq}-${last?.chainSeq}`,
      why,
    });
  }
}

/** Two runs of sealed events merged into one, ordered by chain position (each run is in order already). */
function mergeByChainSeq(
  a: { readonly events: readonly EventEnvelope[]; readonly encoded: readonly Uint8Array[] },
  b: { readonly events: readonly EventEnvelope[]; readonly encoded: readonly Uint8Array[] },
): { events: EventEnvelope[]; encoded: Uint8Array[] } {
  const events: EventEnvelope[] = [];
  const encoded: Uint8Array[] = [];
  let i = 0;
  let j = 0;
  while (i < a.events.length || j < b.events.length) {
    const takeA = j >= b.events.length || (i < a.events.length && a.events[i]!.chainSeq <= b.events[j]!.chainSeq);
    if (takeA) {
      events.push(a.events[i]!);
      encoded.push(a.encoded[i++]!);
    } else {
      events.push(b.events[j]!);
      encoded.push(b.encoded[j++]!);
    }
  }
  return { events, encoded };
}
