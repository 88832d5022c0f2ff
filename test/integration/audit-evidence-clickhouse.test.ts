/**
 * Evidence features on the real ClickHouse 18.16: the chain columns migration on a table created
 * by the first schema, `audit verify` against tamperings done the way someone with write access to
 * ClickHouse would do them (a replacing insert, ALTER … DELETE mutations, delete + re-insert), the
 * OCSF view equal to the TypeScript mapping, and retention dropping whole month partitions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import {
  RequestCompletedSchema,
  RequestDecidedSchema,
  RequestReceivedSchema,
  RequestRejectedSchema,
  buildEvent,
  create,
  decodeEvent,
  type EventEnvelope,
} from '@portcullis/contracts';
import {
  AuditChain,
  CLICKHOUSE_MIGRATIONS,
  ClickHouseAuditSink,
  FindingKind,
  OCSF_FLAT_COLUMNS,
  eventHash,
  ocsfFlat,
  runRetention,
  rowEnvelope,
  toAuditRow,
  toAuditRowOfWire,
  withPayloadJson,
  verifyAuditLog,
  type AuditRow,
  type OcsfFlat,
} from '@portcullis/audit-store';
import { sharedClickHouseUrl, uniqueName } from '../harness/services.js';
import { eventually } from '../support/eventually.js';

const T0 = Date.UTC(2026, 5, 1, 12, 0, 0, 0);

function request(n: number, at: number, effect: string, verb: string, status: number): EventEnvelope[] {
  const correlationId = `req-${n}-${at}`;
  const meta = { correlationId, nodeId: 'edge-1', connection: 'prod', sessionId: `sess-${n % 2}` };
  return [
    buildEvent(
      'request.received',
      create(RequestReceivedSchema, {
        identity: { subject: 'ci-bot', groups: ['bots', 'ci'], clientId: 'ci-bot', issuer: 'https://issuer', tokenId: 'jti-1' },
        attributes: {
          connection: 'prod',
          connectionType: 'kubernetes',
          method: verb === 'delete' ? 'DELETE' : 'GET',
          sourceIp: '10.0.0.9',
          userAgent: 'kubectl/v1.32',
          kube: { verb, apiVersion: 'v1', resource: 'pods', subresource: n % 3 === 0 ? 'log' : '', namespace: 'default', name: `p-${n}` },
        },
      }),
      { ...meta, id: correlationId, occurredAtMs: at },
    ),
    buildEvent(
      'request.decided',
      create(RequestDecidedSchema, { decision: { effect, ruleId: `rule-${effect}`, policyVersion: 'v3', message: effect === 'deny' ? 'no' : '' } }),
      {
        ...meta,
        causationId: correlationId,
        occurredAtMs: at + 1,
      },
    ),
    buildEvent('request.completed', create(RequestCompletedSchema, { status, bytesOut: 10 * n, bytesIn: n, durationMs: n, forwarded: effect === 'allow' }), {
      ...meta,
      occurredAtMs: at + 3,
    }),
  ];
}

/** The rows the writer stores: the sealed bytes as received. */
function sealed(events: EventEnvelope[], chain: AuditChain): AuditRow[] {
  return events.map((e) => {
    const wire = chain.seal(e);
    return toAuditRowOfWire(decodeEvent(wire), wire);
  });
}

function byEventId(rows: readonly AuditRow[]): AuditRow[] {
  return [...rows].sort((a, b) => a.event_id.localeCompare(b.event_id));
}

