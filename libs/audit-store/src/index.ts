/**
 * Audit store: the audit row mapping, the sinks (ClickHouse in cluster mode, SQLite in the
 * embedded mode), the embedded durable event log, the audit writer and `audit tail` formatting.
 */
export { AUDIT_COLUMNS, ColumnKind, toAuditRow } from './audit-row.js';
export type { AuditRow, AuditColumnName } from './audit-row.js';
export { DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT, queryLimit } from './audit-sink.port.js';
export type { AuditQuery, AuditSink } from './audit-sink.port.js';
export { sqlIdentifier, sqlString, sqlUInt } from './sql-string.js';
export {
  SQLITE_AUDIT_TABLE,
  SQLITE_MIGRATIONS,
  SqliteAuditSink,
  migrateSqliteAuditDatabase,
  openSqliteAuditDatabase,
} from './sqlite-audit-sink.js';
export type { SqliteAuditSinkOptions, SqliteDatabase } from './sqlite-audit-sink.js';
export { SqliteEventLog, subjectMatches } from './sqlite-event-log.js';
export type { SqliteEventLogOptions } from './sqlite-event-log.js';
export { formatAuditRow, formatAuditRowJson, formatBytes } from './audit-format.js';
export {
  CLICKHOUSE_AUDIT_TABLE,
  CLICKHOUSE_MIGRATIONS,
  CLICKHOUSE_MIGRATIONS_TABLE,
  migrationsTableDdl,
  qualified,
} from './clickhouse-migrations.js';
export type { ClickHouseMigration } from './clickhouse-migrations.js';
export { ClickHouseAuditSink, ClickHouseSinkError } from './clickhouse-audit-sink.js';
export type { ClickHouseAuditSinkOptions } from './clickhouse-audit-sink.js';
export { AuditWriter, eventLogDeadLetter } from './audit-writer.js';
export type { AuditWriterLogger, AuditWriterObserver, AuditWriterOptions, DeadLetter } from './audit-writer.js';
