import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BusHeaders,
  EventDecodeError,
  RequestCompletedSchema,
  RequestReceivedSchema,
  Streams,
  Subjects,
  buildEvent,
  create,
  decodeEvent,
  encodeEvent,
  newEventId,
  type EventEnvelope,
} from '@portcullis/contracts';
import {
  migrateSqliteAuditDatabase,
  openSqliteAuditDatabase,
  SQLITE_MIGRATIONS,
  SqliteAuditSink,
  SqliteEventLog,
  toAuditRow,
  withPayloadJson,
} from '@portcullis/audit-store';
import { eventually } from '../support/eventually.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-audit-sqlite-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const T0 = Date.UTC(2026, 4, 1, 12, 0, 0);

function received(i: number, correlationId = `req-${i}`): EventEnvelope {
  return buildEvent(
    'request.received',
    create(RequestReceivedSchema, {
      identity: { subject: `bot-${i}`, groups: ['g'] },
      attributes: { connection: 'prod', kube: { verb: 'get', resource: 'pods', namespace: 'ns', name: `p-${i}` } },
    }),
    { correlationId, nodeId: 'edge-1', connection: 'prod', occurredAtMs: T0 + i, id: newEventId(T0 + i) },
  );
}

function completed(i: number, correlationId = `req-${i}`): EventEnvelope {
  return buildEvent('request.completed', create(RequestCompletedSchema, { status: 200, bytesOut: 10, durationMs: 3, forwarded: true }), {
    correlationId,
    nodeId: 'edge-1',
    connection: 'prod',
    occurredAtMs: T0 + i + 1,
    id: newEventId(T0 + i + 1),
  });
}

function append(log: SqliteEventLog, event: EventEnvelope): ReturnType<SqliteEventLog['append']> {
  return log.append(Subjects.auditEvent(event.connection, event.type), encodeEvent(event), event.id);
}

