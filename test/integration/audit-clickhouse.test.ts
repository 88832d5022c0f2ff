import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { createInProcessBus } from '@portcullis/bus';
import type { BusHandle } from '@portcullis/bus';
import {
  BusHeaders,
  RequestCompletedSchema,
  RequestDecidedSchema,
  RequestReceivedSchema,
  Streams,
  Subjects,
  buildEvent,
  create,
  encodeEvent,
  newEventId,
  type EventEnvelope,
} from '@portcullis/contracts';
import {
  AUDIT_COLUMNS,
  AuditWriter,
  CLICKHOUSE_MIGRATIONS,
  ClickHouseAuditSink,
  sqlString,
  toAuditRow,
  withPayloadJson,
  type AuditRow,
  type AuditSink,
  type AuditWriterLogger,
} from '@portcullis/audit-store';
import { sharedClickHouseUrl, startClickHouse, uniqueName, type TestClickHouse } from '../harness/services.js';
import { eventually } from '../support/eventually.js';

const T0 = Date.UTC(2026, 5, 30, 23, 59, 59, 990); // a month boundary inside the data

function events(correlationId: string, at: number, session = 'sess-a'): EventEnvelope[] {
  const meta = { correlationId, nodeId: 'edge-1', connection: 'prod', sessionId: session };
  return [
    buildEvent(
      'request.received',
      create(RequestReceivedSchema, {
        identity: { subject: "bot'; DROP TABLE x; --", groups: ['a', "b'c"] },
        attributes: { connection: 'prod', kube: { verb: 'get', resource: 'secrets', namespace: 'ns', name: 'n' } },
      }),
      { ...meta, occurredAtMs: at, id: newEventId(at) },
    ),
    buildEvent('request.decided', create(RequestDecidedSchema, { decision: { effect: 'allow', ruleId: 'r1' }, decisionLatencyUs: 90 }), {
      ...meta,
      occurredAtMs: at + 5,
      id: newEventId(at + 5),
    }),
    buildEvent('request.completed', create(RequestCompletedSchema, { status: 200, bytesOut: 2 ** 40, durationMs: 12, forwarded: true }), {
      ...meta,
      occurredAtMs: at + 20,
      id: newEventId(at + 20),
    }),
  ];
}

/** `real` with its insert replaced (a sink that fails or stalls on purpose); every other call goes to `real`. */
function withInsert(real: AuditSink, insert: AuditSink['insert']): AuditSink {
  return {
    migrate: () => real.migrate(),
    insert,
    query: (f) => real.query(f),
    count: (f) => real.count(f),
    chains: (f) => real.chains(f),
    chainRows: (c, from, to) => real.chainRows(c, from, to),
    unchainedCount: (f) => real.unchainedCount(f),
    chainingStarted: () => real.chainingStarted(),
    unchainedRows: (f, type, since, limit) => real.unchainedRows(f, type, since, limit),
    retentionPlan: (cutoff) => real.retentionPlan(cutoff),
    applyRetention: (plan) => real.applyRetention(plan),
    close: () => real.close(),
  };
}

function recordingLogger(): AuditWriterLogger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  return {
    lines,
    info: (message) => lines.push({ level: 'info', message }),
    warn: (message) => lines.push({ level: 'warn', message }),
    error: (message) => lines.push({ level: 'error', message }),
  };
}

function byId(rows: readonly AuditRow[]): string[] {
  return rows.map((r) => r.event_id);
}

