/**
 * The embedded mode's audit {@link EventLog}: an append is durable once it returns, because it
 * *is* the insert into the SQLite audit store. Appends that arrive in the same tick share one
 * transaction (group commit), so a burst costs one fsync, and every caller's promise resolves
 * only after that commit.
 *
 * It passes the bus conformance suite with a narrower contract, declared in
 * {@link SqliteEventLog.capabilities}: one stream ({@link Streams.audit}), audit event envelopes
 * only, no durable consumers (nothing needs one: the append already stored the row). Beyond that:
 * de-duplication holds for ever (message id and event id), not for a window; `startTimeMs`
 * compares the event's occurred-at time; stream settings (max age, replicas) are not its business
 * (the audit retention job deletes old rows).
 */
import { fromJsonString } from '@bufbuild/protobuf';
import type Database from 'better-sqlite3';
import type {
  AppendAck,
  BusHeaders as BusHeaderMap,
  BusMessage,
  BusSubscription,
  ConsumeOptions,
  EventLog,
  EventLogCapabilities,
  LogConsumer,
  LogMessage,
  StreamSpec,
} from '@portcullis/bus/pure';
import { BusError, subjectMatches } from '@portcullis/bus/pure';
import { BusHeaders, EventDecodeError, EventEnvelopeSchema, Streams, decodeEvent, encodeEvent } from '@portcullis/contracts';
import { toAuditRowOfWire } from './audit-row.js';
import {
  SQLITE_AUDIT_TABLE,
  SqliteAuditSink,
  prepareSqliteInsert,
  sqliteInsertParams,
  type SqliteAuditInsert,
  type SqliteDatabase,
} from './sqlite-audit-sink.js';

/** Options of {@link SqliteEventLog.open}. */
export interface SqliteEventLogOptions {
  /** The SQLite file (created when missing); or pass `sink` to share an open store. */
  path?: string;
  sink?: SqliteAuditSink;
  /** How often `read()` looks for rows written by other processes (default 250 ms). */
  pollIntervalMs?: number;
}

interface PendingAppend {
  readonly params: SqliteAuditInsert;
  readonly msgId: string;
  readonly eventId: string;
  readonly resolve: (ack: AppendAck) => void;
  readonly reject: (error: unknown) => void;
}

interface StoredMessage {
  seq: number;
  bus_subject: string;
  headers_json: string;
  data: Buffer | null;
  payload_json: string;
  payload_pb: Buffer | null;
}

const READ_PAGE = 256;

/**
 * The audit stream ({@link Streams.audit}) kept in SQLite. Holds only audit events: an append
 * that is not a decodable event envelope is rejected (the edge then fails closed).
 */
export class SqliteEventLog implements EventLog {
  /** What it offers of the {@link EventLog} contract (see the module comment). */
  static readonly capabilities: EventLogCapabilities = Object.freeze({
    durableConsumers: false,
    streams: Object.freeze([Streams.audit.name]),
    payloads: 'event-envelopes',
  });
  readonly capabilities = SqliteEventLog.capabilities;
  /** The store behind the log, for queries (`audit tail`, replay). */
  readonly sink: SqliteAuditSink;
  readonly #ownsSink: boolean;
  readonly #db: SqliteDatabase;
  readonly #insert: Database.Statement<[SqliteAuditInsert]>;
  readonly #findExisting: Database.Statement<[string, string], { seq: number }>;
  readonly #pollIntervalMs: number;
  #pending: PendingAppend[] = [];
  #flushScheduled = false;
  #commits = 0;
  #closed = false;
  readonly #readers = new Set<() => void>();
  readonly #stops = new Set<() => void>();

