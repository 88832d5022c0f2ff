/**
 * Every decision a human or an operator makes is in the tamper-evident chain: the approval role
 * seals its events in chain segments of its own (ApprovalJournal → ChainedAppender), so `audit
 * verify` fails when an approval row is deleted, edited, or inserted without a chain — on the
 * SQLite store, with the events exactly as the journal appended them.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  ApprovalApprovedSchema,
  ApprovalConsumedSchema,
  ApprovalRequestedSchema,
  Streams,
  auditMessageEvents,
  buildEvent,
  create,
  decodeEvent,
  encodeEvent,
  type EventEnvelope,
} from '@portcullis/contracts';
import { createInProcessBus, type EventLog } from '@portcullis/bus';
import { ApprovalJournal } from '@portcullis/approval';
import { ChainedAppender, FindingKind, SqliteAuditSink, formatVerifyReport, toAuditRowOfWire, verifyAuditLog, type AuditRow } from '@portcullis/audit-store';

const T0 = Date.UTC(2026, 5, 1, 12, 0, 0, 0);

/** The three events of a held delete approved and then forwarded. */
function approvalEvents(n: number, at: number): EventEnvelope[] {
  const approvalId = `appr-${n}`;
  const meta = { correlationId: `req-${n}`, nodeId: 'approval-1', connection: 'prod' };
  return [
    buildEvent(
      'approval.requested',
      create(ApprovalRequestedSchema, {
        approvalId,
        fingerprint: `fp-${n}`,
        requester: { subject: 'ci-bot', groups: ['bots'] },
        attributes: { connection: 'prod', method: 'DELETE', kube: { verb: 'delete', resource: 'namespaces', name: `ns-${n}` } },
        ruleId: 'delete-namespace-needs-sre',
        policyVersion: 'v1',
      }),
      { ...meta, occurredAtMs: at },
    ),
    buildEvent(
      'approval.approved',
      create(ApprovalApprovedSchema, { approvalId, approver: { subject: 'sre-alice', groups: ['sre'], via: 'api' }, reason: 'cleanup, INC-42' }),
      { ...meta, occurredAtMs: at + 1000 },
    ),
    buildEvent('approval.consumed', create(ApprovalConsumedSchema, { approvalId, requestId: `req-${n}`, uses: 1 }), { ...meta, occurredAtMs: at + 1100 }),
  ];
}

/** What the audit writer stores: one row per event appended to the audit stream, bytes as appended. */
async function storedRows(log: EventLog): Promise<AuditRow[]> {
  const rows: AuditRow[] = [];
  for (const m of await log.snapshot(Streams.audit.name, {})) {
    for (const data of auditMessageEvents(m.subject, m.data)) rows.push(toAuditRowOfWire(decodeEvent(data), data));
  }
  return rows;
}

async function sinkOf(rows: AuditRow[]): Promise<SqliteAuditSink> {
  const sink = new SqliteAuditSink({ path: join(mkdtempSync(join(tmpdir(), 'decision-chain-')), 'audit.db') });
  await sink.migrate();
  await sink.insert(rows);
  return sink;
}

async function journalled(): Promise<{ rows: AuditRow[]; journal: ApprovalJournal }> {
  const handle = createInProcessBus();
  await handle.log.ensureStream({ name: Streams.audit.name, subjects: Streams.audit.subjects, maxAgeMs: 0, duplicateWindowMs: 60_000, replicas: 1 });
  const journal = new ApprovalJournal(handle.log, 2000, 'approval-1');
  for (const event of [...approvalEvents(1, T0), ...approvalEvents(2, T0 + 5000)]) await journal.append(event);
  return { rows: await storedRows(handle.log), journal };
}

