/**
 * The one recording event log of the tests: it forwards every call to a real log (in-process or
 * JetStream) and keeps what was appended, for assertions; its appends can be made to fail like an
 * append JetStream never acknowledged.
 */
import { BusError, type EventLog } from '@portcullis/bus';
import { auditMessageEvents, decodeEvent, type EventEnvelope } from '@portcullis/contracts';

/** One append as the log was asked for it. */
export interface RecordedAppend {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly msgId: string;
}

/** Options of {@link RecordingLog}. */
export interface RecordingLogOptions {
  /** Keep copies (default true); benches turn it off so a long run holds nothing. */
  readonly keep?: boolean;
  /** The error a failing append throws (default: a BusError `timeout`, "no ack"). */
  readonly failure?: () => Error;
}

/** An event log that keeps every append, and whose appends can be switched to fail. */
export class RecordingLog implements EventLog {
  /** Every append asked for, refused ones included, in order. */
  readonly attempts: RecordedAppend[] = [];
  /** Decoded copies of the events of every acknowledged append (group-commit batches expanded), in order. */
  readonly appended: EventEnvelope[] = [];
  /** The bytes of every acknowledged message, to search for values no event may hold. */
  readonly bytes: Buffer[] = [];
  /** While true, every append is refused with the configured failure before it reaches the log. */
  failing = false;
  private readonly keep: boolean;
  private readonly failure: () => Error;

  constructor(
    private readonly inner: EventLog,
    opts: RecordingLogOptions = {},
  ) {
    this.keep = opts.keep ?? true;
    this.failure = opts.failure ?? (() => new BusError('timeout', 'no ack'));
  }

  /** The wrapped log's: recording offers no more and no less. */
  get capabilities(): EventLog['capabilities'] {
    return this.inner.capabilities;
  }

  append: EventLog['append'] = async (subject, data, msgId, opts) => {
    if (this.keep) this.attempts.push({ subject, data, msgId });
    if (this.failing) throw this.failure();
    const ack = await this.inner.append(subject, data, msgId, opts);
    if (this.keep) {
      this.bytes.push(Buffer.from(data));
      for (const e of auditMessageEvents(subject, data)) this.appended.push(decodeEvent(e));
    }
    return ack;
  };
  consume: EventLog['consume'] = (...a) => this.inner.consume(...a);
  snapshot: EventLog['snapshot'] = (...a) => this.inner.snapshot(...a);
  read: EventLog['read'] = (...a) => this.inner.read(...a);
  ensureStream: EventLog['ensureStream'] = (s) => this.inner.ensureStream(s);
}
