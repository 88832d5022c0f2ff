import { mkdirSync } from 'node:fs';
import type { NatsConnection } from '@nats-io/nats-core';
import type { PortcullisConfig } from '@portcullis/config';
import type { Logger } from '@portcullis/common';
import { connectNats, createInProcessBus, type BusHandle, type EventLog } from '@portcullis/bus';
import { SqliteEventLog, StreamCheckpointStore, type AuditSink } from '@portcullis/audit-store';
import { Streams } from '@portcullis/contracts';

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

/** Connects what `bus.mode` asks for; fails fast with a message naming the servers (a bad NATS URL, NATS down). */
export async function connectProcessBus(config: PortcullisConfig, label: string, logger: Logger): Promise<ProcessBus> {
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
  const nats = config.bus.nats;
  const handle = await connectNats({
    servers: [...nats.servers],
    name: `portcullis-${label}-${config.node.id}`,
    logger,
    ...(nats.user !== undefined ? { user: nats.user } : {}),
    ...(nats.password !== undefined ? { pass: nats.password } : {}),
    ...(nats.token !== undefined ? { token: nats.token } : {}),
  });
  try {
    const s = config.bus.auditStream;
    await handle.log.ensureStream({
      name: Streams.audit.name,
      subjects: Streams.audit.subjects,
      maxAgeMs: s.maxAge,
      duplicateWindowMs: s.duplicateWindow,
      replicas: s.replicas,
    });
    await handle.log.ensureStream({
      name: Streams.deadLetter.name,
      subjects: Streams.deadLetter.subjects,
      maxAgeMs: 0,
      duplicateWindowMs: s.duplicateWindow,
      replicas: s.replicas,
    });
    // Signed chain heads, apart from the audit stream: no message deleted, never purged.
    await new StreamCheckpointStore(handle.log).ensure(s.replicas);
  } catch (err) {
    await handle.close();
    throw err;
  }
  return { handle, log: handle.log, nats: handle.connection, embeddedAuditStore: undefined, close: () => handle.close() };
}
