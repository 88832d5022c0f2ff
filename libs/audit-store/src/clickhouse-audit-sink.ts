/**
 * The cluster mode's audit sink: ClickHouse over HTTP with `@clickhouse/client`.
 *
 * Compatibility with ClickHouse 18.16 (checked with @clickhouse/client 1.23): the client's
 * HTTP requests work as they are (it sends no settings unless asked; gzip request/response
 * compression, `send_progress_in_http_headers` and `output_format_json_quote_64bit_integers`
 * are all understood by 18.16). What does NOT work is `query_params`: 18.16 answers
 * "Unknown setting param_x", so every value in a query goes through {@link sqlString} /
 * {@link sqlUInt}. Compression is off: the sink talks to a nearby server and gzip costs more
 * CPU than it saves there.
 */
import { Readable } from 'node:stream';
import { ClickHouseError, ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { AUDIT_COLUMNS, ColumnKind, withPayloadJson, type AuditRow } from './audit-row.js';
import { encodeRowBinary } from './clickhouse-row-binary.js';
import { monthStartUtc, queryLimit, type AuditQuery, type AuditSink, type ChainFilter, type ChainSummary, type RetentionPlan } from './audit-sink.port.js';
import {
  CLICKHOUSE_AUDIT_TABLE,
  CLICKHOUSE_MIGRATIONS,
  CLICKHOUSE_MIGRATIONS_TABLE,
  migrationsTableDdl,
  qualified,
  type ClickHouseMigration,
} from './clickhouse-migrations.js';
import { sqlIdentifier, sqlString, sqlUInt } from './sql-string.js';

/** Options of {@link ClickHouseAuditSink}. */
export interface ClickHouseAuditSinkOptions {
  /** HTTP interface, e.g. `http://127.0.0.1:8123`. */
  url: string;
  /** Database holding the audit tables (created by `migrate()`); a plain identifier. */
  database: string;
  username?: string;
  password?: string;
  /** Per-request timeout (default 30 s). */
  requestTimeoutMs?: number;
  /** Migrations to apply (default {@link CLICKHOUSE_MIGRATIONS}); for tests and extensions. */
  migrations?: readonly ClickHouseMigration[];
}

// Read back as numbers; derived from ts_ms rather than parsing the server-timezone DateTime text.
const SELECT_COLUMNS = AUDIT_COLUMNS.filter((c) => c.kind !== ColumnKind.DateTime).map((c) => c.name);
// Bytes travel as hex: JSON output cannot carry arbitrary bytes, and 18.16 has no base64Encode.
const SELECT_LIST = AUDIT_COLUMNS.filter((c) => c.kind !== ColumnKind.DateTime)
  .map((c) => (c.kind === ColumnKind.Bytes ? `hex(${c.name}) AS ${c.name}` : c.name))
  .join(', ');
const BYTES = new Set<string>(AUDIT_COLUMNS.filter((c) => c.kind === ColumnKind.Bytes).map((c) => c.name));
const NUMERIC = new Set<string>(
  AUDIT_COLUMNS.filter((c) => c.kind !== ColumnKind.String && c.kind !== ColumnKind.StringArray && c.kind !== ColumnKind.Bytes).map((c) => c.name),
);
const INSERT_COLUMNS = AUDIT_COLUMNS.map((c) => c.name).join(', ');

/** A failure talking to ClickHouse, with the operation in the message and the client error as cause. */
export class ClickHouseSinkError extends Error {
  override readonly name = 'ClickHouseSinkError';
}

/** Stores audit rows in ClickHouse; reads with FINAL so a redelivered event is seen once. */
export class ClickHouseAuditSink implements AuditSink {
  readonly #client: ClickHouseClient;
  readonly #database: string;
  readonly #table: string;
  readonly #migrations: readonly ClickHouseMigration[];

  constructor(options: ClickHouseAuditSinkOptions) {
    sqlIdentifier(options.database); // fail fast on a bad name
    this.#database = options.database;
    this.#table = qualified(options.database, CLICKHOUSE_AUDIT_TABLE);
    this.#migrations = options.migrations ?? CLICKHOUSE_MIGRATIONS;
    // No `database` on the client: it would be sent with CREATE DATABASE before it exists.
    this.#client = createClient({
      url: options.url,
      username: options.username ?? 'default',
      password: options.password ?? '',
      request_timeout: options.requestTimeoutMs ?? 30_000,
      compression: { request: false, response: false },
      clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
      // Failures reach the caller as ClickHouseSinkError (and the writer's log); no second report.
      log: { level: ClickHouseLogLevel.OFF },
    });
  }

  /**
   * Creates the database and migrations table, then applies each migration not yet recorded.
   * Idempotent; concurrent callers may both run a step (its statements are IF NOT EXISTS) and
   * both record it (the ReplacingMergeTree collapses the record).
   */
  async migrate(): Promise<void> {
    await this.#command(`CREATE DATABASE IF NOT EXISTS ${sqlIdentifier(this.#database)}`, 'create database');
    await this.#command(migrationsTableDdl(this.#database), 'create migrations table');
    const applied = new Set((await this.appliedMigrations()).map((m) => m.id));
    for (const migration of [...this.#migrations].sort((a, b) => a.id - b.id)) {
      if (applied.has(migration.id)) continue;
      for (const statement of migration.statements(this.#database)) {
        try {
          await this.#command(statement, `migration ${migration.id} (${migration.name})`);
        } catch (error) {
          const code = clickHouseErrorCode(error);
          if (code === undefined || !(migration.alreadyAppliedCodes ?? []).includes(code)) throw error;
        }
      }
      if (migration.addColumns !== undefined) await this.#addMissingColumns(migration.addColumns, `migration ${migration.id} (${migration.name})`);
      await this.#command(
        `INSERT INTO ${qualified(this.#database, CLICKHOUSE_MIGRATIONS_TABLE)} (id, name, applied_at) VALUES (${sqlUInt(migration.id)}, ${sqlString(migration.name)}, now())`,
        `record migration ${migration.id}`,
      );
    }
  }

  /** Adds the columns `system.columns` does not list; tolerates a concurrent writer adding one first. */
  async #addMissingColumns(spec: NonNullable<ClickHouseMigration['addColumns']>, what: string): Promise<void> {
    const existing = async (): Promise<Set<string>> =>
      new Set(
        (
          await this.#select<{ name: string }>(
            `SELECT name FROM system.columns WHERE database = ${sqlString(this.#database)} AND table = ${sqlString(spec.table)}`,
            'read columns',
          )
        ).map((r) => r.name),
      );
    const have = await existing();
    for (const column of spec.columns) {
      if (have.has(column.name)) continue;
      try {
        await this.#command(
          `ALTER TABLE ${qualified(this.#database, spec.table)} ADD COLUMN ${sqlIdentifier(column.name)} ${column.type}`,
          `${what}: add column ${column.name}`,
        );
      } catch (err) {
        if (!(await existing()).has(column.name)) throw err;
      }
    }
  }

  /** The migrations recorded as applied, by id. */
  async appliedMigrations(): Promise<{ id: number; name: string }[]> {
    const rows = await this.#select<{ id: number; name: string }>(
      `SELECT id, name FROM ${qualified(this.#database, CLICKHOUSE_MIGRATIONS_TABLE)} FINAL ORDER BY id`,
      'read migrations',
    );
    return rows.map((r) => ({ id: Number(r.id), name: r.name }));
  }

  /**
   * Inserts the batch in one `RowBinary` request (every column named, in {@link AUDIT_COLUMNS}
   * order); resolves when ClickHouse acknowledged it.
   */
  async insert(rows: readonly AuditRow[]): Promise<void> {
    if (rows.length === 0) return;
    try {
      const body = encodeRowBinary(rows);
      const result = await this.#client.exec({
        query: `INSERT INTO ${this.#table} (${INSERT_COLUMNS}) FORMAT RowBinary`,
        values: Readable.from([body]),
      });
      // The response body is empty; reading it to the end returns the socket to the pool.
      for await (const _ of result.stream) void _;
    } catch (cause) {
      throw new ClickHouseSinkError(`insert of ${rows.length} audit rows failed: ${(cause as Error).message}`, { cause });
    }
  }

  async query(filter: AuditQuery): Promise<AuditRow[]> {
    const sql = `SELECT ${SELECT_LIST} FROM ${this.#table} FINAL${whereOf(filter, true)}` + ` ORDER BY ts_ms, event_id LIMIT ${sqlUInt(queryLimit(filter))}`;
    const records = await this.#select<Record<string, unknown>>(sql, 'query audit rows');
    return records.map(fromRecord);
  }

  async count(filter: AuditQuery): Promise<number> {
    const [record] = await this.#select<{ n: number | string }>(`SELECT count() AS n FROM ${this.#table} FINAL${whereOf(filter, false)}`, 'count audit rows');
    return Number(record?.n ?? 0);
  }

  async chains(filter: ChainFilter): Promise<ChainSummary[]> {
    const records = await this.#select<{ chain_id: string; node_id: string; min_seq: number; max_seq: number; events: number }>(
      `SELECT chain_id, any(node_id) AS node_id, min(chain_seq) AS min_seq, max(chain_seq) AS max_seq, count() AS events` +
        ` FROM ${this.#table} FINAL WHERE chain_id != ''${chainConditions(filter)} GROUP BY chain_id ORDER BY chain_id`,
      'list hash chains',
    );
    return records.map((r) => ({ chainId: r.chain_id, nodeId: r.node_id, minSeq: Number(r.min_seq), maxSeq: Number(r.max_seq), events: Number(r.events) }));
  }

  async chainRows(chainId: string, fromSeq: number, toSeq: number): Promise<AuditRow[]> {
    const records = await this.#select<Record<string, unknown>>(
      `SELECT ${SELECT_LIST} FROM ${this.#table} FINAL WHERE chain_id = ${sqlString(chainId)}` +
        ` AND chain_seq >= ${sqlUInt(fromSeq)} AND chain_seq <= ${sqlUInt(toSeq)} ORDER BY chain_seq, event_id`,
      'read a hash chain',
    );
    return records.map(fromRecord);
  }

  async unchainedCount(filter: ChainFilter): Promise<number> {
    const [record] = await this.#select<{ n: number | string }>(
      `SELECT count() AS n FROM ${this.#table} FINAL WHERE chain_id = ''${chainConditions(filter)}`,
      'count unchained rows',
    );
    return Number(record?.n ?? 0);
  }

  async chainingStarted(): Promise<{ type: string; sinceMs: number }[]> {
    const records = await this.#select<{ type: string; since_ms: number | string }>(
      `SELECT type, min(ts_ms) AS since_ms FROM ${this.#table} FINAL WHERE chain_id != '' GROUP BY type ORDER BY type`,
      'find when chaining started',
    );
    return records.map((r) => ({ type: r.type, sinceMs: Number(r.since_ms) }));
  }

  async unchainedRows(filter: ChainFilter, type: string, sinceMs: number, limit: number): Promise<AuditRow[]> {
    const records = await this.#select<Record<string, unknown>>(
      `SELECT ${SELECT_LIST} FROM ${this.#table} FINAL WHERE chain_id = '' AND type = ${sqlString(type)} AND ts_ms >= ${sqlUInt(sinceMs)}` +
        `${chainConditions(filter)} ORDER BY ts_ms, event_id LIMIT ${sqlUInt(Math.max(1, Math.floor(limit)))}`,
      'read unchained rows',
    );
    return records.map(fromRecord);
  }

  /**
   * Months (partitions) whose every event is older than the start of the cutoff's UTC month.
   * The partition key is `toYYYYMM(event_time)` in the server's time zone; a month that straddles
   * the boundary (another zone) holds a newer event and is kept.
   */
  async retentionPlan(cutoffMs: number): Promise<RetentionPlan> {
    const droppedBeforeMs = monthStartUtc(cutoffMs);
    const records = await this.#select<{ p: number | string; n: number | string; max_ts: number | string }>(
      `SELECT toYYYYMM(event_time) AS p, count() AS n, max(ts_ms) AS max_ts FROM ${this.#table} FINAL` +
        ` WHERE event_time < toDateTime(${sqlUInt(Math.floor(droppedBeforeMs / 1000))}) GROUP BY p ORDER BY p`,
      'plan retention',
    );
    const newer = new Set(
      (
        await this.#select<{ p: number | string }>(
          `SELECT DISTINCT toYYYYMM(event_time) AS p FROM ${this.#table} WHERE event_time >= toDateTime(${sqlUInt(Math.floor(droppedBeforeMs / 1000))})`,
          'plan retention',
        )
      ).map((r) => String(r.p)),
    );
    const partitions = records
      .filter((r) => Number(r.max_ts) < droppedBeforeMs && !newer.has(String(r.p)))
      .map((r) => ({ id: String(r.p), rows: Number(r.n), maxTsMs: Number(r.max_ts) }));
    return { store: 'clickhouse', cutoffMs, droppedBeforeMs, partitions };
  }

  async applyRetention(plan: RetentionPlan): Promise<void> {
    for (const p of plan.partitions) {
      if (!/^\d{6}$/.test(p.id)) throw new ClickHouseSinkError(`refusing to drop partition ${JSON.stringify(p.id)}: not a YYYYMM month`);
      await this.#command(`ALTER TABLE ${this.#table} DROP PARTITION ${p.id}`, `drop partition ${p.id}`);
    }
  }

  async close(): Promise<void> {
    await this.#client.close();
  }

  async #command(query: string, what: string): Promise<void> {
    try {
      await this.#client.command({ query });
    } catch (cause) {
      throw new ClickHouseSinkError(`ClickHouse ${what} failed: ${(cause as Error).message}`, { cause });
    }
  }

  async #select<T>(query: string, what: string): Promise<T[]> {
    try {
      const result = await this.#client.query({ query, format: 'JSONEachRow' });
      return await result.json<T>();
    } catch (cause) {
      throw new ClickHouseSinkError(`ClickHouse ${what} failed: ${(cause as Error).message}`, { cause });
    }
  }
}

