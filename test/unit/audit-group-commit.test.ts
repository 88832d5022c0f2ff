/**
 * Group commit of audit events: the events of concurrent requests go out as one message on
 * audit._batch.events, every caller waits for the ack of the message holding its events (and
 * fails closed without it), a failed batch is retried whole with the same id and bytes, the chain
 * order is the call order, and the audit writer stores each event of a batch once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createInProcessBus, type BusHandle } from '@portcullis/bus';
import {
  auditMessageEvents,
  buildEvent,
  create,
  decodeEvent,
  encodeEventBatch,
  EventType,
  RequestCompletedSchema,
  RequestReceivedSchema,
  Streams,
  Subjects,
  type EventEnvelope,
} from '@portcullis/contracts';
import { AuditChain, AuditWriter, eventHash, SqliteAuditSink } from '@portcullis/audit-store';
import { AuditPublisher, GatewayError } from '@portcullis/gateway';
import { silentLogger } from '@portcullis/common';
import { eventually } from '../support/eventually.js';
import { RecordingLog } from '../support/recording-log.js';

async function setup(): Promise<{ handle: BusHandle; log: RecordingLog }> {
  const handle = createInProcessBus({ logger: silentLogger });
  await handle.log.ensureStream({ name: Streams.audit.name, subjects: Streams.audit.subjects, maxAgeMs: 0, duplicateWindowMs: 60_000, replicas: 1 });
  return { handle, log: new RecordingLog(handle.log, { failure: () => new Error('JetStream unavailable (test)') }) };
}

function received(i: number): EventEnvelope {
  return buildEvent(EventType.RequestReceived, create(RequestReceivedSchema, { identity: { subject: `bot-${i}` }, attributes: { connection: 'prod' } }), {
    id: `req-${i}`,
    correlationId: `req-${i}`,
    nodeId: 'edge-1',
    connection: 'prod',
  });
}

function completed(i: number): EventEnvelope {
  return buildEvent(EventType.RequestCompleted, create(RequestCompletedSchema, { status: 200 }), {
    correlationId: `req-${i}`,
    nodeId: 'edge-1',
    connection: 'prod',
  });
}

const eventsOf = (a: { subject: string; data: Uint8Array }): EventEnvelope[] => auditMessageEvents(a.subject, a.data).map((d) => decodeEvent(d));

describe('audit group commit', () => {
  test('the events of 50 concurrent requests share one acked message, in call (chain) order', async () => {
    const { handle, log } = await setup();
    const publisher = new AuditPublisher(log, 1000, silentLogger, { groupCommit: {}, chain: new AuditChain('edge-1') });
    await Promise.all(Array.from({ length: 50 }, (_, i) => publisher.record(received(i), completed(i))));
    assert.equal(log.attempts.length, 1, 'one message for the turn');
    const [msg] = log.attempts;
    assert.equal(msg!.subject, Subjects.auditBatch());
    assert.notEqual(msg!.msgId, 'req-0', 'the batch has its own message id');
    const events = eventsOf(msg!);
    assert.equal(events.length, 100);
    assert.deepEqual(
      events.map((e) => e.chainSeq),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      events.slice(0, 4).map((e) => [e.type, e.correlationId]),
      [
        [EventType.RequestReceived, 'req-0'],
        [EventType.RequestCompleted, 'req-0'],
        [EventType.RequestReceived, 'req-1'],
        [EventType.RequestCompleted, 'req-1'],
      ],
    );
    for (let i = 1; i < events.length; i++) assert.equal(events[i]!.prevHash, events[i - 1]!.hash, `link ${i}`);
    // Each entry is the sealed event's exact bytes: its hash still verifies.
    for (const e of events) assert.equal(eventHash(e), e.hash);
    await handle.close();
  });

  test('one event alone goes out in the single-event format, on its own subject, under its own id', async () => {
    const { handle, log } = await setup();
    const publisher = new AuditPublisher(log, 1000, silentLogger, { groupCommit: {} });
    await publisher.record(received(1));
    assert.deepEqual(
      log.attempts.map((a) => [a.subject, a.msgId]),
      [[Subjects.auditEvent('prod', EventType.RequestReceived), 'req-1']],
    );
    assert.equal(decodeEvent(log.attempts[0]!.data).id, 'req-1');
    await handle.close();
  });

  test('no ack → every request of the batch fails closed; the batch is retried whole and stored once', async () => {
    const { handle, log } = await setup();
    const publisher = new AuditPublisher(log, 1000, silentLogger, { groupCommit: {}, retryForMs: 10_000 });
    log.failing = true;
    const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => publisher.record(received(i))));
    publisher.recordLater(completed(9));
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      assert.ok(r.reason instanceof GatewayError && r.reason.code === 'audit_unavailable', String(r.reason));
    }
    const failed = log.attempts[0]!;
    log.failing = false;
    await eventually('the background retries to finish', () => publisher.retrying === 0, { timeoutMs: 5000, seen: () => `${publisher.retrying} retrying` });
    const retries = log.attempts.filter((a) => a.msgId === failed.msgId);
    assert.ok(retries.length >= 2, 'retried under the same message id');
    for (const r of retries) assert.deepEqual(r.data, failed.data, 'same bytes');
    const stored = await handle.log.snapshot(Streams.audit.name, {});
    const ids = stored.flatMap((m) => auditMessageEvents(m.subject, m.data).map((d) => decodeEvent(d).correlationId));
    assert.deepEqual(ids.sort(), ['req-0', 'req-1', 'req-2', 'req-3', 'req-4', 'req-9'].sort(), 'each event once (the log de-duplicated by batch id)');
    await handle.close();
  });

  test('maxEvents splits a turn; a request whose events span two messages waits for both', async () => {
    const { handle, log } = await setup();
    const publisher = new AuditPublisher(log, 1000, silentLogger, { groupCommit: { maxEvents: 3 } });
    const all = Promise.all([publisher.record(received(1), completed(1)), publisher.record(received(2), completed(2))]);
    await all;
    assert.deepEqual(
      log.attempts.map((a) => eventsOf(a).length),
      [3, 1],
    );
    await handle.close();
  });

  test('the audit writer stores every event of a batch once and dead-letters a bad entry alone', async () => {
    const { handle } = await setup();
    const chain = new AuditChain('edge-1');
    const sealed = Array.from({ length: 4 }, (_, i) => chain.seal(received(i)));
    const batch = encodeEventBatch([...sealed, new Uint8Array([1, 2, 3]), sealed[0]!]);
    await handle.log.append(Subjects.auditBatch(), batch, 'batch-1');
    const single = completed(0);
    await handle.log.append(Subjects.auditEvent('prod', EventType.RequestCompleted), chain.seal(single), single.id);
    const sink = new SqliteAuditSink({ path: join(mkdtempSync(join(tmpdir(), 'group-commit-')), 'audit.db') });
    await sink.migrate();
    const dead: { subject: string; reason: string }[] = [];
    const writer = new AuditWriter({
      log: handle.log,
      sink,
      logger: silentLogger,
      maxWaitMs: 20,
      deadLetter: (_data, subject, reason) => {
        dead.push({ subject, reason });
        return Promise.resolve();
      },
    });
    writer.start();
    await eventually('5 events written', () => writer.stats.written >= 5, { timeoutMs: 5000, seen: () => writer.stats });
    await writer.stop();
    const rows = await sink.query({});
    // Four batched events (the first one twice in the batch) and the single one, each once.
    assert.deepEqual(rows.map((r) => r.event_id).sort(), [...sealed.map((b) => decodeEvent(b).id), single.id].sort());
    assert.equal(dead.length, 1);
    assert.equal(dead[0]!.subject, Subjects.auditBatch());
    await sink.close();
    await handle.close();
  });

  test('a completion lingers and rides in the next admission message, in chain order', async () => {
    const { handle, log } = await setup();
    const publisher = new AuditPublisher(log, 1000, silentLogger, { groupCommit: { lingerMs: 60_000 }, chain: new AuditChain('edge-1') });
    await publisher.record(received(1));
    publisher.recordLater(completed(1));
    assert.equal(log.attempts.length, 1, 'the completion waits for the next admission');
    await publisher.record(received(2));
    assert.equal(log.attempts.length, 2, 'one message carried the completion and the next admission');
    const events = eventsOf(log.attempts[1]!);
    assert.deepEqual(
      events.map((e) => [e.type, e.correlationId, e.chainSeq]),
      [
        [EventType.RequestCompleted, 'req-1', 2],
        [EventType.RequestReceived, 'req-2', 3],
      ],
    );
    await handle.close();
  });

  test('an idle completion goes out alone after the linger; flush() sends what waits at once', async () => {
    const { handle, log } = await setup();
    const quick = new AuditPublisher(log, 1000, silentLogger, { groupCommit: { lingerMs: 5 } });
    quick.recordLater(completed(1));
    await eventually('the lingering completion to go out', () => log.attempts.length > 0, 5000);
    assert.equal(log.attempts.length, 1);
    assert.equal(log.attempts[0]!.subject, Subjects.auditEvent('prod', EventType.RequestCompleted), 'a lone event in the single-event format');
    assert.equal(log.attempts[0]!.msgId, decodeEvent(log.attempts[0]!.data).id);
    const slow = new AuditPublisher(log, 1000, silentLogger, { groupCommit: { lingerMs: 60_000 } });
    slow.recordLater(completed(2));
    slow.recordLater(completed(3));
    assert.equal(log.attempts.length, 1);
    await slow.flush();
    assert.equal(log.attempts.length, 2, 'flush sent both waiting completions in one message');
    assert.deepEqual(
      eventsOf(log.attempts[1]!).map((e) => e.correlationId),
      ['req-2', 'req-3'],
    );
    const stored = await handle.log.snapshot(Streams.audit.name, {});
    assert.equal(stored.length, 2, 'flush resolved after the log acknowledged');
    await handle.close();
  });

  test('the writer inserts a batch of group-committed messages in chunks of about maxInsertRows rows, all stored once', async () => {
    const { handle } = await setup();
    const chain = new AuditChain('edge-1');
    for (let m = 0; m < 5; m++) {
      const sealed = Array.from({ length: 4 }, (_, i) => chain.seal(received(m * 4 + i)));
      await handle.log.append(Subjects.auditBatch(), encodeEventBatch(sealed), `batch-chunks-${m}`);
    }
    const real = new SqliteAuditSink({ path: join(mkdtempSync(join(tmpdir(), 'group-commit-')), 'audit.db') });
    await real.migrate();
    const inserts: number[] = [];
    const sink = Object.assign(Object.create(real) as SqliteAuditSink, {
      insert: async (rows: Parameters<SqliteAuditSink['insert']>[0]) => {
        inserts.push(rows.length);
        await real.insert(rows);
      },
    });
    // Five messages of four events in one delivered batch; a chunk closes at a message boundary once it holds 6 rows or more.
    const writer = new AuditWriter({ log: handle.log, sink, logger: silentLogger, batchSize: 100, maxWaitMs: 20, maxInsertRows: 6 });
    writer.start();
    await eventually('20 events written', () => writer.stats.written >= 20, { timeoutMs: 5000, seen: () => writer.stats });
    await writer.stop();
    assert.deepEqual(inserts, [8, 8, 4]);
    assert.equal((await real.query({})).length, 20, 'every event stored once');
    await real.close();
    await handle.close();
  });

  test('a message on the batch subject that is not a batch is refused by name', () => {
    assert.throws(() => auditMessageEvents(Subjects.auditBatch(), new Uint8Array([0xff, 0xff])), /not a protobuf EventBatch/);
    const one = new Uint8Array([1]);
    assert.deepEqual(auditMessageEvents('audit.prod.request.received', one), [one]);
  });
});