describe('ClickHouse audit sink', () => {
  let url: string;
  let client: ClickHouseClient;
  before(async () => {
    url = await sharedClickHouseUrl();
    client = createClient({ url });
  });
  after(async () => {
    await client.close();
  });

  it('sqlString round-trips hostile strings through the real server', async () => {
    const values = ["'", "\\'", '\\', "' OR '1'='1", 'a\0b', 'line\nbreak\r\n', '\x01\x1b[2J\x7f', 'ünï 🚪', "\\\\''\\", '{id:String}'];
    const sql = `SELECT [${values.map(sqlString).join(', ')}] AS v`;
    const result = await client.query({ query: sql, format: 'JSONEachRow' });
    const [row] = await result.json<{ v: string[] }>();
    assert.deepEqual(row?.v, values);
  });

  it('migrations are idempotent, also when several writers start at once', async () => {
    const database = uniqueName('audit_mig');
    const sinks = Array.from({ length: 3 }, () => new ClickHouseAuditSink({ url, database }));
    await Promise.all(sinks.map((s) => s.migrate()));
    await sinks[0]!.migrate();
    assert.deepEqual(
      (await sinks[0]!.appliedMigrations()).map((m) => m.id),
      CLICKHOUSE_MIGRATIONS.map((m) => m.id),
    );
    const ddl = await (await client.query({ query: `SHOW CREATE TABLE ${database}.audit_events`, format: 'TabSeparatedRaw' })).text();
    assert.match(ddl, /ReplacingMergeTree/);
    assert.match(ddl, /PARTITION BY toYYYYMM\(event_time\)/);
    assert.match(ddl, /ORDER BY \(session_id, correlation_id, ts_ms, event_id\)/);
    await Promise.all(sinks.map((s) => s.close()));
    await client.command({ query: `DROP DATABASE ${database}` });
  });

  it('the masked-body columns are added to a table created before them, and adding them again is a no-op (18.16 has no ADD COLUMN IF NOT EXISTS)', async () => {
    const database = uniqueName('audit_cols');
    const added = new Set(CLICKHOUSE_MIGRATIONS.flatMap((m) => m.addColumns?.columns.map((c) => c.name) ?? []));
    assert.ok(added.has('request_body_excerpt') && added.has('masked_fields'));
    const first = CLICKHOUSE_MIGRATIONS[0]!;
    // The table as the first release created it: without the added columns.
    const old = new ClickHouseAuditSink({
      url,
      database,
      migrations: [
        {
          id: first.id,
          name: first.name,
          statements: (db) =>
            first.statements(db).map((sql) =>
              sql
                .split('\n')
                .filter((line) => ![...added].some((c) => line.trim().startsWith(`${c} `)))
                .join('\n')
                .replace(/,\n\) ENGINE/, '\n) ENGINE'),
            ),
        },
      ],
    });
    await old.migrate();
    const columns = async () =>
      (
        await (
          await client.query({ query: `SELECT name FROM system.columns WHERE database = '${database}' AND table = 'audit_events'`, format: 'JSONEachRow' })
        ).json<{ name: string }>()
      ).map((r) => r.name);
    assert.ok(!(await columns()).includes('masked_fields'));
    await old.close();
    const sinks = Array.from({ length: 2 }, () => new ClickHouseAuditSink({ url, database }));
    await Promise.all(sinks.map((s) => s.migrate()));
    assert.deepEqual(
      await columns(),
      AUDIT_COLUMNS.map((c) => c.name),
    );
    // Running the step again (not recorded, columns present) changes nothing and does not fail.
    const again = CLICKHOUSE_MIGRATIONS.find((m) => m.addColumns !== undefined)!;
    const rerun = new ClickHouseAuditSink({ url, database, migrations: [{ ...again, id: 900 }] });
    await rerun.migrate();
    assert.deepEqual(
      await columns(),
      AUDIT_COLUMNS.map((c) => c.name),
    );
    const row = toAuditRow(events('req-cols', T0)[2]!);
    await sinks[0]!.insert([{ ...row, masked_fields: 3, request_body_excerpt: '{"kind":"Secret"}' }]);
    const [back] = await sinks[0]!.query({});
    assert.equal(back?.masked_fields, 3);
    assert.equal(back?.request_body_excerpt, '{"kind":"Secret"}');
    await Promise.all([...sinks, rerun].map((s) => s.close()));
    await client.command({ query: `DROP DATABASE ${database}` });
  });

  it('a redelivered batch is seen once by every query; rows read back equal the mapped rows', async (t) => {
    const database = uniqueName('audit_dedup');
    const sink = new ClickHouseAuditSink({ url, database });
    await sink.migrate();
    const all = [...events('req-1', T0), ...events('req-2', T0 + 100, 'sess-b'), ...events('req-3', T0 + 200)];
    const rows = all.map(toAuditRow);
    await sink.insert(rows);
    await sink.insert(rows); // the redelivery: a second part with the same rows
    await sink.insert(rows.slice(0, 4));
    const sorted = [...rows].sort((a, b) => a.ts_ms - b.ts_ms || a.event_id.localeCompare(b.event_id));

    const everything = await sink.query({});
    assert.deepEqual(
      everything,
      sorted.map((r) => withPayloadJson({ ...r })),
    );
    assert.equal(await sink.count({}), 9);
    assert.deepEqual(byId(await sink.query({ correlationId: 'req-2' })), byId(rows.slice(3, 6).map((r) => withPayloadJson({ ...r }))));
    assert.equal(await sink.count({ sessionId: 'sess-a' }), 6);
    assert.equal(await sink.count({ type: 'request.completed' }), 3);
    assert.equal(await sink.count({ connection: 'prod', sinceMs: T0 + 100, untilMs: T0 + 201 }), 4);
    assert.equal(await sink.count({ correlationId: "req-1' OR '1'='1" }), 0);

    const pages: AuditRow[] = [];
    let page = await sink.query({ limit: 4 });
    while (page.length > 0) {
      pages.push(...page);
      const last = page.at(-1)!;
      page = await sink.query({ limit: 4, afterTsMs: last.ts_ms, afterEventId: last.event_id });
    }
    assert.deepEqual(byId(pages), byId(sorted));
    assert.equal((await sink.query({ afterTsMs: T0 + 200 })).length, 2);

    // Raw (non-FINAL) storage really holds the duplicates, so the assertions above mean something.
    const raw = await (await client.query({ query: `SELECT count() AS n FROM ${database}.audit_events`, format: 'JSONEachRow' })).json<{ n: string }>();
    t.diagnostic(`stored rows before merge: ${raw[0]?.n} for 9 events`);
    await sink.close();
    await client.command({ query: `DROP DATABASE ${database}` });
  });

  it('batch insert throughput (RowBinary)', async (t) => {
    const database = uniqueName('audit_perf');
    const sink = new ClickHouseAuditSink({ url, database });
    await sink.migrate();
    const batch = 10_000;
    const batches = 10;
    const template = toAuditRow(events('perf', T0)[0]!);
    const started = performance.now();
    for (let b = 0; b < batches; b++) {
      const rows = Array.from({ length: batch }, (_, i) => ({ ...template, event_id: `e-${b}-${i}`, correlation_id: `c-${b}-${i}` }));
      await sink.insert(rows);
    }
    const seconds = (performance.now() - started) / 1000;
    const rate = Math.round((batch * batches) / seconds);
    t.diagnostic(`inserted ${batch * batches} rows in batches of ${batch}: ${rate} rows/s`);
    assert.equal(await sink.count({ correlationId: 'c-3-17' }), 1);
    await sink.close();
    await client.command({ query: `DROP DATABASE ${database}` });
  });
});