/** The WHERE clause of a filter, every value quoted; event_time bounds let partitions be pruned. */
function whereOf(filter: AuditQuery, paginate: boolean): string {
  const conditions: string[] = [];
  const eq = (column: string, value: string | undefined): void => {
    if (value !== undefined) conditions.push(`${column} = ${sqlString(value)}`);
  };
  eq('correlation_id', filter.correlationId);
  eq('session_id', filter.sessionId);
  eq('type', filter.type);
  eq('connection', filter.connection);
  const since = (ms: number, inclusive: boolean): void => {
    conditions.push(`ts_ms ${inclusive ? '>=' : '>'} ${sqlUInt(ms)}`);
    conditions.push(`event_time >= toDateTime(${sqlUInt(Math.floor(ms / 1000))})`);
  };
  if (filter.sinceMs !== undefined) since(filter.sinceMs, true);
  if (filter.untilMs !== undefined) {
    conditions.push(`ts_ms < ${sqlUInt(filter.untilMs)}`);
    conditions.push(`event_time <= toDateTime(${sqlUInt(Math.floor(filter.untilMs / 1000))})`);
  }
  if (paginate && filter.afterTsMs !== undefined) {
    if (filter.afterEventId !== undefined) {
      since(filter.afterTsMs, true);
      conditions.push(`(ts_ms > ${sqlUInt(filter.afterTsMs)} OR event_id > ${sqlString(filter.afterEventId)})`);
    } else {
      since(filter.afterTsMs, false);
    }
  }
  return conditions.length > 0 ? ` WHERE ${conditions.join(' AND ')}` : '';
}