  private constructor(sink: SqliteAuditSink, ownsSink: boolean, pollIntervalMs: number) {
    this.sink = sink;
    this.#ownsSink = ownsSink;
    this.#db = sink.database;
    this.#insert = prepareSqliteInsert(this.#db);
    this.#findExisting = this.#db.prepare<[string, string], { seq: number }>(
      `SELECT seq FROM ${SQLITE_AUDIT_TABLE} WHERE msg_id = ? OR event_id = ? ORDER BY seq LIMIT 1`,
    );
    this.#pollIntervalMs = pollIntervalMs;
  }

  /** Opens the store, applies its migrations and returns the log. */
  static async open(options: SqliteEventLogOptions): Promise<SqliteEventLog> {
    const pollIntervalMs = options.pollIntervalMs ?? 250;
    if (options.sink !== undefined) {
      await options.sink.migrate();
      return new SqliteEventLog(options.sink, false, pollIntervalMs);
    }
    if (options.path === undefined) throw new TypeError('SqliteEventLog.open needs a path or a sink');
    const sink = new SqliteAuditSink({ path: options.path });
    try {
      await sink.migrate();
    } catch (error) {
      await sink.close();
      throw error;
    }
    return new SqliteEventLog(sink, true, pollIntervalMs);
  }

  /** Transactions committed so far (a group commit counts once). */
  get commits(): number {
    return this.#commits;
  }

  /**
   * Decodes the event, and stores its row together with the other appends of this tick in one
   * transaction. Resolves with the row id as `seq` once committed; a message id (or event id)
   * already stored resolves with `duplicate: true` and the first copy's `seq`. Rejects with an
   * {@link EventDecodeError} for bytes that are not an event, and a {@link BusError} when the
   * store cannot commit.
   */
  append(subject: string, data: Uint8Array, msgId: string, opts?: { timeoutMs?: number; headers?: BusHeaderMap }): Promise<AppendAck> {
    if (this.#closed) return Promise.reject(new BusError('closed', 'the embedded audit log is closed'));
    if (!Streams.audit.subjects.some((pattern) => subjectMatches(pattern, subject))) {
      return Promise.reject(
        new BusError(
          'unavailable',
          `append to ${subject} failed: no stream captures the subject (the embedded audit log holds only ${Streams.audit.name}, ${Streams.audit.subjects.join(', ')})`,
        ),
      );
    }
    let params: SqliteAuditInsert;
    let eventId: string;
    try {
      const event = decodeEvent(data);
      eventId = event.id;
      const copy = Buffer.from(data); // a copy: the caller may reuse its buffer before the commit
      params = sqliteInsertParams(toAuditRowOfWire(event, copy), {
        msgId,
        subject,
        // Stored like JetStream keeps it: the message id travels as a header.
        headers: { ...opts?.headers, [BusHeaders.msgId]: msgId },
        data: copy,
      });
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      return Promise.reject(new EventDecodeError(`embedded audit log refused message ${msgId} on ${subject}: ${reason}`, { cause }));
    }
    return new Promise<AppendAck>((resolve, reject) => {
      this.#pending.push({ params, msgId, eventId, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        // setImmediate, not a microtask: appends made by callbacks of this tick's I/O join in.
        setImmediate(() => this.#flush());
      }
    });
  }

  /** The embedded mode has no durable consumers: the append already stored the row. */
  consume(stream: string, _opts: ConsumeOptions, _handler: (batch: readonly LogMessage[]) => Promise<void>): LogConsumer {
    throw new BusError('unavailable', `consume(${stream}) is not supported in embedded mode: appends are written to the audit store directly`);
  }

  /**
   * Delivers stored messages from `startSeq` (or the first event at or after `startTimeMs`;
   * default: the beginning) in `seq` order, then new ones as they are committed here or, polled
   * every `pollIntervalMs`, by other processes on the same file.
   */
  read(
    stream: string,
    opts: { startSeq?: number; startTimeMs?: number; filterSubject?: string },
    handler: (msg: BusMessage & { seq: number }) => void,
  ): BusSubscription {
    if (stream !== Streams.audit.name) {
      throw new BusError('unavailable', `the embedded audit log holds only ${Streams.audit.name}, not ${stream}`);
    }
    if (this.#closed) throw new BusError('closed', 'the embedded audit log is closed');
    let last = this.#startAfter(opts);
    const page = this.#db.prepare<[number], StoredMessage>(
      `SELECT seq, bus_subject, headers_json, data, payload_json, payload_pb FROM ${SQLITE_AUDIT_TABLE} WHERE seq > ? ORDER BY seq LIMIT ${READ_PAGE}`,
    );
    let active = true;
    const pump = (): void => {
      while (active && this.#db.open) {
        const rows = page.all(last);
        for (const row of rows) {
          last = row.seq;
          if (opts.filterSubject !== undefined && !subjectMatches(opts.filterSubject, row.bus_subject)) continue;
          try {
            handler(toBusMessage(row));
          } catch {
            // A reader's failure is its own; it must not stop the tail or reach the writer.
          }
          if (!active) return;
        }
        if (rows.length < READ_PAGE) return;
      }
    };
    const timer = setInterval(pump, this.#pollIntervalMs);
    const stop = (): void => {
      active = false;
      clearInterval(timer);
      this.#readers.delete(pump);
      this.#stops.delete(stop);
    };
    this.#readers.add(pump);
    this.#stops.add(stop);
    setImmediate(pump);
    return {
      unsubscribe: () => {
        stop();
        return Promise.resolve();
      },
    };
  }

  /** Every stored message matching the filter, in `seq` order (commits what is pending first). */
  snapshot(stream: string, opts: { startTimeMs?: number; filterSubject?: string }): Promise<(BusMessage & { seq: number })[]> {
    if (stream !== Streams.audit.name) return Promise.resolve([]);
    if (this.#closed) return Promise.reject(new BusError('closed', 'the embedded audit log is closed'));
    this.#flush();
    // GLOB with `*` for each wildcard is a superset of the NATS filter (it also crosses dots):
    // SQLite drops most rows, the exact match below the rest.
    const glob = opts.filterSubject === undefined ? '*' : opts.filterSubject.replace(/[[\]?]/g, '?').replace(/>/g, '*');
    const rows = this.#db
      .prepare<[number, string], StoredMessage>(
        `SELECT seq, bus_subject, headers_json, data, payload_json, payload_pb FROM ${SQLITE_AUDIT_TABLE} WHERE seq > ? AND bus_subject GLOB ? ORDER BY seq`,
      )
      .all(this.#startAfter(opts), glob);
    return Promise.resolve(rows.filter((row) => opts.filterSubject === undefined || subjectMatches(opts.filterSubject, row.bus_subject)).map(toBusMessage));
  }

  /** Nothing to create for the audit stream: the table exists once the log is open. Any other stream is refused. */
  ensureStream(spec: StreamSpec): Promise<void> {
    if (spec.name !== Streams.audit.name) {
      return Promise.reject(new BusError('unavailable', `ensureStream(${spec.name}) failed: the embedded audit log holds only ${Streams.audit.name}`));
    }
    return Promise.resolve();
  }

  /** Commits what is pending, stops readers and closes the store if this log opened it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    for (const stop of [...this.#stops]) stop();
    if (this.#ownsSink) await this.sink.close();
  }

  #startAfter(opts: { startSeq?: number; startTimeMs?: number }): number {
    if (opts.startSeq !== undefined) return Math.max(0, opts.startSeq - 1);
    if (opts.startTimeMs !== undefined) {
      const first = this.#db
        .prepare<[number], { seq: number | null }>(`SELECT min(seq) AS seq FROM ${SQLITE_AUDIT_TABLE} WHERE ts_ms >= ?`)
        .get(opts.startTimeMs);
      if (first?.seq != null) return first.seq - 1;
      const max = this.#db.prepare<[], { seq: number | null }>(`SELECT max(seq) AS seq FROM ${SQLITE_AUDIT_TABLE}`).get();
      return max?.seq ?? 0;
    }
    return 0;
  }

  #flush(): void {
    this.#flushScheduled = false;
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    let acks: AppendAck[];
    try {
      acks = this.#db.transaction(() =>
        batch.map((append): AppendAck => {
          const result = this.#insert.run(append.params);
          if (result.changes === 1) {
            return { stream: Streams.audit.name, seq: Number(result.lastInsertRowid), duplicate: false };
          }
          const existing = this.#findExisting.get(append.msgId, append.eventId);
          return { stream: Streams.audit.name, seq: existing?.seq ?? 0, duplicate: true };
        }),
      )();
    } catch (cause) {
      const error = new BusError('unavailable', `the embedded audit store could not commit: ${(cause as Error).message}`, { cause });
      for (const append of batch) append.reject(error);
      return;
    }
    this.#commits++;
    batch.forEach((append, i) => append.resolve(acks[i]!));
    for (const reader of this.#readers) setImmediate(reader);
  }
}

function toBusMessage(row: StoredMessage): BusMessage & { seq: number } {
  // Rows stored by the sink (not through append) have no bus bytes: their signed bytes, or (rows
  // from before payload_pb) the canonical JSON encoded again.
  const data =
    row.data ?? (row.payload_pb !== null && row.payload_pb.length > 0 ? row.payload_pb : encodeEvent(fromJsonString(EventEnvelopeSchema, row.payload_json)));
  return {
    seq: row.seq,
    subject: row.bus_subject,
    headers: JSON.parse(row.headers_json) as BusHeaderMap,
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}
