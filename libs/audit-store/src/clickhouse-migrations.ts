/**
 * ClickHouse schema, as versioned migrations. Written for ClickHouse 18.16 (Debian's): no
 * LowCardinality, no DateTime64, no TTL, no query parameters, no `ADD COLUMN IF NOT EXISTS`.
 * The same SQL runs on current ClickHouse.
 */
import { ColumnKind, columnsAddedIn, columnsOfVersion } from './audit-row.js';
import { sqlIdentifier } from './sql-string.js';

/** The events table. */
export const CLICKHOUSE_AUDIT_TABLE = 'audit_events';

/** The SIEM view: one OCSF API Activity row per request (see docs/ocsf.md). */
export const CLICKHOUSE_OCSF_VIEW = 'audit_requests_ocsf';

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
  [ColumnKind.Bytes]: 'String',
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
   * ClickHouse error codes that mean "already done" for a statement that has no IF NOT EXISTS on
   * 18.16 (e.g. 15 DUPLICATE_COLUMN for ADD COLUMN): a concurrent writer applied it first.
   */
  readonly alreadyAppliedCodes?: readonly string[];
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
 * The OCSF view, the SQL twin of `ocsfFlat` (audit-ocsf.ts): the request's events grouped by
 * correlation id, each OCSF field one named column. Reads with FINAL (no duplicates).
 */
function ocsfViewDdl(database: string): string {
  const isReq = "type IN ('request.received', 'request.rejected')";
  const req = (column: string): string => `anyIf(${column}, ${isReq})`;
  return `CREATE VIEW IF NOT EXISTS ${qualified(database, CLICKHOUSE_OCSF_VIEW)} AS
SELECT
  metadata_correlation_uid, time, end_time,
  toUInt32(6003) AS class_uid, toUInt32(6) AS category_uid,
  activity_id, toUInt32(600300 + activity_id) AS type_uid,
  toUInt32(if(failed, 3, 1)) AS severity_id,
  toUInt32(multiIf(failed, 2, has_com OR has_ret, 1, 0)) AS status_id,
  if(status > 0, toString(status), '') AS status_code,
  multiIf(has_rej, rej_message, decision_effect != '' AND decision_effect != 'allow', dec_message, has_com, com_error, ret_message) AS status_detail,
  metadata_correlation_uid AS metadata_uid,
  metadata_event_codes,
  actor_user_name, actor_user_groups, actor_app_name, actor_session_uid, actor_session_issuer, actor_session_credential_uid,
  multiIf(has_ret, 'audit.retention', verb != '', verb, method) AS api_operation,
  api_service_name, api_version, api_group_name, src_endpoint_ip,
  method AS http_request_http_method, http_request_user_agent, http_request_url_path,
  if(resource = '', '', if(subresource = '', resource, concat(resource, '/', subresource))) AS resource_type,
  resource_name, resource_namespace,
  decision_effect, decision_rule_id, decision_policy_version, decision_mask_profile, approval_id,
  bytes_in, bytes_out, duration_ms, node_id
FROM (
  SELECT
    *,
    toUInt32(multiIf(
      has_ret, 4,
      verb IN ('create'), 1, verb IN ('get', 'list', 'watch'), 2, verb IN ('update', 'patch'), 3, verb IN ('delete', 'deletecollection'), 4, verb != '', 99,
      method = 'POST', 1, method IN ('GET', 'HEAD'), 2, method IN ('PUT', 'PATCH'), 3, method = 'DELETE', 4, 0)) AS activity_id,
    has_rej OR (decision_effect != '' AND decision_effect != 'allow') OR (has_com AND (com_status >= 400 OR com_error != '')) AS failed,
    if(has_rej, rej_status, com_status) AS status
  FROM (
    SELECT
      if(correlation_id = '', event_id, correlation_id) AS metadata_correlation_uid,
      min(ts_ms) AS time,
      max(ts_ms) AS end_time,
      arraySort(groupUniqArray(type)) AS metadata_event_codes,
      countIf(${isReq}) > 0 AS has_req,
      countIf(type = 'request.rejected') > 0 AS has_rej,
      countIf(type = 'request.completed') > 0 AS has_com,
      countIf(type = 'audit.retention_applied') > 0 AS has_ret,
      ${req('verb')} AS verb,
      ${req('method')} AS method,
      ${req('subject')} AS actor_user_name,
      ${req('groups')} AS actor_user_groups,
      ${req('client_id')} AS actor_app_name,
      ${req('session_id')} AS actor_session_uid,
      ${req('issuer')} AS actor_session_issuer,
      ${req('token_id')} AS actor_session_credential_uid,
      if(has_req, ${req('connection')}, any(connection)) AS api_service_name,
      ${req('api_version')} AS api_version,
      ${req('api_group')} AS api_group_name,
      ${req('source_ip')} AS src_endpoint_ip,
      ${req('user_agent')} AS http_request_user_agent,
      ${req('path')} AS http_request_url_path,
      ${req('resource')} AS resource,
      ${req('subresource')} AS subresource,
      ${req('name')} AS resource_name,
      ${req('namespace')} AS resource_namespace,
      anyIf(effect, type = 'request.decided') AS decision_effect,
      anyIf(rule_id, type = 'request.decided') AS decision_rule_id,
      anyIf(policy_version, type = 'request.decided') AS decision_policy_version,
      anyIf(mask_profile, type = 'request.decided') AS decision_mask_profile,
      anyIf(approval_id, type = 'request.decided') AS approval_id,
      anyIf(decision_message, type = 'request.decided') AS dec_message,
      anyIf(decision_message, type = 'request.rejected') AS rej_message,
      anyIf(decision_message, type = 'audit.retention_applied') AS ret_message,
      anyIf(status, type = 'request.rejected') AS rej_status,
      anyIf(status, type = 'request.completed') AS com_status,
      anyIf(error, type = 'request.completed') AS com_error,
      anyIf(bytes_in, type = 'request.completed') AS bytes_in,
      anyIf(bytes_out, type = 'request.completed') AS bytes_out,
      anyIf(duration_ms, type = 'request.completed') AS duration_ms,
      if(has_req, ${req('node_id')}, any(node_id)) AS node_id
    FROM ${qualified(database, CLICKHOUSE_AUDIT_TABLE)} FINAL
    WHERE type LIKE 'request.%' OR type = 'audit.retention_applied'
    GROUP BY metadata_correlation_uid
  )
)`;
}