describe('SqliteEventLog', () => {
  it('append is durable: rows are there after close and reopen', async () => {
    const path = join(dir, 'durable.db');
    const log = await SqliteEventLog.open({ path });
    const events = [received(1), completed(1), received(2)];
    const acks = [];
    for (const event of events) acks.push(await append(log, event));
    assert.deepEqual(
      acks.map((a) => [a.stream, a.duplicate]),
      events.map(() => [Streams.audit.name, false]),
    );
    assert.deepEqual(
      acks.map((a) => a.seq),
      [1, 2, 3],
    );
    await log.close();

    const sink = new SqliteAuditSink({ path });
    await sink.migrate();
    const rows = await sink.query({});
    assert.deepEqual(
      rows.map((r) => r.event_id),
      events.map((e) => e.id),
    );
    assert.deepEqual(rows[0], withPayloadJson(toAuditRow(events[0]!)));
    assert.equal(await sink.count({ correlationId: 'req-1' }), 2);
    await sink.close();
  });

  it('a duplicate message id is acknowledged as duplicate with the first seq and stored once', async () => {
    const log = await SqliteEventLog.open({ path: join(dir, 'dup.db') });
    const event = received(7);
    const first = await append(log, event);
    const again = await append(log, event);
    const other = received(8);
    const concurrent = await Promise.all([append(log, other), append(log, other)]);
    assert.equal(first.duplicate, false);
    assert.deepEqual(again, { ...first, duplicate: true });
    assert.deepEqual(
      concurrent.map((a) => a.duplicate),
      [false, true],
    );
    assert.equal(concurrent[0].seq, concurrent[1].seq);
    assert.equal(await log.sink.count({}), 2);
    await log.close();
  });

  it('group commit: 100 concurrent appends land as 100 rows in few transactions', async () => {
    const log = await SqliteEventLog.open({ path: join(dir, 'group.db') });
    const before = log.commits;
    const acks = await Promise.all(Array.from({ length: 100 }, (_, i) => append(log, received(100 + i))));
    assert.equal(new Set(acks.map((a) => a.seq)).size, 100);
    assert.ok(acks.every((a) => !a.duplicate));
    assert.equal(await log.sink.count({}), 100);
    const transactions = log.commits - before;
    assert.ok(transactions >= 1 && transactions <= 2, `expected one group commit, got ${transactions}`);
    await log.close();
  });

  it('rejects an undecodable event with a clear error and stores nothing', async () => {
    const log = await SqliteEventLog.open({ path: join(dir, 'bad.db') });
    await assert.rejects(log.append('audit.prod.request.received', new Uint8Array([0xff, 0xff, 0xff]), 'bad-1'), (error: unknown) => {
      assert.ok(error instanceof EventDecodeError);
      assert.match(error.message, /refused message bad-1 on audit\.prod\.request\.received/);
      return true;
    });
    // A good append in the same tick still commits.
    const ok = await append(log, received(1));
    assert.equal(ok.duplicate, false);
    assert.equal(await log.sink.count({}), 1);
    await log.close();
    await assert.rejects(append(log, received(2)), { name: 'BusError', code: 'closed' });
  });

  it('consume is refused in embedded mode', async () => {
    const log = await SqliteEventLog.open({ path: join(dir, 'consume.db') });
    assert.throws(
      () => log.consume(Streams.audit.name, { durable: 'x', batchSize: 1, maxWaitMs: 1 }, () => Promise.resolve()),
      /not supported in embedded mode/,
    );
    await log.close();
  });

  it('read() delivers stored then new messages in order, from a seq, filtered by subject', async () => {
    const log = await SqliteEventLog.open({ path: join(dir, 'tail.db') });
    await append(log, received(1));
    await append(log, completed(1));
    const seen: { seq: number; subject: string; id: string; msgId: string | undefined }[] = [];
    const sub = log.read(Streams.audit.name, {}, (msg) =>
      seen.push({ seq: msg.seq, subject: msg.subject, id: decodeEvent(msg.data).id, msgId: msg.headers[BusHeaders.msgId] }),
    );
    await eventually('the stored messages', () => seen.length === 2);
    const later = [received(2), completed(2)];
    await Promise.all(later.map((e) => append(log, e)));
    await eventually('the new messages', () => seen.length === 4);
    assert.deepEqual(
      seen.map((s) => s.seq),
      [1, 2, 3, 4],
    );
    assert.equal(seen[2]!.id, later[0]!.id);
    assert.equal(seen[2]!.msgId, later[0]!.id);
    assert.equal(seen[3]!.subject, 'audit.prod.request.completed');
    await sub.unsubscribe();

    const fromThree: number[] = [];
    const onlyCompleted: number[] = [];
    const a = log.read(Streams.audit.name, { startSeq: 3 }, (msg) => fromThree.push(msg.seq));
    const b = log.read(Streams.audit.name, { filterSubject: 'audit.*.request.completed' }, (msg) => onlyCompleted.push(msg.seq));
    const c: number[] = [];
    const fromTime = log.read(Streams.audit.name, { startTimeMs: T0 + 2 }, (msg) => c.push(msg.seq));
    await eventually('the filtered reads', () => fromThree.length === 2 && onlyCompleted.length === 2 && c.length === 3);
    assert.deepEqual(fromThree, [3, 4]);
    assert.deepEqual(onlyCompleted, [2, 4]);
    assert.deepEqual(c, [2, 3, 4], 'from the first event at or after the start time');
    await Promise.all([a.unsubscribe(), b.unsubscribe(), fromTime.unsubscribe()]);
    await log.close();
  });

  it('snapshot() returns what is stored now matching the NATS filter, exactly (wildcards do not cross dots)', async () => {
    const log = await SqliteEventLog.open({ path: join(dir, 'snapshot.db') });
    assert.deepEqual(await log.snapshot(Streams.audit.name, { filterSubject: 'audit.*.request.completed' }), []);
    for (let i = 0; i < 5; i++) {
      await append(log, received(i));
      await append(log, completed(i));
    }
    const got = await log.snapshot(Streams.audit.name, { filterSubject: 'audit.*.request.completed' });
    assert.equal(got.length, 5);
    assert.ok(got.every((m) => m.subject === 'audit.prod.request.completed'));
    assert.equal((await log.snapshot(Streams.audit.name, { filterSubject: 'audit.*.completed' })).length, 0, '* matches one token');
    assert.equal((await log.snapshot(Streams.audit.name, { filterSubject: 'audit.>' })).length, 10);
    assert.equal((await log.snapshot(Streams.audit.name, { startTimeMs: T0 + 4, filterSubject: 'audit.>' })).length, 3);
    await log.close();
  });

  it('read() on a second connection sees appends made by another (audit tail in another process)', async () => {
    const path = join(dir, 'two.db');
    const writer = await SqliteEventLog.open({ path });
    const reader = await SqliteEventLog.open({ path, pollIntervalMs: 20 });
    const seen: string[] = [];
    const sub = reader.read(Streams.audit.name, {}, (msg) => seen.push(decodeEvent(msg.data).id));
    const event = received(42);
    await append(writer, event);
    await eventually('the polled message', () => seen.length === 1);
    assert.deepEqual(seen, [event.id]);
    await sub.unsubscribe();
    await reader.close();
    await writer.close();
  });
});