describe('approval events in the approval role’s own chain', () => {
  it('the journal seals every approval event: one segment of the approval node, seq 1..6, and verify covers them all', async () => {
    const { rows, journal } = await journalled();
    assert.equal(rows.length, 6);
    assert.ok(rows.every((r) => r.chain_id === rows[0]!.chain_id && /^approval-1\/\S+\/[0-9a-f]{8}$/.test(r.chain_id)));
    assert.deepEqual(
      rows.map((r) => r.chain_seq),
      [1, 2, 3, 4, 5, 6],
    );
    assert.deepEqual(journal.takeHeads(), [{ chainId: rows[0]!.chain_id, seq: 6, hash: rows[5]!.hash }]);
    assert.deepEqual(journal.takeHeads(), [], 'heads are taken once');
    const report = await verifyAuditLog(await sinkOf(rows));
    assert.deepEqual(report.findings, []);
    assert.equal(report.eventsChecked, 6);
    assert.equal(report.unchained, 0);
    assert.doesNotMatch(formatVerifyReport(report).join('\n'), /no hash chain/);
  });

  it('deleting the rows that say who approved and why fails verify, naming the missing positions', async () => {
    const { rows } = await journalled();
    // approval.requested and approval.approved of the first approval.
    const report = await verifyAuditLog(await sinkOf(rows.filter((r) => r.chain_seq !== 1 && r.chain_seq !== 2)));
    assert.deepEqual(
      report.findings.map((f) => f.kind),
      [FindingKind.Gap],
    );
    assert.match(report.findings[0]!.message, /no events at seq 1\.\.2; the first stored event is at seq 3/);
    const middle = await verifyAuditLog(await sinkOf(rows.filter((r) => r.chain_seq !== 5)));
    assert.match(middle.findings[0]!.message, /^gap: 1 event missing at seq 5 of chain approval-1\/\S+, before event \S+ \(approval\.consumed/);
  });

  it('editing who approved fails verify', async () => {
    const { rows } = await journalled();
    const edited = rows.map((r) => (r.type === 'approval.approved' && r.approval_id === 'appr-2' ? { ...r, subject: 'sre-bob' } : r));
    const report = await verifyAuditLog(await sinkOf(edited));
    assert.deepEqual(
      report.findings.map((f) => f.kind),
      [FindingKind.Edited],
    );
    assert.match(report.findings[0]!.message, /column subject is "sre-bob", the signed event says "sre-alice"/);
  });

  it('an approval row inserted without a chain after approvals were chained is a finding, not "stored before chaining"', async () => {
    const { rows } = await journalled();
    const [forged] = approvalEvents(3, T0 + 10_000).slice(1);
    const wire = encodeEvent(forged!);
    const report = await verifyAuditLog(await sinkOf([...rows, toAuditRowOfWire(decodeEvent(wire), wire)]));
    assert.deepEqual(
      report.findings.map((f) => [f.kind, f.eventId]),
      [[FindingKind.Unchained, forged!.id]],
    );
    assert.match(report.findings[0]!.message, /carries no hash chain, but approval\.approved events are chained since/);
    assert.equal(report.unchained, 0);
    // One from before approvals were chained is only noted.
    const [legacy] = approvalEvents(0, T0 - 60_000).slice(1);
    const legacyWire = encodeEvent(legacy!);
    const old = await verifyAuditLog(await sinkOf([...rows, toAuditRowOfWire(decodeEvent(legacyWire), legacyWire)]));
    assert.deepEqual(old.findings, []);
    assert.equal(old.unchained, 1);
    assert.match(formatVerifyReport(old).join('\n'), /1 events in the window carry no hash chain \(stored before chaining\)/);
  });

  it('an append the log did not acknowledge ends the segment: the next event starts a new one, so no gap is left', async () => {
    const appended: Uint8Array[] = [];
    let fail = false;
    const log: Pick<EventLog, 'append'> = {
      append: (_subject, data) => {
        if (fail) return Promise.reject(new Error('no ack'));
        appended.push(data);
        return Promise.resolve({ stream: Streams.audit.name, seq: appended.length, duplicate: false });
      },
    };
    const appender = new ChainedAppender(log, 'approval-1', 100);
    const [a, b, c] = approvalEvents(4, T0);
    await appender.append(a!);
    fail = true;
    await assert.rejects(appender.append(b!), /no ack/);
    fail = false;
    await appender.append(c!);
    const rows = appended.map((data) => toAuditRowOfWire(decodeEvent(data), data));
    assert.notEqual(rows[0]!.chain_id, rows[1]!.chain_id);
    assert.deepEqual(
      rows.map((r) => r.chain_seq),
      [1, 1],
    );
    assert.deepEqual((await verifyAuditLog(await sinkOf(rows))).findings, []);
    assert.deepEqual(
      appender.takeHeads().map((h) => h.seq),
      [1, 1],
    );
  });
});
