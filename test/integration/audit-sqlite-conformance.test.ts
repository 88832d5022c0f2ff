/**
 * The embedded mode's durable log (SQLite) against the same event log conformance suite as
 * JetStream and the in-process log, with the narrower contract it declares
 * (`SqliteEventLog.capabilities`): one stream, audit event envelopes only, no durable consumers.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteEventLog } from '@portcullis/audit-store';
import { buildEvent, create, decodeEvent, encodeEvent, RequestReceivedSchema, Streams } from '@portcullis/contracts';
import { describeEventLogConformance, uniqueToken } from '../support/bus-conformance.js';

const opened: SqliteEventLog[] = [];
let dir: Promise<string> | undefined;

describeEventLogConformance({
  name: 'SQLite (the embedded audit log)',
  capabilities: SqliteEventLog.capabilities,
  // Each client is its own connection to one file, like a second process (`audit tail`).
  connect: async () => {
    dir ??= mkdtemp(join(tmpdir(), 'portcullis-sqlite-conformance-'));
    const log = await SqliteEventLog.open({ path: join(await dir, 'audit.db'), pollIntervalMs: 20 });
    opened.push(log);
    return log;
  },
  // The one stream it holds; each case appends under its own subject root within it.
  stream: (prefix) => ({
    name: Streams.audit.name,
    subjects: Streams.audit.subjects,
    maxAgeMs: 0,
    duplicateWindowMs: 120_000,
    replicas: 1,
    subjectRoot: `audit.${uniqueToken(prefix)}`,
  }),
  // It stores audit events only: the label rides as the event's correlation id.
  payload: (label) =>
    encodeEvent(
      buildEvent(
        'request.received',
        create(RequestReceivedSchema, { identity: { subject: 'conformance', groups: [] }, attributes: { connection: 'conformance' } }),
        { correlationId: label, nodeId: 'conformance', connection: 'conformance' },
      ),
    ),
  label: (data) => decodeEvent(data).correlationId,
  teardown: async () => {
    await Promise.all(opened.map((log) => log.close()));
    if (dir !== undefined) await rm(await dir, { recursive: true, force: true });
  },
});