describe('audit evidence on ClickHouse', () => {
  let url: string;
  let client: ClickHouseClient;
  before(async () => {
    url = await sharedClickHouseUrl();
    client = createClient({ url });
  });
  after(async () => {
    await client.close();
  });
  const command = async (query: string): Promise<void> => {
    await client.command({ query });
  };
  const select = async <T>(query: string): Promise<T[]> => (await client.query({ query, format: 'JSONEachRow' })).json<T>();
  /** ALTER … DELETE is a mutation: wait until ClickHouse has applied it. */
  const mutationsDone = async (database: string): Promise<void> => {
    const pending = async (): Promise<number> =>
      Number((await select<{ n: number | string }>(`SELECT count() AS n FROM system.mutations WHERE database = '${database}' AND is_done = 0`))[0]?.n ?? 0);
    let left = 0;
    await eventually(`the mutations of ${database} to be done`, async () => (left = await pending()) === 0, {
      timeoutMs: 30_000,
      seen: () => `${left} pending`,
    });
  };

  it('a table of the first schema gains the chain columns; migrating again and concurrently is a no-op', async () => {
    const database = uniqueName('audit_v1');
    const v1 = new ClickHouseAuditSink({ url, database, migrations: CLICKHOUSE_MIGRATIONS.filter((m) => m.id === 1) });
    await v1.migrate();
    await v1.close();
    const sinks = [new ClickHouseAuditSink({ url, database }), new ClickHouseAuditSink({ url, database })];
    await Promise.all(sinks.map((s) => s.migrate()));
    await sinks[0]!.migrate();
    assert.deepEqual(
      (await sinks[0]!.appliedMigrations()).map((m) => m.id),
      CLICKHOUSE_MIGRATIONS.map((m) => m.id),
    );
    const columns = await select<{ name: string }>(`SELECT name FROM system.columns WHERE database = '${database}' AND table = 'audit_events'`);
    const names = columns.map((c) => c.name);
    assert.deepEqual(names.slice(names.indexOf('payload_json'), names.indexOf('payload_json') + 3), ['payload_json', 'chain_id', 'chain_seq']);
    const rows = sealed(request(1, T0, 'allow', 'get', 200), new AuditChain('edge-1', T0, 'aaaaaaaa'));
    await sinks[0]!.insert(rows);
    assert.deepEqual(
      await sinks[0]!.query({}),
      rows.map((r) => withPayloadJson({ ...r })),
    );
    // Rows written before migration 5 (payload_json, no bytes) read and verify alongside.
    const legacy = sealed(request(2, T0 + 10, 'deny', 'get', 403), new AuditChain('edge-old', T0, 'cccccccc')).map((r) => ({
      ...withPayloadJson({ ...r }),
      payload_pb: new Uint8Array(0),
    }));
    await sinks[0]!.insert(legacy);
    assert.deepEqual(byEventId(await sinks[0]!.query({ correlationId: legacy[0]!.correlation_id })), byEventId(legacy));
    assert.deepEqual((await verifyAuditLog(sinks[0]!)).findings, []);
    await command(
      `ALTER TABLE ${database}.audit_events UPDATE payload_json = replace(payload_json, '"effect":"deny"', '"effect":"allow"') WHERE event_id = '${legacy[1]!.event_id}'`,
    );
    await mutationsDone(database);
    const edited = await verifyAuditLog(sinks[0]!);
    assert.deepEqual(
      edited.findings.map((f) => [f.kind, f.eventId]),
      [[FindingKind.Edited, legacy[1]!.event_id]],
    );
    assert.match(edited.findings[0]!.message, /its content hashes to [0-9a-f]{64}, but it was signed with [0-9a-f]{64}/);
    await Promise.all(sinks.map((s) => s.close()));
    await command(`DROP DATABASE ${database}`);
  });

  it('verify passes the untouched log and finds an edited row, a deleted row and a reordered pair', async () => {
    const database = uniqueName('audit_tamper');
    const sink = new ClickHouseAuditSink({ url, database });
    await sink.migrate();
    const chain = new AuditChain('edge-1', T0, 'bbbbbbbb');
    const events: EventEnvelope[] = [];
    for (let n = 0; n < 30; n++)
      events.push(...request(n, T0 + n * 10, n % 4 === 0 ? 'deny' : 'allow', n % 7 === 0 ? 'delete' : 'get', n % 4 === 0 ? 403 : 200));
    const rows = sealed(events, chain);
    // Inserted in two batches, out of chain order, one batch twice (a redelivery).
    await sink.insert(rows.slice(45));
    await sink.insert(rows.slice(0, 45).reverse());
    await sink.insert(rows.slice(45));
    const clean = await verifyAuditLog(sink, { pageSize: 16 });
    assert.deepEqual(clean.findings, []);
    assert.equal(clean.eventsChecked, 90);

    const table = `${database}.audit_events`;
    // 1. Edited: a replacing insert with the same sorting key — FINAL now shows the new version.
    const denied = rows[1]!; // request 0 was denied
    assert.equal(denied.effect, 'deny');
    await sink.insert([{ ...denied, effect: 'allow', rule_id: 'rule-allow' }]);
    // 2. Deleted: a mutation removes one event.
    await command(`ALTER TABLE ${table} DELETE WHERE event_id = '${rows[20]!.event_id}'`);
    // 3. Reordered: two events deleted and re-inserted with their positions and times swapped.
    const [a, b] = [rows[60]!, rows[61]!];
    await command(`ALTER TABLE ${table} DELETE WHERE event_id IN ('${a.event_id}', '${b.event_id}')`);
    await mutationsDone(database);
    await sink.insert([
      { ...a, chain_seq: b.chain_seq, ts_ms: b.ts_ms, event_time: Math.floor(b.ts_ms / 1000) },
      { ...b, chain_seq: a.chain_seq, ts_ms: a.ts_ms, event_time: Math.floor(a.ts_ms / 1000) },
    ]);

    const report = await verifyAuditLog(sink);
    const by = (kind: FindingKind): string[] => report.findings.filter((f) => f.kind === kind).map((f) => `${f.seq} ${f.eventId}`);
    assert.deepEqual(by(FindingKind.Edited), [`2 ${denied.event_id}`]);
    assert.match(
      report.findings.find((f) => f.kind === FindingKind.Edited)!.message,
      /column effect is "allow", the signed event says "deny"; column rule_id is "rule-allow", the signed event says "rule-deny"/,
    );
    assert.deepEqual(by(FindingKind.Gap), [`22 ${rows[21]!.event_id}`]);
    assert.match(
      report.findings.find((f) => f.kind === FindingKind.Gap)!.message,
      /1 event missing at seq 21 of chain edge-1\/2026-06-01T12:00:00\.000Z\/bbbbbbbb/,
    );
    assert.deepEqual(by(FindingKind.Reordered), [`61 ${b.event_id}`, `62 ${a.event_id}`, `63 ${rows[62]!.event_id}`]);
    assert.equal(report.findings.length, 5, JSON.stringify(report.findings, null, 1));

    // A forgery that re-hashes the edited event still breaks the link to its successor.
    const event = rowEnvelope(rows[41]!);
    if (event.payload.case === 'requestCompleted') event.payload.value.status = 500;
    event.hash = '';
    event.hash = eventHash(event);
    await sink.insert([toAuditRow(event)]);
    const forged = await verifyAuditLog(sink, { sinceMs: rows[38]!.ts_ms, untilMs: rows[44]!.ts_ms });
    assert.deepEqual(
      forged.findings.map((f) => [f.kind, f.seq]),
      [[FindingKind.BrokenLink, 43]],
    );
    await sink.close();
    await command(`DROP DATABASE ${database}`);
  });

  it('the OCSF view returns, per request, exactly what the TypeScript mapping computes', async () => {
    const database = uniqueName('audit_ocsf');
    const sink = new ClickHouseAuditSink({ url, database });
    await sink.migrate();
    const chain = new AuditChain('edge-1', T0, 'cccccccc');
    const events = [
      ...request(1, T0, 'allow', 'get', 200),
      ...request(2, T0 + 10, 'deny', 'delete', 403),
      ...request(3, T0 + 20, 'allow', 'list', 500),
      ...request(4, T0 + 30, 'allow', 'patch', 200).slice(0, 2), // still open: no completion yet
      buildEvent(
        'request.rejected',
        create(RequestRejectedSchema, {
          status: 401,
          reason: 'unauthenticated',
          message: 'no token',
          attributes: { connection: 'prod', method: 'GET', kube: { path: '/version' } },
        }),
        { correlationId: 'rej-1', id: 'rej-1', nodeId: 'edge-1', connection: 'prod', occurredAtMs: T0 + 40 },
      ),
    ];
    const rows = sealed(events, chain);
    await sink.insert(rows);
    await sink.insert(rows.slice(0, 3)); // redelivered: the view reads FINAL
    const view = await select<Record<string, unknown>>(`SELECT * FROM ${database}.audit_requests_ocsf ORDER BY time`);
    const groups = new Map<string, AuditRow[]>();
    for (const r of rows) groups.set(r.correlation_id, [...(groups.get(r.correlation_id) ?? []), r]);
    const expected = [...groups.values()].map(ocsfFlat).sort((x, y) => x.time - y.time);
    assert.deepEqual(Object.keys(view[0]!), [...OCSF_FLAT_COLUMNS]);
    const normalize = (r: Record<string, unknown>): OcsfFlat =>
      Object.fromEntries(OCSF_FLAT_COLUMNS.map((c) => [c, typeof expected[0]![c] === 'number' ? Number(r[c]) : r[c]])) as unknown as OcsfFlat;
    assert.deepEqual(view.map(normalize), expected);
    assert.deepEqual(
      expected.map((e) => [e.activity_id, e.status_id, e.status_code, e.resource_type]),
      [
        [2, 1, '200', 'pods'],
        [4, 2, '403', 'pods'],
        [2, 2, '500', 'pods/log'],
        [3, 0, '', 'pods'],
        [2, 2, '401', ''],
      ],
    );
    await sink.close();
    await command(`DROP DATABASE ${database}`);
  });

  it('retention drops whole months older than the cutoff, records the run first, and verify accepts the dropped head', async () => {
    const database = uniqueName('audit_retention');
    const sink = new ClickHouseAuditSink({ url, database });
    await sink.migrate();
    const chain = new AuditChain('edge-1', Date.UTC(2026, 0, 20), 'dddddddd');
    const months = [Date.UTC(2026, 0, 20), Date.UTC(2026, 1, 10), Date.UTC(2026, 2, 31, 23, 59, 59), Date.UTC(2026, 3, 1)];
    const rows = sealed(
      months.flatMap((at, i) => request(i, at, 'allow', 'get', 200)),
      chain,
    );
    await sink.insert(rows);
    const now = Date.UTC(2026, 3, 15);
    const retentionMs = 30 * 86_400_000; // cutoff 2026-03-16: January and February are entirely older
    const recorded: EventEnvelope[] = [];
    const dry = await runRetention(sink, { retentionMs, retentionText: '30d', dryRun: true, nodeId: 'audit-1', now });
    assert.deepEqual(
      dry.partitions.map((p) => [p.id, p.rows]),
      [
        ['202601', 3],
        ['202602', 3],
      ],
    );
    assert.equal(await sink.count({}), 12, 'a dry run drops nothing');
    const plan = await runRetention(sink, {
      retentionMs,
      retentionText: '30d',
      dryRun: false,
      nodeId: 'audit-1',
      now,
      record: async (event) => {
        recorded.push(event);
        await sink.insert([toAuditRow(decodeEvent(new AuditChain('audit-1', now, 'eeeeeeee').seal(event)))]);
      },
    });
    assert.equal(plan.droppedBeforeMs, Date.UTC(2026, 2, 1));
    const parts = await select<{ partition: string }>(
      `SELECT DISTINCT partition FROM system.parts WHERE database = '${database}' AND table = 'audit_events' AND active ORDER BY partition`,
    );
    assert.deepEqual(
      parts.map((p) => p.partition),
      ['202603', '202604'],
    );
    assert.equal(recorded.length, 1);
    assert.equal(recorded[0]!.type, 'audit.retention_applied');
    const retained = await sink.query({ type: 'audit.retention_applied' });
    assert.match(retained[0]!.decision_message, /clickhouse: dropped 6 events before 2026-03-01T00:00:00\.000Z \(months 202601, 202602\)/);
    const report = await verifyAuditLog(sink);
    assert.deepEqual(report.findings, []);
    assert.match(report.notes.join('\n'), /begins at seq 7: its earlier events were older than the retention cutoff/);
    await sink.close();
    await command(`DROP DATABASE ${database}`);
  });
});
