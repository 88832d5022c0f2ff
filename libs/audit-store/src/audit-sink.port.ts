/** The audit sink port: where audit rows are stored and read back (ClickHouse or SQLite). */
import type { AuditRow } from './audit-row.js';

/**
 * A filter over audit rows. Every set field must match; results are ordered by
 * (`ts_ms`, `event_id`) ascending, each event at most once.
 */
export interface AuditQuery {
  /** Only the rows of this request (its Audit-Id). */
  correlationId?: string;
  sessionId?: string;
  /** Event type, e.g. `request.completed`. */
  type?: string;
  connection?: string;
  /** Rows with `ts_ms >= sinceMs`. */
  sinceMs?: number;
  /** Rows with `ts_ms < untilMs`. */
  untilMs?: number;
  /**
   * Tail pagination: only rows after (`afterTsMs`, `afterEventId`) in result order. With only
   * `afterTsMs`, rows with `ts_ms > afterTsMs`.
   */
  afterTsMs?: number;
  afterEventId?: string;
  /** At most this many rows (default {@link DEFAULT_QUERY_LIMIT}). */
  limit?: number;
}

/** Rows a query returns when it sets no limit. */
export const DEFAULT_QUERY_LIMIT = 1000;

/** Largest limit a query may ask for. */
export const MAX_QUERY_LIMIT = 100_000;

/** Stores audit rows and reads them back. A redelivered event (same `event_id`) is never seen twice. */
export interface AuditSink {
  /** Creates or upgrades the schema; safe to run twice and from several processes at once. */
  migrate(): Promise<void>;
  /** Stores a batch; resolves only once the rows are durable. Re-inserting a row is harmless. */
  insert(rows: readonly AuditRow[]): Promise<void>;
  /** Rows matching the filter. */
  query(filter: AuditQuery): Promise<AuditRow[]>;
  /** How many distinct events match the filter (`limit` and pagination ignored). */
  count(filter: AuditQuery): Promise<number>;
  close(): Promise<void>;
}

/** The effective limit of a query: the default when unset; an error when out of range. */
export function queryLimit(filter: AuditQuery): number {
  const limit = filter.limit ?? DEFAULT_QUERY_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_QUERY_LIMIT) {
    throw new RangeError(`audit query limit must be an integer in 1..${MAX_QUERY_LIMIT}, got ${String(filter.limit)}`);
  }
  return limit;
}