/**
 * The migrations, in order. Append new ones at the end.
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
${columnsOfVersion(1)
  .map((c) => `  ${c.name} ${CLICKHOUSE_TYPE[c.kind]}`)
  .join(',\n')}
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY (session_id, correlation_id, ts_ms, event_id)
SETTINGS index_granularity = 8192`,
    ],
  },
  {
    id: 2,
    name: 'hash chain columns (chain_id, chain_seq)',
    // 18.16 has no ADD COLUMN IF NOT EXISTS: "duplicate column" means another writer was first.
    alreadyAppliedCodes: ['15', '44'],
    statements: (database) =>
      columnsAddedIn(2).map((c) => `ALTER TABLE ${qualified(database, CLICKHOUSE_AUDIT_TABLE)} ADD COLUMN ${c.name} ${CLICKHOUSE_TYPE[c.kind]}`),
  },
  {
    id: 3,
    name: `SIEM view ${CLICKHOUSE_OCSF_VIEW} (OCSF API Activity per request)`,
    statements: (database) => [ocsfViewDdl(database)],
  },
  {
    id: 4,
    name: 'add masked body columns',
    statements: () => [],
    addColumns: {
      table: CLICKHOUSE_AUDIT_TABLE,
      columns: columnsAddedIn(4).map((c) => ({ name: c.name, type: CLICKHOUSE_TYPE[c.kind] })),
    },
  },
  {
    id: 5,
    // The signed protobuf instead of payload_json on new rows: the JSON is derived when read.
    name: 'add payload_pb (signed wire bytes)',
    statements: () => [],
    addColumns: {
      table: CLICKHOUSE_AUDIT_TABLE,
      columns: columnsAddedIn(5).map((c) => ({ name: c.name, type: CLICKHOUSE_TYPE[c.kind] })),
    },
  },
];
