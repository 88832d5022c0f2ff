/**
 * The embedded mode's audit store: one SQLite file (better-sqlite3) in WAL mode with the same
 * columns as the ClickHouse table, plus the bus columns the {@link SqliteEventLog} needs
 * (`seq`, `msg_id`, `bus_subject`, `headers_json`, `data`).
 */
import Database from 'better-sqlite3';
import { AUDIT_COLUMNS, ColumnKind, columnsAddedIn, columnsOfVersion, withPayloadJson, type AuditRow } from './audit-row.js';
import { monthStartUtc, queryLimit, type AuditQuery, type AuditSink, type ChainFilter, type ChainSummary, type RetentionPlan } from './audit-sink.port.js';

/** A better-sqlite3 connection. */
export type SqliteDatabase = Database.Database;

/** The table both the sink and the event log use. */
export const SQLITE_AUDIT_TABLE = 'audit_events';

const SQLITE_TYPE: Record<ColumnKind, string> = {
  [ColumnKind.String]: "TEXT NOT NULL DEFAULT ''",
  [ColumnKind.StringArray]: "TEXT NOT NULL DEFAULT '[]'", // JSON array
  [ColumnKind.DateTime]: 'INTEGER NOT NULL DEFAULT 0',
  [ColumnKind.UInt8]: 'INTEGER NOT NULL DEFAULT 0',
  [ColumnKind.UInt16]: 'INTEGER NOT NULL DEFAULT 0',
  [ColumnKind.UInt32]: 'INTEGER NOT NULL DEFAULT 0',
  [ColumnKind.UInt64]: 'INTEGER NOT NULL DEFAULT 0',
  [ColumnKind.Bytes]: "BLOB NOT NULL DEFAULT x''",
};

/** A schema step; `id` is stored in `PRAGMA user_version` once applied. */
interface SqliteMigration {
  readonly id: number;
  readonly sql: string;
  /** Columns added when missing (SQLite has no ADD COLUMN IF NOT EXISTS). */
  readonly addColumns?: readonly string[];
}

/** Versioned migrations, applied in order; append new ones at the end. */
export const SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    id: 1,
    sql: `
      CREATE TABLE IF NOT EXISTS ${SQLITE_AUDIT_TABLE} (
        seq INTEGER PRIMARY KEY,
        msg_id TEXT NOT NULL,
        bus_subject TEXT NOT NULL DEFAULT '',
        headers_json TEXT NOT NULL DEFAULT '{}',
        data BLOB,
        ${columnsOfVersion(1)
          .map((c) => `${c.name} ${SQLITE_TYPE[c.kind]}`)
          .join(',\n        ')}
      );
      CREATE UNIQUE INDEX IF NOT EXISTS ${SQLITE_AUDIT_TABLE}_event_id ON ${SQLITE_AUDIT_TABLE} (event_id);
      CREATE UNIQUE INDEX IF NOT EXISTS ${SQLITE_AUDIT_TABLE}_msg_id ON ${SQLITE_AUDIT_TABLE} (msg_id);
      CREATE INDEX IF NOT EXISTS ${SQLITE_AUDIT_TABLE}_correlation ON ${SQLITE_AUDIT_TABLE} (correlation_id, ts_ms);
      CREATE INDEX IF NOT EXISTS ${SQLITE_AUDIT_TABLE}_ts ON ${SQLITE_AUDIT_TABLE} (ts_ms, event_id);
      CREATE INDEX IF NOT EXISTS ${SQLITE_AUDIT_TABLE}_session ON ${SQLITE_AUDIT_TABLE} (session_id, ts_ms);
    `,
  },
  {
    id: 2,
    sql: `
      ${columnsAddedIn(2)
        .map((c) => `ALTER TABLE ${SQLITE_AUDIT_TABLE} ADD COLUMN ${c.name} ${SQLITE_TYPE[c.kind]};`)
        .join('\n      ')}
      CREATE INDEX IF NOT EXISTS ${SQLITE_AUDIT_TABLE}_chain ON ${SQLITE_AUDIT_TABLE} (chain_id, chain_seq);
    `,
  },
  {
    id: 3,
    sql: '',
    addColumns: ['masked_fields', 'request_body_sha256', 'request_body_excerpt', 'response_body_sha256', 'response_body_excerpt'],
  },
  {
    id: 4,
    sql: '',
    // The signed protobuf instead of payload_json on new rows (as in ClickHouse migration 5).
    addColumns: columnsAddedIn(5).map((c) => c.name),
  },
];