/** The server's error code of a failed command ("Code: 44, …"), whatever error class carried it. */
function clickHouseErrorCode(error: unknown): string | undefined {
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause instanceof ClickHouseError) return cause.code;
  const m = /\bCode: (\d+)/.exec(cause instanceof Error ? cause.message : '');
  return m?.[1];
}

/** Conditions of a chain filter (after a leading condition), every value quoted. */
function chainConditions(filter: ChainFilter): string {
  const c: string[] = [];
  if (filter.sessionId !== undefined) c.push(`session_id = ${sqlString(filter.sessionId)}`);
  if (filter.correlationId !== undefined) c.push(`correlation_id = ${sqlString(filter.correlationId)}`);
  if (filter.nodeId !== undefined) c.push(`node_id = ${sqlString(filter.nodeId)}`);
  if (filter.sinceMs !== undefined) c.push(`ts_ms >= ${sqlUInt(filter.sinceMs)}`);
  if (filter.untilMs !== undefined) c.push(`ts_ms < ${sqlUInt(filter.untilMs)}`);
  return c.map((x) => ` AND ${x}`).join('');
}

function fromRecord(record: Record<string, unknown>): AuditRow {
  const row: Record<string, unknown> = {};
  for (const name of SELECT_COLUMNS) {
    const value = record[name];
    row[name] = NUMERIC.has(name) ? Number(value) : BYTES.has(name) ? bytesOfHex(value) : value;
  }
  const tsMs = Number(record['ts_ms']);
  row['event_time'] = Math.floor(tsMs / 1000);
  // Key order as in AUDIT_COLUMNS, so rows compare equal to freshly mapped ones.
  return withPayloadJson(Object.fromEntries(AUDIT_COLUMNS.map((c) => [c.name, row[c.name]])) as unknown as AuditRow);
}

/** A Bytes column as selected (`hex(…)`); a missing value reads as empty. */
function bytesOfHex(value: unknown): Uint8Array {
  return Uint8Array.from(Buffer.from(typeof value === 'string' ? value : '', 'hex'));
}
