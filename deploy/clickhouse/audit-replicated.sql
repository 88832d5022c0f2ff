-- Portcullis audit schema, replicated variant, for a ClickHouse cluster named `portcullis`
-- (one shard, N replicas, ClickHouse Keeper or ZooKeeper configured, `{replica}` macro set on
-- every server). Run it once, as a user allowed to run ON CLUSTER DDL, BEFORE the first audit
-- writer starts:
--
--   clickhouse-client --multiquery < deploy/clickhouse/audit-replicated.sql
--
-- It is the same schema as libs/audit-store/src/clickhouse-migrations.ts (a test compares the
-- columns) with Replicated* engines. The writers' own migrations then find every table present
-- (CREATE TABLE IF NOT EXISTS) and migration 1 recorded, and change nothing. One shard is enough
-- for audit volumes (millions of rows a day); the ORDER BY key keeps a request's rows together,
-- and reads use FINAL so a redelivered event never shows twice, on any replica.

CREATE DATABASE IF NOT EXISTS portcullis ON CLUSTER portcullis;

CREATE TABLE IF NOT EXISTS portcullis.schema_migrations ON CLUSTER portcullis (
  id UInt32,
  name String,
  applied_at DateTime
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/portcullis/schema_migrations', '{replica}')
ORDER BY id;

CREATE TABLE IF NOT EXISTS portcullis.audit_events ON CLUSTER portcullis (
  event_id String,
  event_time DateTime,
  ts_ms UInt64,
  type String,
  schema_version UInt16,
  correlation_id String,
  causation_id String,
  session_id String,
  node_id String,
  connection String,
  subject String,
  groups Array(String),
  client_id String,
  issuer String,
  token_id String,
  verb String,
  api_group String,
  api_version String,
  resource String,
  subresource String,
  namespace String,
  name String,
  path String,
  method String,
  source_ip String,
  user_agent String,
  effect String,
  rule_id String,
  policy_version String,
  decision_message String,
  mask_profile String,
  approval_id String,
  decision_latency_us UInt32,
  status UInt16,
  reason String,
  bytes_in UInt64,
  bytes_out UInt64,
  duration_ms UInt32,
  forwarded UInt8,
  error String,
  prev_hash String,
  hash String,
  payload_json String
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/portcullis/audit_events', '{replica}')
PARTITION BY toYYYYMM(event_time)
ORDER BY (session_id, correlation_id, ts_ms, event_id)
SETTINGS index_granularity = 8192;

-- Record migration 1 as applied (replicated: inserted once, visible on every replica).
INSERT INTO portcullis.schema_migrations (id, name, applied_at) VALUES (1, 'create audit_events', now());

-- Later migrations, as the writers would apply them (kept in step with CLICKHOUSE_MIGRATIONS by test/deploy/manifests.test.ts).
-- Migration 2: hash chain columns (chain_id, chain_seq)
ALTER TABLE `portcullis`.`audit_events` ON CLUSTER portcullis ADD COLUMN chain_id String;
ALTER TABLE `portcullis`.`audit_events` ON CLUSTER portcullis ADD COLUMN chain_seq UInt64;

-- Migration 3: SIEM view audit_requests_ocsf (OCSF API Activity per request)
CREATE VIEW IF NOT EXISTS `portcullis`.`audit_requests_ocsf` ON CLUSTER portcullis AS
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
      countIf(type IN ('request.received', 'request.rejected')) > 0 AS has_req,
      countIf(type = 'request.rejected') > 0 AS has_rej,
      countIf(type = 'request.completed') > 0 AS has_com,
      countIf(type = 'audit.retention_applied') > 0 AS has_ret,
      anyIf(verb, type IN ('request.received', 'request.rejected')) AS verb,
      anyIf(method, type IN ('request.received', 'request.rejected')) AS method,
      anyIf(subject, type IN ('request.received', 'request.rejected')) AS actor_user_name,
      anyIf(groups, type IN ('request.received', 'request.rejected')) AS actor_user_groups,
      anyIf(client_id, type IN ('request.received', 'request.rejected')) AS actor_app_name,
      anyIf(session_id, type IN ('request.received', 'request.rejected')) AS actor_session_uid,
      anyIf(issuer, type IN ('request.received', 'request.rejected')) AS actor_session_issuer,
      anyIf(token_id, type IN ('request.received', 'request.rejected')) AS actor_session_credential_uid,
      if(has_req, anyIf(connection, type IN ('request.received', 'request.rejected')), any(connection)) AS api_service_name,
      anyIf(api_version, type IN ('request.received', 'request.rejected')) AS api_version,
      anyIf(api_group, type IN ('request.received', 'request.rejected')) AS api_group_name,
      anyIf(source_ip, type IN ('request.received', 'request.rejected')) AS src_endpoint_ip,
      anyIf(user_agent, type IN ('request.received', 'request.rejected')) AS http_request_user_agent,
      anyIf(path, type IN ('request.received', 'request.rejected')) AS http_request_url_path,
      anyIf(resource, type IN ('request.received', 'request.rejected')) AS resource,
      anyIf(subresource, type IN ('request.received', 'request.rejected')) AS subresource,
      anyIf(name, type IN ('request.received', 'request.rejected')) AS resource_name,
      anyIf(namespace, type IN ('request.received', 'request.rejected')) AS resource_namespace,
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
      if(has_req, anyIf(node_id, type IN ('request.received', 'request.rejected')), any(node_id)) AS node_id
    FROM `portcullis`.`audit_events` FINAL
    WHERE type LIKE 'request.%' OR type = 'audit.retention_applied'
    GROUP BY metadata_correlation_uid
  )
);

-- Migration 4: add masked body columns
ALTER TABLE portcullis.audit_events ON CLUSTER portcullis ADD COLUMN IF NOT EXISTS masked_fields UInt32;
ALTER TABLE portcullis.audit_events ON CLUSTER portcullis ADD COLUMN IF NOT EXISTS request_body_sha256 String;
ALTER TABLE portcullis.audit_events ON CLUSTER portcullis ADD COLUMN IF NOT EXISTS request_body_excerpt String;
ALTER TABLE portcullis.audit_events ON CLUSTER portcullis ADD COLUMN IF NOT EXISTS response_body_sha256 String;
ALTER TABLE portcullis.audit_events ON CLUSTER portcullis ADD COLUMN IF NOT EXISTS response_body_excerpt String;

-- Migration 5: add payload_pb (signed wire bytes); new rows store it instead of payload_json
ALTER TABLE portcullis.audit_events ON CLUSTER portcullis ADD COLUMN IF NOT EXISTS payload_pb String;

-- Record migrations 2.. as applied.
INSERT INTO portcullis.schema_migrations (id, name, applied_at) VALUES (2, 'hash chain columns (chain_id, chain_seq)', now());
INSERT INTO portcullis.schema_migrations (id, name, applied_at) VALUES (3, 'SIEM view audit_requests_ocsf (OCSF API Activity per request)', now());
INSERT INTO portcullis.schema_migrations (id, name, applied_at) VALUES (4, 'add masked body columns', now());
INSERT INTO portcullis.schema_migrations (id, name, applied_at) VALUES (5, 'add payload_pb (signed wire bytes)', now());

-- The audit writers' user: insert and read the audit tables, nothing else.
-- CREATE USER IF NOT EXISTS portcullis ON CLUSTER portcullis IDENTIFIED WITH sha256_password BY '…';
-- GRANT ON CLUSTER portcullis CREATE DATABASE, CREATE TABLE, SELECT, INSERT ON portcullis.* TO portcullis;
