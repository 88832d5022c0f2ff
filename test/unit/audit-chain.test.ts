/**
 * The audit hash chain and `audit verify` on the SQLite store: sealing, the canonical hash's
 * stability through the stored bytes and the JSON derived from them, and a table of tamperings
 * (edited column, edited payload, re-hashed forgery, deleted row, reordered pair, duplicated
 * position) with the finding expected — on rows storing the signed bytes (`payload_pb`) and on
 * rows written before migration 5 (`payload_json` only).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { toBinary } from '@bufbuild/protobuf';
import {
  EventEnvelopeSchema,
  RequestCompletedSchema,
  RequestDecidedSchema,
  RequestReceivedSchema,
  buildEvent,
  create,
  decodeEvent,
  type EventEnvelope,
} from '@portcullis/contracts';
import {
  AuditChain,
  FindingKind,
  SqliteAuditSink,
  eventHash,
  eventHashOfJson,
  parseChainId,
  rowEnvelope,
  toAuditRow,
  toAuditRowOfWire,
  verifyAuditLog,
  withPayloadJson,
  type AuditRow,
  type VerifyReport,
} from '@portcullis/audit-store';

const T0 = Date.UTC(2026, 5, 1, 12, 0, 0, 0);

function requestEvents(n: number, at: number, node = 'edge-1'): EventEnvelope[] {
  const correlationId = `req-${node}-${n}`;
  const meta = { correlationId, nodeId: node, connection: 'prod', sessionId: `sess-${n % 3}` };
  return [
    buildEvent(
      'request.received',
      create(RequestReceivedSchema, {
        identity: { subject: 'ci-bot', groups: ['bots'], clientId: 'ci-bot', tokenId: 'j1' },
        attributes: {
          connection: 'prod',
          connectionType: 'kubernetes',
          method: 'GET',
          kube: { verb: 'get', resource: 'pods', namespace: 'default', name: `p-${n}` },
        },
      }),
      { ...meta, id: correlationId, occurredAtMs: at },
    ),
    buildEvent('request.decided', create(RequestDecidedSchema, { decision: { effect: n % 5 === 0 ? 'deny' : 'allow', ruleId: 'r1', policyVersion: 'v1' } }), {
      ...meta,
      causationId: correlationId,
      occurredAtMs: at + 1,
    }),
    buildEvent('request.completed', create(RequestCompletedSchema, { status: 200, bytesOut: 1000 + n, durationMs: 3, forwarded: true }), {
      ...meta,
      occurredAtMs: at + 4,
    }),
  ];
}

/** Seals events like the edge does and returns the rows the writer would store. */
function sealedRows(events: EventEnvelope[], chain: AuditChain): AuditRow[] {
  return events.map((e) => {
    const wire = chain.seal(e);
    return toAuditRowOfWire(decodeEvent(wire), wire);
  });
}

/** The same rows as a writer before migration 5 stored them: canonical JSON, no bytes. */
function legacyRows(rows: AuditRow[]): AuditRow[] {
  return rows.map((r) => ({ ...withPayloadJson({ ...r }), payload_pb: new Uint8Array(0) }));
}

/** How a row stores its envelope. */
type Form = 'payload_pb' | 'payload_json';

async function store(rows: AuditRow[]): Promise<SqliteAuditSink> {
  const sink = new SqliteAuditSink({ path: join(mkdtempSync(join(tmpdir(), 'chain-')), 'audit.db') });
  await sink.migrate();
  await sink.insert(rows);
  return sink;
}

function kinds(report: VerifyReport): string[] {
  return report.findings.map((f) => f.kind);
}

