/**
 * ClickHouse schema, as versioned migrations. Written for ClickHouse 18.16 (Debian's): no
 * LowCardinality, no DateTime64, no TTL, no query parameters, no `ADD COLUMN IF NOT EXISTS`.
 * The same SQL runs on current ClickHouse.
 */
import { AUDIT_COLUMNS, ColumnKind } from './audit-row.js';
import { sqlIdentifier } from './sql-string.js';

/** The events table. */
export const CLICKHOUSE_AUDIT_TABLE = 'audit_events';

/** Records which migrations ran. */
export const CLICKHOUSE_MIGRATIONS_TABLE = 'schema_migrations';

const CLICKHOUSE_TYPE: Record<ColumnKind, string> = {
  [ColumnKind.String]: 'String',
  [ColumnKind.StringArray]: 'Array(String)',
  [ColumnKind.DateTime]: 'DateTime',
  [ColumnKind.UInt8]: 'UInt8',
  [ColumnKind.UInt16]: 'UInt16',
  [ColumnKind.UInt32]: 'UInt32',
  [ColumnKind.UInt64]: 'UInt64',
};

/**
 * One schema step. Every statement must be idempotent (`IF NOT EXISTS`): writers starting at
 * once may both run a step before either records it.
 */
export interface ClickHouseMigration {
  /** Increasing; recorded in `schema_migrations` once applied. */
  readonly id: number;
  readonly name: string;
  /** The statements (one per HTTP request; ClickHouse runs one statement per query). */
  statements(database: string): readonly string[];
}

/** `db`.`table`, both checked as plain identifiers. */
export function qualified(database: string, table: string): string {
  return `${sqlIdentifier(database)}.${sqlIdentifier(table)}`;
}

/** DDL of the migrations table itself (created before the migrations run). */
export function migrationsTableDdl(database: string): string {
  // ReplacingMergeTree: two writers recording the same id at once collapse to one row.
  return `CREATE TABLE IF NOT EXISTS ${qualified(database, CLICKHOUSE_MIGRATIONS_TABLE)} (
  id UInt32,
  name String,
  applied_at DateTime
) ENGINE = ReplacingMergeTree()
ORDER BY id`;
}

/**
 * The migrations, in order. Append new ones at the end (issue #8 adds the SIEM view as id 2).
 *
 * The events table is a ReplacingMergeTree keyed so that a redelivered event (same row, same
 * key) collapses: ORDER BY ends in `event_id`. The key leads with `session_id, correlation_id`
 * so that a session's and a request's events are contiguous (replay reads a narrow range), and
 * `ts_ms` orders them in time within it. Time scans (tail) prune by the monthly partition on
 * `event_time`. Reads use FINAL, so duplicates not yet merged are never returned.
 */
export const CLICKHOUSE_MIGRATIONS: readonly ClickHouseMigration[] = [
  {
    id: 1,
    name: 'create audit_events',
    statements: (database) => [
      `CREATE TABLE IF NOT EXISTS ${qualified(database, CLICKHOUSE_AUDIT_TABLE)} (
${AUDIT_COLUMNS.map((c) => `  ${c.name} ${CLICKHOUSE_TYPE[c.kind]}`).join(',\n')}
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY (session_id, correlation_id, ts_ms, event_id)
SETTINGS index_granularity = 8192`,
    ],
  },
];