/**
 * Opens (creating) an audit database: WAL so readers (`audit tail` in another process) never
 * block the writer, `synchronous=FULL` because an append must survive a power cut (the group
 * commit pays for the fsync), and a busy timeout for several processes on one file.
 */
export function openSqliteAuditDatabase(path: string): SqliteDatabase {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

/** Applies pending migrations in one immediate transaction, so concurrent openers serialize. */
export function migrateSqliteAuditDatabase(db: SqliteDatabase): void {
  db.transaction(() => {
    const current = Number(db.pragma('user_version', { simple: true }));
    for (const migration of SQLITE_MIGRATIONS) {
      if (migration.id <= current) continue;
      if (migration.sql !== '') db.exec(migration.sql);
      if (migration.addColumns !== undefined) {
        const have = new Set((db.pragma(`table_info(${SQLITE_AUDIT_TABLE})`) as { name: string }[]).map((c) => c.name));
        for (const name of migration.addColumns) {
          const column = AUDIT_COLUMNS.find((c) => c.name === name);
          if (column !== undefined && !have.has(name)) db.exec(`ALTER TABLE ${SQLITE_AUDIT_TABLE} ADD COLUMN ${name} ${SQLITE_TYPE[column.kind]}`);
        }
      }
      db.pragma(`user_version = ${migration.id}`);
    }
  }).immediate();
}

const COLUMN_NAMES = AUDIT_COLUMNS.map((c) => c.name);

/** The insert statement's parameters: the row plus the bus columns. */
export type SqliteAuditInsert = Record<string, string | number | Uint8Array | null>;

/** Flattens a row (and its bus columns) into statement parameters. */
export function sqliteInsertParams(
  row: AuditRow,
  bus: { msgId?: string; subject?: string; headers?: Readonly<Record<string, string>>; data?: Uint8Array } = {},
): SqliteAuditInsert {
  const params: SqliteAuditInsert = {
    msg_id: bus.msgId ?? row.event_id,
    bus_subject: bus.subject ?? '',
    headers_json: JSON.stringify(bus.headers ?? {}),
    data: bus.data ?? null,
  };
  for (const column of AUDIT_COLUMNS) {
    const value = row[column.name];
    params[column.name] = Array.isArray(value)
      ? JSON.stringify(value)
      : value instanceof Uint8Array
        ? Buffer.from(value.buffer, value.byteOffset, value.byteLength)
        : value;
  }
  return params;
}

/** `INSERT OR IGNORE`: a row whose event id or message id is already stored is skipped. */
export function prepareSqliteInsert(db: SqliteDatabase): Database.Statement<[SqliteAuditInsert]> {
  const all = ['msg_id', 'bus_subject', 'headers_json', 'data', ...COLUMN_NAMES];
  return db.prepare(`INSERT OR IGNORE INTO ${SQLITE_AUDIT_TABLE} (${all.join(', ')}) VALUES (${all.map((c) => `@${c}`).join(', ')})`);
}

/** Turns a stored record back into an {@link AuditRow}. */
export function auditRowFromSqlite(record: Record<string, unknown>): AuditRow {
  const row: Record<string, unknown> = {};
  for (const column of AUDIT_COLUMNS) {
    const value = record[column.name];
    row[column.name] =
      column.kind === ColumnKind.StringArray
        ? (JSON.parse(typeof value === 'string' ? value : '[]') as string[])
        : column.kind === ColumnKind.Bytes
          ? bytesOf(value)
          : value;
  }
  return withPayloadJson(row as unknown as AuditRow);
}

/** A BLOB as a plain Uint8Array (better-sqlite3 returns a Buffer; NULL from old rows → empty). */
function bytesOf(value: unknown): Uint8Array {
  return value instanceof Uint8Array ? Uint8Array.from(value) : new Uint8Array(0);
}

/** The WHERE clause and parameters of a query. */
function whereOf(filter: AuditQuery, paginate: boolean): { sql: string; params: Record<string, string | number> } {
  const conditions: string[] = [];
  const params: Record<string, string | number> = {};
  const eq = (column: string, value: string | undefined): void => {
    if (value === undefined) return;
    conditions.push(`${column} = @${column}`);
    params[column] = value;
  };
  eq('correlation_id', filter.correlationId);
  eq('session_id', filter.sessionId);
  eq('type', filter.type);
  eq('connection', filter.connection);
  if (filter.sinceMs !== undefined) {
    conditions.push('ts_ms >= @since_ms');
    params['since_ms'] = filter.sinceMs;
  }
  if (filter.untilMs !== undefined) {
    conditions.push('ts_ms < @until_ms');
    params['until_ms'] = filter.untilMs;
  }
  if (paginate && filter.afterTsMs !== undefined) {
    params['after_ts_ms'] = filter.afterTsMs;
    if (filter.afterEventId !== undefined) {
      conditions.push('(ts_ms > @after_ts_ms OR (ts_ms = @after_ts_ms AND event_id > @after_event_id))');
      params['after_event_id'] = filter.afterEventId;
    } else {
      conditions.push('ts_ms > @after_ts_ms');
    }
  }
  return { sql: conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '', params };
}

function chainWhere(filter: ChainFilter): { sql: string; params: Record<string, string | number> } {
  const c: string[] = [];
  const params: Record<string, string | number> = {};
  const eq = (column: string, value: string | undefined): void => {
    if (value === undefined) return;
    c.push(`${column} = @${column}`);
    params[column] = value;
  };
  eq('session_id', filter.sessionId);
  eq('correlation_id', filter.correlationId);
  eq('node_id', filter.nodeId);
  if (filter.sinceMs !== undefined) {
    c.push('ts_ms >= @since_ms');
    params['since_ms'] = filter.sinceMs;
  }
  if (filter.untilMs !== undefined) {
    c.push('ts_ms < @until_ms');
    params['until_ms'] = filter.untilMs;
  }
  return { sql: c.map((x) => ` AND ${x}`).join(''), params };
}

/** Options of {@link SqliteAuditSink}: a file to open, or a connection to share (not closed by the sink). */
export type SqliteAuditSinkOptions = { path: string } | { database: SqliteDatabase };

/** The embedded audit sink. Inserts a batch in one transaction; duplicates are ignored. */
export class SqliteAuditSink implements AuditSink {
  /** The connection (shared with the {@link SqliteEventLog} in the embedded mode). */
  readonly database: SqliteDatabase;
  readonly #ownsDatabase: boolean;
  #insert: Database.Statement<[SqliteAuditInsert]> | undefined;

  constructor(options: SqliteAuditSinkOptions) {
    if ('path' in options) {
      this.database = openSqliteAuditDatabase(options.path);
      this.#ownsDatabase = true;
    } else {
      this.database = options.database;
      this.#ownsDatabase = false;
    }
  }

  /** Creates the table and indexes (idempotent). */
  // async so that a synchronous SQLite error becomes a rejection, as the port promises.
  async migrate(): Promise<void> {
    migrateSqliteAuditDatabase(this.database);
    this.#insert = prepareSqliteInsert(this.database);
  }

  async insert(rows: readonly AuditRow[]): Promise<void> {
    const statement = this.#insertStatement();
    this.database.transaction(() => {
      for (const row of rows) statement.run(sqliteInsertParams(row));
    })();
  }

  async query(filter: AuditQuery): Promise<AuditRow[]> {
    const { sql, params } = whereOf(filter, true);
    const records = this.database
      .prepare(`SELECT ${COLUMN_NAMES.join(', ')} FROM ${SQLITE_AUDIT_TABLE} ${sql} ORDER BY ts_ms, event_id LIMIT ${queryLimit(filter)}`)
      .all(params) as Record<string, unknown>[];
    return records.map(auditRowFromSqlite);
  }

  async count(filter: AuditQuery): Promise<number> {
    const { sql, params } = whereOf(filter, false);
    const record = this.database.prepare(`SELECT count(*) AS n FROM ${SQLITE_AUDIT_TABLE} ${sql}`).get(params) as { n: number };
    return record.n;
  }

  async chains(filter: ChainFilter): Promise<ChainSummary[]> {
    const { sql, params } = chainWhere(filter);
    const records = this.database
      .prepare(
        `SELECT chain_id, min(node_id) AS node_id, min(chain_seq) AS min_seq, max(chain_seq) AS max_seq, count(*) AS events` +
          ` FROM ${SQLITE_AUDIT_TABLE} WHERE chain_id != ''${sql} GROUP BY chain_id ORDER BY chain_id`,
      )
      .all(params) as { chain_id: string; node_id: string; min_seq: number; max_seq: number; events: number }[];
    return records.map((r) => ({ chainId: r.chain_id, nodeId: r.node_id, minSeq: r.min_seq, maxSeq: r.max_seq, events: r.events }));
  }

  async chainRows(chainId: string, fromSeq: number, toSeq: number): Promise<AuditRow[]> {
    const records = this.database
      .prepare(
        `SELECT ${COLUMN_NAMES.join(', ')} FROM ${SQLITE_AUDIT_TABLE} WHERE chain_id = ? AND chain_seq >= ? AND chain_seq <= ? ORDER BY chain_seq, event_id`,
      )
      .all(chainId, fromSeq, toSeq) as Record<string, unknown>[];
    return records.map(auditRowFromSqlite);
  }

  async unchainedCount(filter: ChainFilter): Promise<number> {
    const { sql, params } = chainWhere(filter);
    const record = this.database.prepare(`SELECT count(*) AS n FROM ${SQLITE_AUDIT_TABLE} WHERE chain_id = ''${sql}`).get(params) as { n: number };
    return record.n;
  }

  async chainingStarted(): Promise<{ type: string; sinceMs: number }[]> {
    const records = this.database
      .prepare(`SELECT type, min(ts_ms) AS since_ms FROM ${SQLITE_AUDIT_TABLE} WHERE chain_id != '' GROUP BY type ORDER BY type`)
      .all() as { type: string; since_ms: number }[];
    return records.map((r) => ({ type: r.type, sinceMs: r.since_ms }));
  }

  async unchainedRows(filter: ChainFilter, type: string, sinceMs: number, limit: number): Promise<AuditRow[]> {
    const { sql, params } = chainWhere(filter);
    const records = this.database
      .prepare(
        `SELECT ${COLUMN_NAMES.join(', ')} FROM ${SQLITE_AUDIT_TABLE} WHERE chain_id = '' AND type = @unchained_type AND ts_ms >= @unchained_since${sql}` +
          ` ORDER BY ts_ms, event_id LIMIT ${Math.max(1, Math.floor(limit))}`,
      )
      .all({ ...params, unchained_type: type, unchained_since: sinceMs }) as Record<string, unknown>[];
    return records.map(auditRowFromSqlite);
  }

  /** The SQLite store keeps months too (UTC): whole months before the cutoff's month go. */
  async retentionPlan(cutoffMs: number): Promise<RetentionPlan> {
    const droppedBeforeMs = monthStartUtc(cutoffMs);
    const records = this.database
      .prepare(
        `SELECT strftime('%Y%m', ts_ms / 1000, 'unixepoch') AS p, count(*) AS n, max(ts_ms) AS max_ts FROM ${SQLITE_AUDIT_TABLE}` +
          ` WHERE ts_ms < ? GROUP BY p ORDER BY p`,
      )
      .all(droppedBeforeMs) as { p: string; n: number; max_ts: number }[];
    return { store: 'sqlite', cutoffMs, droppedBeforeMs, partitions: records.map((r) => ({ id: r.p, rows: r.n, maxTsMs: r.max_ts })) };
  }

  async applyRetention(plan: RetentionPlan): Promise<void> {
    if (plan.partitions.length === 0) return;
    this.database.prepare(`DELETE FROM ${SQLITE_AUDIT_TABLE} WHERE ts_ms < ?`).run(plan.droppedBeforeMs);
  }

  async close(): Promise<void> {
    if (this.#ownsDatabase && this.database.open) this.database.close();
  }

  #insertStatement(): Database.Statement<[SqliteAuditInsert]> {
    if (this.#insert === undefined) throw new Error('SqliteAuditSink: call migrate() before insert()');
    return this.#insert;
  }
}