describe('SqliteAuditSink', () => {
  it('migrates twice, inserts a redelivered batch once, and filters and paginates', async () => {
    const sink = new SqliteAuditSink({ path: join(dir, 'sink.db') });
    await sink.migrate();
    await sink.migrate();
    const events = [received(1, 'A'), completed(1, 'A'), received(2, 'B'), completed(2, 'B'), received(3, 'C')];
    const rows = events.map(toAuditRow);
    await sink.insert(rows);
    await sink.insert(rows); // redelivery
    assert.equal(await sink.count({}), 5);
    assert.deepEqual(
      (await sink.query({ correlationId: 'A' })).map((r) => r.type),
      ['request.received', 'request.completed'],
    );
    assert.equal(await sink.count({ type: 'request.completed' }), 2);
    assert.equal(await sink.count({ sinceMs: T0 + 2, untilMs: T0 + 3 }), 2);
    const page1 = await sink.query({ limit: 2 });
    const last = page1.at(-1)!;
    const page2 = await sink.query({ limit: 2, afterTsMs: last.ts_ms, afterEventId: last.event_id });
    const page3 = await sink.query({ limit: 2, afterTsMs: page2.at(-1)!.ts_ms, afterEventId: page2.at(-1)!.event_id });
    assert.deepEqual(
      [...page1, ...page2, ...page3].map((r) => r.event_id),
      rows.map((r) => r.event_id),
    );
    await assert.rejects(sink.query({ limit: 0 }), RangeError);
    await sink.close();
  });

  it('rows stored by the sink are readable by the log (their payload_pb bytes)', async () => {
    const path = join(dir, 'mixed.db');
    const sink = new SqliteAuditSink({ path });
    await sink.migrate();
    const event = received(9);
    await sink.insert([toAuditRow(event)]);
    const log = await SqliteEventLog.open({ sink });
    const seen: EventEnvelope[] = [];
    const sub = log.read(Streams.audit.name, {}, (msg) => seen.push(decodeEvent(msg.data)));
    await eventually('the sink row', () => seen.length === 1);
    assert.deepEqual(toAuditRow(seen[0]!), toAuditRow(event));
    await sub.unsubscribe();
    await log.close();
    await sink.close();
  });
});

describe('SQLite audit schema upgrade', () => {
  it('adds the masked-body columns to a version-1 database, keeping its rows', () => {
    const path = join(dir, 'v1.db');
    const db = openSqliteAuditDatabase(path);
    const added = new Set(SQLITE_MIGRATIONS.flatMap((m) => m.addColumns ?? []));
    // The table exactly as version 1 created it (the first release's columns only).
    db.exec(
      SQLITE_MIGRATIONS[0]!.sql
        .split('\n')
        .filter((line) => ![...added].some((c) => line.trim().startsWith(`${c} `)))
        .join('\n')
        .replace(/,\n\s*\);/, '\n      );'),
    );
    db.pragma('user_version = 1');
    db.prepare("INSERT INTO audit_events (msg_id, event_id, type) VALUES ('m1', 'e1', 'request.completed')").run();
    const columns = () => (db.pragma('table_info(audit_events)') as { name: string }[]).map((c) => c.name);
    assert.ok(!columns().includes('masked_fields'));
    migrateSqliteAuditDatabase(db);
    migrateSqliteAuditDatabase(db);
    for (const c of added) assert.ok(columns().includes(c), c);
    assert.equal(Number(db.pragma('user_version', { simple: true })), SQLITE_MIGRATIONS.at(-1)!.id);
    const row = db.prepare("SELECT event_id, masked_fields, request_body_excerpt FROM audit_events WHERE msg_id = 'm1'").get() as Record<string, unknown>;
    assert.deepEqual({ ...row }, { event_id: 'e1', masked_fields: 0, request_body_excerpt: '' });
    db.close();
  });
});
