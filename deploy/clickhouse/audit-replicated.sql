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

-- The audit writers' user: insert and read the audit tables, nothing else.
-- CREATE USER IF NOT EXISTS portcullis ON CLUSTER portcullis IDENTIFIED WITH sha256_password BY '…';
-- GRANT ON CLUSTER portcullis CREATE DATABASE, CREATE TABLE, SELECT, INSERT ON portcullis.* TO portcullis;