describe('AuditWriter', () => {
  let clickhouse: TestClickHouse;
  let bus: BusHandle;
  before(async () => {
    clickhouse = await startClickHouse(); // our own: this suite kills it
    bus = createInProcessBus({ eventLog: { nakDelayMs: 20 } });
    for (const stream of [Streams.audit, Streams.deadLetter]) {
      await bus.log.ensureStream({ name: stream.name, subjects: stream.subjects, maxAgeMs: 0, duplicateWindowMs: 120_000, replicas: 1 });
    }
  });
  after(async () => {
    await bus.close();
    await clickhouse.stop();
  });

  async function publish(list: readonly EventEnvelope[]): Promise<void> {
    for (const event of list) {
      await bus.log.append(Subjects.auditEvent(event.connection, event.type), encodeEvent(event), event.id);
    }
  }

  it('events wait while ClickHouse is down and land exactly once when it is back', async () => {
    const database = uniqueName('audit_writer');
    const sink = new ClickHouseAuditSink({ url: clickhouse.httpUrl, database, requestTimeoutMs: 5000 });
    await sink.migrate();
    await clickhouse.kill();

    const logger = recordingLogger();
    const writer = new AuditWriter({
      log: bus.log,
      sink,
      batchSize: 50,
      maxWaitMs: 20,
      logger,
      initialBackoffMs: 20,
      maxBackoffMs: 200,
      durable: uniqueName('w'),
    });
    writer.start();
    const published = [...events('w-1', T0), ...events('w-2', T0 + 50), ...events('w-3', T0 + 90)];
    await publish(published);
    await eventually('failed insert attempts', () => logger.lines.filter((l) => l.level === 'error').length >= 2, 30_000);
    assert.equal(writer.stats.written, 0);

    await clickhouse.restart();
    await eventually('the events to land', async () => (await sink.count({})) === published.length, 30_000);
    await eventually('the writer to ack', () => writer.stats.written === published.length, 30_000);
    assert.deepEqual(byId(await sink.query({})), byId(published.map((e) => withPayloadJson(toAuditRow(e)))));
    assert.ok(logger.lines.some((l) => l.message === 'audit sink recovered'));
    await writer.stop();
    await sink.close();
  });

  it('an insert whose acknowledgement is lost is retried and still counted once', async () => {
    const database = uniqueName('audit_lost_ack');
    const real = new ClickHouseAuditSink({ url: clickhouse.httpUrl, database });
    await real.migrate();
    let calls = 0;
    // Stores the rows, then fails as if the response never arrived: the writer must retry.
    const flaky = withInsert(real, async (rows) => {
      await real.insert(rows);
      if (++calls === 1) throw new Error('connection reset after the insert');
    });
    const writer = new AuditWriter({
      log: bus.log,
      sink: flaky,
      logger: recordingLogger(),
      batchSize: 100,
      maxWaitMs: 20,
      initialBackoffMs: 10,
      durable: uniqueName('w'),
    });
    const published = events('lost-1', T0 + 1000);
    writer.start();
    // This durable starts at the beginning of the stream: it also sees the previous test's events.
    await publish(published);
    await eventually('the retried insert', async () => (await real.count({ correlationId: 'lost-1' })) === 3 && calls >= 2, 30_000);
    assert.equal(await real.count({ correlationId: 'lost-1' }), 3);
    assert.deepEqual(byId(await real.query({ correlationId: 'lost-1' })), byId(published.map((e) => withPayloadJson(toAuditRow(e)))));
    await writer.stop();
    await real.close();
  });

  it('two inserts in flight: a batch is stored while another still waits for its insert; each is acked after its own insert', async () => {
    const database = uniqueName('audit_overlap');
    const real = new ClickHouseAuditSink({ url: clickhouse.httpUrl, database });
    await real.migrate();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let blocked = false;
    // The batch holding overlap-1 waits at the gate, as if ClickHouse were slow for it.
    const slow = withInsert(real, async (rows) => {
      if (rows.some((r) => r.correlation_id === 'overlap-1')) {
        blocked = true;
        await gate;
      }
      await real.insert(rows);
    });
    const writer = new AuditWriter({
      log: bus.log,
      sink: slow,
      logger: recordingLogger(),
      batchSize: 3,
      maxWaitMs: 20,
      insertsInFlight: 2,
      durable: uniqueName('w'),
    });
    writer.start();
    await publish(events('overlap-1', T0 + 3000));
    await eventually('the overlap-1 batch to wait in its insert', () => blocked, 30_000);
    await publish(events('overlap-2', T0 + 3100));
    // With one insert in flight this never happens: the second batch would queue behind the first.
    await eventually('overlap-2 stored while overlap-1 waits', async () => (await real.count({ correlationId: 'overlap-2' })) === 3, 3000);
    assert.equal(await real.count({ correlationId: 'overlap-1' }), 0, 'overlap-1 is still waiting for its insert');
    const writtenBefore = writer.stats.written;
    release();
    await eventually('overlap-1 stored after the gate opens', async () => (await real.count({ correlationId: 'overlap-1' })) === 3, 30_000);
    await eventually('overlap-1 acknowledged', () => writer.stats.written >= writtenBefore + 3, 30_000);
    await writer.stop();
    await real.close();
  });

  it('an undecodable message goes to the dead-letter subject with its reason and is acked', async () => {
    const database = uniqueName('audit_dlq');
    const sink = new ClickHouseAuditSink({ url: clickhouse.httpUrl, database });
    await sink.migrate();
    const dead: { subject: string; headers: Readonly<Record<string, string>>; data: Uint8Array }[] = [];
    const reader = bus.log.read(Streams.deadLetter.name, {}, (msg) => dead.push(msg));
    const logger = recordingLogger();
    const writer = new AuditWriter({ log: bus.log, sink, logger, batchSize: 100, maxWaitMs: 20, durable: uniqueName('w') });
    writer.start();
    const garbage = new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0x01]);
    await bus.log.append('audit.prod.request.received', garbage, `garbage-${newEventId()}`);
    const good = events('dlq-1', T0 + 2000);
    await publish(good);
    await eventually('the dead letter', () => dead.length === 1, 30_000);
    await eventually('the good events', async () => (await sink.count({ correlationId: 'dlq-1' })) === 3, 30_000);
    const [letter] = dead;
    assert.equal(letter?.subject, Subjects.auditDeadLetter());
    assert.deepEqual(letter?.data, garbage);
    assert.equal(letter?.headers[BusHeaders.deadLetterSubject], 'audit.prod.request.received');
    assert.match(letter?.headers[BusHeaders.deadLetterReason] ?? '', /not a protobuf EventEnvelope/);
    assert.equal(writer.stats.deadLettered, 1);
    assert.ok(logger.lines.some((l) => l.level === 'warn' && l.message === 'audit event dead-lettered'));
    await writer.stop();
    // Acked: a new member of the same durable gets nothing more to dead-letter.
    await reader.unsubscribe();
    await sink.close();
  });
});
