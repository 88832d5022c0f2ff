import { mkdirSync } from 'node:fs';
import type { NatsConnection } from '@nats-io/nats-core';
import type { PortcullisConfig } from '@portcullis/config';
import type { Logger } from '@portcullis/common';
import { connectNats, createInProcessBus, type BusHandle, type EventLog } from '@portcullis/bus';
import { SqliteEventLog, StreamCheckpointStore, type AuditSink } from '@portcullis/audit-store';
import { Streams } from '@portcullis/contracts';
import { natsConnectOptions } from './nats-options.js';
import { Role } from './roles.js';

/**
 * One process's bus: core messaging and KV (the handle), the durable event log, and what only one
 * mode has. Embedded: an in-process bus, with the SQLite audit store as the durable log (an
 * append is acknowledged after its SQLite commit). Cluster: NATS core + JetStream over one connection.
 */
export interface ProcessBus {
  readonly handle: BusHandle;
  readonly log: EventLog;
  /** Cluster mode only. */
  readonly nats: NatsConnection | undefined;
  /** Embedded mode only: the SQLite store the log writes into. */
  readonly embeddedAuditStore: AuditSink | undefined;
  /** Drains and closes the connection, then the log. */
  close(): Promise<void>;
}

/**
 * The streams a process ensures at start-up: the audit stream (every role; its `jetstream`
 * readiness check looks for it), the dead-letter stream for the audit role. Only the audit role
 * (the streams' owner, whose NATS user alone may) brings an existing stream's settings up to date;
 * the others create a missing one and leave an existing one as it is.
 */
async function ensureStreams(log: EventLog, config: PortcullisConfig, roles: readonly (Role | 'operator')[]): Promise<void> {
  const s = config.bus.auditStream;
  const owner = roles.includes(Role.Audit);
  await log.ensureStream({
    name: Streams.audit.name,
    subjects: Streams.audit.subjects,
    maxAgeMs: s.maxAge,
    duplicateWindowMs: s.duplicateWindow,
    replicas: s.replicas,
    updateExisting: owner,
  });
  // Signed chain heads, apart from the audit stream: no message deleted, never purged. Every role signs its chains' heads.
  await new StreamCheckpointStore(log).ensure(s.replicas, owner);
  if (owner) {
    await log.ensureStream({
      name: Streams.deadLetter.name,
      subjects: Streams.deadLetter.subjects,
      maxAgeMs: 0,
      duplicateWindowMs: s.duplicateWindow,
      replicas: s.replicas,
    });
  }
}

/** Connects what `bus.mode` asks for; fails fast with a message naming the servers (a bad NATS URL, NATS down). */
export async function connectProcessBus(config: PortcullisConfig, label: string, roles: readonly (Role | 'operator')[], logger: Logger): Promise<ProcessBus> {
  mkdirSync(config.node.stateDir, { recursive: true, mode: 0o700 });
  if (config.bus.mode === 'embedded') {
    const handle = createInProcessBus({ logger });
    const log = await SqliteEventLog.open({ path: config.audit.sqlite.file });
    return {
      handle,
      log,
      nats: undefined,
      embeddedAuditStore: log.sink,
      close: async () => {
        await handle.close();
        await log.close();
      },
    };
  }
  const handle = await connectNats({ ...natsConnectOptions(config.bus.nats, roles), name: `portcullis-${label}-${config.node.id}`, logger });
  try {
    await ensureStreams(handle.log, config, roles);
  } catch (err) {
    await handle.close();
    throw err;
  }
  return { handle, log: handle.log, nats: handle.connection, embeddedAuditStore: undefined, close: () => handle.close() };
}
