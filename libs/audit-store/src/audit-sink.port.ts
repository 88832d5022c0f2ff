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

/**
 * Stores audit rows and reads them back. A redelivered event (same `event_id`) is never seen twice.
 * Also reads the hash chains back ({@link ChainReader}) and drops old months ({@link RetentionStore}).
 */
export interface AuditSink extends ChainReader, RetentionStore {
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

/** Which chains (or parts of chains) `audit verify` checks. Every set field must match. */
export interface ChainFilter {
  /** Chains with events of this session; only the positions from its first to its last event. */
  sessionId?: string;
  /** Chains with events of this request (Audit-Id); only the positions of its events. */
  correlationId?: string;
  /** Chains produced by this node. */
  nodeId?: string;
  /** Only chain positions whose events have `ts_ms >= sinceMs`. */
  sinceMs?: number;
  /** Only chain positions whose events have `ts_ms < untilMs`. */
  untilMs?: number;
}

/** One chain segment as the store holds it, restricted to a {@link ChainFilter}. */
export interface ChainSummary {
  chainId: string;
  nodeId: string;
  /** Lowest and highest `chain_seq` of the matching events. */
  minSeq: number;
  maxSeq: number;
  /** Matching rows (a duplicated position counts twice). */
  events: number;
}

/** Reads the hash chains back for `audit verify` (both sinks implement it). */
export interface ChainReader {
  /** The chains with matching events, ordered by chain id; events without a chain are left out. */
  chains(filter: ChainFilter): Promise<ChainSummary[]>;
  /** Rows of one chain with `fromSeq <= chain_seq <= toSeq`, ordered by (`chain_seq`, `event_id`). */
  chainRows(chainId: string, fromSeq: number, toSeq: number): Promise<AuditRow[]>;
  /** Rows without a chain (stored before chaining) matching the filter's time range. */
  unchainedCount(filter: ChainFilter): Promise<number>;
  /**
   * For each event type with chained rows, the time of its oldest chained row: from then on, a
   * row of that type without a chain was not stored before chaining.
   */
  chainingStarted(): Promise<{ type: string; sinceMs: number }[]>;
  /** Rows of `type` without a chain, with `ts_ms >= sinceMs`, matching the filter; at most `limit`, oldest first. */
  unchainedRows(filter: ChainFilter, type: string, sinceMs: number, limit: number): Promise<AuditRow[]>;
}

/** One month of stored events that a retention run may drop. */
export interface RetentionPartition {
  /** The month, `YYYYMM`. */
  id: string;
  rows: number;
  /** Newest event in it. */
  maxTsMs: number;
}

/** What a retention run drops: whole months entirely older than the cutoff. */
export interface RetentionPlan {
  store: 'clickhouse' | 'sqlite';
  cutoffMs: number;
  /** The start (UTC) of the month holding the cutoff: every event before it goes. */
  droppedBeforeMs: number;
  partitions: RetentionPartition[];
}

/** Retention by whole months (ClickHouse 18.16 has no TTL: partitions are dropped). */
export interface RetentionStore {
  /** The months entirely older than `cutoffMs`; changes nothing. */
  retentionPlan(cutoffMs: number): Promise<RetentionPlan>;
  /** Drops the plan's months. */
  applyRetention(plan: RetentionPlan): Promise<void>;
}

/** The start of the UTC month holding `ms`. */
export function monthStartUtc(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}