describe('audit chain: sealing', () => {
  it('seals in call order: seq from 1, each prev_hash the previous hash, and the wire bytes decode to the sealed envelope', () => {
    const chain = new AuditChain('edge-1', T0, 'abcd0123');
    assert.equal(chain.chainId, 'edge-1/2026-06-01T12:00:00.000Z/abcd0123');
    assert.deepEqual(parseChainId(chain.chainId), { nodeId: 'edge-1', startedAtMs: T0 });
    const events = [...requestEvents(1, T0), ...requestEvents(2, T0 + 10)];
    let prev = '';
    events.forEach((e, i) => {
      const decoded = decodeEvent(chain.seal(e));
      assert.equal(decoded.chainSeq, i + 1);
      assert.equal(decoded.chainId, chain.chainId);
      assert.equal(decoded.prevHash, prev);
      assert.match(decoded.hash, /^[0-9a-f]{64}$/);
      assert.equal(decoded.hash, e.hash, 'the caller sees the hash it sent');
      assert.equal(eventHash(decoded), decoded.hash, 'the hash is over the envelope with hash cleared');
      prev = decoded.hash;
    });
    assert.equal(chain.length, 6);
    assert.equal(chain.head, prev);
  });

  it('the canonical hash is a fixed function of the content (golden)', () => {
    const chain = new AuditChain('edge-1', T0, 'abcd0123');
    const [received] = requestEvents(7, T0);
    chain.seal(received!);
    // An encoding change is a contract change: every stored chain would stop verifying.
    assert.equal(received!.hash, eventHash(received!));
    assert.equal(received!.hash, 'cba61144212d861e3d1b1ca0c035545d116cf9fd8354bac04af66ee05bb58f86');
  });

  it('the hash recomputed from the stored payload_json equals the signed one, for arbitrary content', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.array(fc.string({ maxLength: 20 }), { maxLength: 5 }),
        fc.string(),
        // -0 is the one value the stored JSON cannot keep (it prints as 0); producers never set it.
        fc.double().filter((d) => !Object.is(d, -0)),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (subject, groups, userAgent, bodyBytes, status) => {
          const chain = new AuditChain('n1', T0, '00000000');
          const received = buildEvent(
            'request.received',
            create(RequestReceivedSchema, { identity: { subject, groups }, attributes: { userAgent, bodyBytes, connection: 'c' } }),
            { correlationId: 'x', nodeId: 'n1', connection: 'c', occurredAtMs: T0 },
          );
          const completed = buildEvent('request.completed', create(RequestCompletedSchema, { status, bytesOut: bodyBytes }), {
            correlationId: 'x',
            nodeId: 'n1',
            connection: 'c',
            occurredAtMs: T0 + 1,
          });
          for (const e of [received, completed]) {
            const wire = chain.seal(e);
            const row = toAuditRowOfWire(decodeEvent(wire), wire);
            assert.equal(eventHash(rowEnvelope(row)), row.hash);
            // The JSON derived on read (exports, replay) keeps the signed content too.
            assert.equal(eventHashOfJson(withPayloadJson(row).payload_json).hash, row.hash);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

for (const form of ['payload_pb', 'payload_json'] as const satisfies readonly Form[])
  describe(`audit verify on the SQLite store (envelope in ${form})`, () => {
    const build = (): { rows: AuditRow[]; chain: AuditChain } => {
      const chain = new AuditChain('edge-1', T0, 'feedbeef');
      const events: EventEnvelope[] = [];
      for (let n = 0; n < 20; n++) events.push(...requestEvents(n, T0 + n * 10));
      const rows = sealedRows(events, chain);
      return { rows: form === 'payload_pb' ? rows : legacyRows(rows), chain };
    };

    it('passes an untouched log, whatever order the rows were stored in (concurrent edges, two chains)', async () => {
      const { rows } = build();
      const other = sealedRows([...requestEvents(100, T0, 'edge-2'), ...requestEvents(101, T0 + 1, 'edge-2')], new AuditChain('edge-2', T0, '01010101'));
      const shuffled = [...rows, ...other].sort((a, b) => a.event_id.localeCompare(b.event_id)).reverse();
      const sink = await store(shuffled);
      const report = await verifyAuditLog(sink, { pageSize: 7 });
      assert.deepEqual(report.findings, []);
      assert.equal(report.eventsChecked, 66);
      assert.deepEqual(
        report.chains.map((c) => [c.nodeId, c.fromSeq, c.toSeq, c.events]),
        [
          ['edge-1', 1, 60, 60],
          ['edge-2', 1, 6, 6],
        ],
      );
      assert.equal(report.chains[0]!.headHash, rows.at(-1)!.hash);
      await sink.close();
    });

    type Tamper = { name: string; apply: (db: SqliteAuditSink['database'], rows: AuditRow[]) => void; kind: FindingKind; seq: number; message: RegExp };
    const TAMPERS: Tamper[] = [
      {
        name: 'a column edited (the decision turned from deny to allow)',
        apply: (db, rows) => db.prepare(`UPDATE audit_events SET effect = 'allow' WHERE event_id = ?`).run(rows[16]!.event_id),
        kind: FindingKind.Edited,
        seq: 17,
        message: /column effect is "allow", the signed event says "deny"/,
      },
      {
        name: 'the stored envelope edited, hash left as it was',
        apply: (db, rows) =>
          form === 'payload_json'
            ? db
                .prepare(
                  `UPDATE audit_events SET payload_json = replace(payload_json, '"subject":"ci-bot"', '"subject":"alice"'), subject = 'alice' WHERE event_id = ?`,
                )
                .run(rows[3]!.event_id)
            : // Same length, so the protobuf still decodes: only the content changes.
              db
                .prepare(
                  `UPDATE audit_events SET payload_pb = CAST(replace(CAST(payload_pb AS TEXT), 'ci-bot', 'mallet') AS BLOB), subject = 'mallet', client_id = 'mallet' WHERE event_id = ?`,
                )
                .run(rows[3]!.event_id),
        kind: FindingKind.Edited,
        seq: 4,
        message: /its content hashes to [0-9a-f]{64}, but it was signed with [0-9a-f]{64}/,
      },
      {
        name: 'a forgery: envelope edited and re-hashed (the next event no longer links)',
        apply: (db, rows) => {
          const event = rowEnvelope(rows[8]!);
          if (event.payload.case === 'requestCompleted') event.payload.value.status = 404;
          event.hash = '';
          event.hash = eventHash(event);
          const forged = withPayloadJson(toAuditRow(event));
          if (form === 'payload_json') {
            db.prepare(`UPDATE audit_events SET payload_json = ?, hash = ?, status = 404 WHERE event_id = ?`).run(
              forged.payload_json,
              forged.hash,
              rows[8]!.event_id,
            );
          } else {
            db.prepare(`UPDATE audit_events SET payload_pb = ?, hash = ?, status = 404 WHERE event_id = ?`).run(
              Buffer.from(toBinary(EventEnvelopeSchema, event)),
              forged.hash,
              rows[8]!.event_id,
            );
          }
        },
        kind: FindingKind.BrokenLink,
        seq: 10,
        message: /follows an event hashing to [0-9a-f]{64}, which is not in the chain/,
      },
      {
        name: 'a row deleted',
        apply: (db, rows) => db.prepare('DELETE FROM audit_events WHERE event_id = ?').run(rows[30]!.event_id),
        kind: FindingKind.Gap,
        seq: 32,
        message: /1 event missing at seq 31 of chain edge-1\//,
      },
      {
        name: 'a pair reordered (positions and times swapped)',
        apply: (db, rows) => {
          const a = rows[40]!;
          const b = rows[41]!;
          const set = db.prepare('UPDATE audit_events SET chain_seq = ?, ts_ms = ? WHERE event_id = ?');
          db.transaction(() => {
            set.run(b.chain_seq, b.ts_ms, a.event_id);
            set.run(a.chain_seq, a.ts_ms, b.event_id);
          })();
        },
        kind: FindingKind.Reordered,
        seq: 41,
        message: /stored at seq 41, time 2026-06-01T12:00:00\.131Z, but signed as seq 42, time 2026-06-01T12:00:00\.134Z/,
      },
      {
        name: 'the head of the chain deleted',
        apply: (db, rows) => db.prepare('DELETE FROM audit_events WHERE event_id IN (?, ?)').run(rows[0]!.event_id, rows[1]!.event_id),
        kind: FindingKind.Gap,
        seq: 3,
        message: /has no events at seq 1\.\.2/,
      },
    ];

    for (const t of TAMPERS) {
      it(`finds ${t.name}`, async () => {
        const { rows } = build();
        const sink = await store(rows);
        t.apply(sink.database, rows);
        const report = await verifyAuditLog(sink);
        const finding = report.findings.find((f) => f.kind === t.kind);
        assert.ok(finding, `expected a ${t.kind} finding, got ${JSON.stringify(report.findings, null, 1)}`);
        assert.equal(finding.seq, t.seq);
        assert.match(finding.message, t.message);
        await sink.close();
      });
    }

    it('a reordered pair is reported on both events and on the event after them, nothing else', async () => {
      const { rows } = build();
      const sink = await store(rows);
      TAMPERS.find((t) => t.kind === FindingKind.Reordered)!.apply(sink.database, rows);
      const report = await verifyAuditLog(sink);
      assert.deepEqual(kinds(report), ['reordered', 'reordered', 'reordered']);
      assert.deepEqual(
        report.findings.map((f) => f.eventId),
        [rows[41]!.event_id, rows[40]!.event_id, rows[42]!.event_id],
      );
      await sink.close();
    });

    it('two different events at one position are a duplicate', async () => {
      const { rows } = build();
      const sink = await store(rows);
      const copy = { ...rows[5]!, event_id: 'forged-event', correlation_id: 'forged' };
      await sink.insert([copy]);
      const report = await verifyAuditLog(sink);
      assert.ok(
        report.findings.some((f) => f.kind === FindingKind.Duplicate && f.seq === 6),
        JSON.stringify(report.findings),
      );
      await sink.close();
    });

    it('--since checks the window and links its first event to the stored predecessor', async () => {
      const { rows } = build();
      const sink = await store(rows);
      assert.deepEqual((await verifyAuditLog(sink, { sinceMs: T0 + 100 })).findings, []);
      sink.database.prepare('DELETE FROM audit_events WHERE chain_seq = 30').run();
      // The window starts at seq 31 (T0 + 100): its predecessor is gone.
      const report = await verifyAuditLog(sink, { sinceMs: T0 + 100 });
      assert.deepEqual(kinds(report), ['gap']);
      assert.match(report.findings[0]!.message, /no events at seq 1\.\.30/);
      await sink.close();
    });

    it('--session checks the positions spanning the session, --node only that node', async () => {
      const { rows } = build();
      const sink = await store(rows);
      const report = await verifyAuditLog(sink, { sessionId: 'sess-1' });
      assert.deepEqual(report.findings, []);
      assert.equal(report.chains[0]!.fromSeq, 4);
      assert.equal(report.chains[0]!.toSeq, 60);
      assert.equal((await verifyAuditLog(sink, { nodeId: 'edge-9' })).chains.length, 0);
      await sink.close();
    });
  });
