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
  /**
   * Columns to add to a table when missing. 18.16 has no `ADD COLUMN IF NOT EXISTS`, so the sink
   * reads `system.columns` first and adds only what is absent (safe to re-run, and safe when
   * another writer added the column in between).
   */
  readonly addColumns?: { readonly table: string; readonly columns: readonly { readonly name: string; readonly type: string }[] };
}

/** The ClickHouse type of an audit column. */
export function clickHouseTypeOf(kind: ColumnKind): string {
  return CLICKHOUSE_TYPE[kind];
}

/** Audit columns added after the table was first created (issue 7: masked body excerpts). */
const BODY_COLUMNS = ['masked_fields', 'request_body_sha256', 'request_body_excerpt', 'response_body_sha256', 'response_body_excerpt'] as const;

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
 * The migrations, in order. Append new ones at the end (id 2 is reserved for issue #8's SIEM view).
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
  {
    id: 3,
    name: 'add masked body columns',
    statements: () => [],
    addColumns: {
      table: CLICKHOUSE_AUDIT_TABLE,
      columns: AUDIT_COLUMNS.filter((c) => (BODY_COLUMNS as readonly string[]).includes(c.name)).map((c) => ({ name: c.name, type: CLICKHOUSE_TYPE[c.kind] })),
    },
  },
];
