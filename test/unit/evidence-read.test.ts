/** Who reads the evidence is evidence: each read is an evidence.read event, recorded before it is answered, or refused. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  cliReader,
  EvidenceAction,
  EvidenceReadRecorder,
  EvidenceReadUnrecordedError,
  toAuditRow,
  verifyAuditLog,
  SqliteAuditSink,
} from '@portcullis/audit-store';
import { createInProcessBus } from '@portcullis/bus';
import { create, IdentitySchema, Streams } from '@portcullis/contracts';
import { RecordingLog } from '../support/recording-log.js';

const AUDITOR = create(IdentitySchema, { subject: 'sec-team', groups: ['auditors'], clientId: 'auditor', issuer: 'https://idp', tokenId: 'jti-9' });

describe('evidence.read', () => {
  test('a read is recorded with who, what, how many and from where, and maps to an audit row', async () => {
    const handle = createInProcessBus();
    await handle.log.ensureStream({ name: Streams.audit.name, subjects: Streams.audit.subjects, maxAgeMs: 0, duplicateWindowMs: 60_000, replicas: 1 });
    const log = new RecordingLog(handle.log);
    const reads = new EvidenceReadRecorder(log, 'audit-1');
    await reads.record({ reader: AUDITOR, action: EvidenceAction.AuditReplay, via: 'api', query: { id: 'abc' }, results: 7, source: '10.0.0.9' });
    const [event] = log.appended;
    assert.equal(event?.type, 'evidence.read');
    assert.equal(event?.connection, '_system');
    assert.ok((event?.occurredAtMs ?? 0) > Date.now() - 60_000, 'when');
    assert.equal(event?.payload.case, 'evidenceRead');
    const v = event?.payload.case === 'evidenceRead' ? event.payload.value : undefined;
    assert.deepEqual(
      [v?.reader?.subject, v?.reader?.groups, v?.action, v?.via, v?.query, v?.results, v?.source],
      ['sec-team', ['auditors'], 'audit.replay', 'api', '{"id":"abc"}', 7, '10.0.0.9'],
    );
    const row = toAuditRow(event);
    assert.deepEqual(
      [row.type, row.subject, row.groups, row.client_id, row.reason, row.source_ip],
      ['evidence.read', 'sec-team', ['auditors'], 'auditor', 'audit.replay', '10.0.0.9'],
    );
    assert.equal(row.decision_message, 'audit.replay via api: {"id":"abc"} (7 results)');
    await handle.close();
  });

  test('no durable record, no read: a refused append is an EvidenceReadUnrecordedError, and the chain stays whole', async () => {
    const handle = createInProcessBus();
    await handle.log.ensureStream({ name: Streams.audit.name, subjects: Streams.audit.subjects, maxAgeMs: 0, duplicateWindowMs: 60_000, replicas: 1 });
    const log = new RecordingLog(handle.log);
    const reads = new EvidenceReadRecorder(log, 'audit-1');
    log.failing = true;
    await assert.rejects(
      reads.record({ reader: AUDITOR, action: EvidenceAction.PolicyExplain, via: 'api', query: {}, results: 3, source: '' }),
      EvidenceReadUnrecordedError,
    );
    log.failing = false;
    await reads.record({ reader: AUDITOR, action: EvidenceAction.AuditExport, via: 'cli', query: { sinceMs: 0 }, results: -1, source: 'h' });
    const sink = new SqliteAuditSink({ path: ':memory:' });
    await sink.migrate();
    await sink.insert(log.appended.map((e) => toAuditRow(e)));
    const report = await verifyAuditLog(sink, {});
    assert.deepEqual(report.findings, [], 'the refused read left no gap (the next read opened a new segment)');
    assert.match(toAuditRow(log.appended[0]!).decision_message, /\(streamed\)$/);
    await sink.close();
    await handle.close();
  });

  test("the CLI's reader is the operating-system user on this host", () => {
    const { reader, source } = cliReader();
    assert.match(reader.subject, /^os:.+@.+$/);
    assert.ok(reader.subject.endsWith(`@${source}`));
  });
});
