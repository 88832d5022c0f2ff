/**
 * Audit store: the audit row mapping, the sinks (ClickHouse in cluster mode, SQLite in the
 * embedded mode), the embedded durable event log, the audit writer and `audit tail` formatting.
 */
// Everything the pure entry point exports (./pure.ts lists it), then what needs the heavier dependencies.
export * from './pure.js';
export { DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT, monthStartUtc, queryLimit } from './audit-sink.port.js';
export type { AuditQuery, AuditSink, ChainFilter, ChainReader, ChainSummary, RetentionPartition, RetentionPlan, RetentionStore } from './audit-sink.port.js';
export { FindingKind, formatVerifyReport, verifyAuditLog } from './audit-verify.js';
export type { ChainCheck, VerifyFinding, VerifyOptions, VerifyReport } from './audit-verify.js';
export { REPLAY_API_PREFIX, buildTimeline, formatReplayEvent, isReplayId, loadTimeline, payloadOf } from './audit-replay.js';
export type { ReplayEvent, ReplayTimeline } from './audit-replay.js';
export { OCSF_FLAT_COLUMNS, OCSF_VERSION, OcsfActivity, OcsfRequestMerger, ocsfActivity, ocsfFlat, ocsfRecord } from './audit-ocsf.js';
export type { OcsfFlat } from './audit-ocsf.js';
export { chainedRecorder, formatRetentionPlan, runRetention } from './audit-retention.js';
export type { RetentionRunOptions } from './audit-retention.js';
export { sqlIdentifier, sqlString, sqlUInt } from './sql-string.js';
export { SQLITE_AUDIT_TABLE, SQLITE_MIGRATIONS, SqliteAuditSink, migrateSqliteAuditDatabase, openSqliteAuditDatabase } from './sqlite-audit-sink.js';
export type { SqliteAuditSinkOptions, SqliteDatabase } from './sqlite-audit-sink.js';
export { SqliteEventLog } from './sqlite-event-log.js';
export type { SqliteEventLogOptions } from './sqlite-event-log.js';
export { auditRowTarget, cleanText, formatAuditRow, formatAuditRowJson, formatBytes } from './audit-format.js';
export {
  CLICKHOUSE_AUDIT_TABLE,
  CLICKHOUSE_MIGRATIONS,
  CLICKHOUSE_MIGRATIONS_TABLE,
  CLICKHOUSE_OCSF_VIEW,
  migrationsTableDdl,
  qualified,
} from './clickhouse-migrations.js';
export type { ClickHouseMigration } from './clickhouse-migrations.js';
export { ClickHouseAuditSink, ClickHouseSinkError } from './clickhouse-audit-sink.js';
export type { ClickHouseAuditSinkOptions } from './clickhouse-audit-sink.js';
export { AuditWriter, eventLogDeadLetter } from './audit-writer.js';
export type { AuditWriterLogger, AuditWriterObserver, AuditWriterOptions, DeadLetter } from './audit-writer.js';
