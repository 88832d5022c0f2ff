import { mkdirSync } from 'node:fs';
import type { PortcullisConfig } from '@portcullis/config';
import { createLogger, type Logger } from '@portcullis/common';
import { connectNats, createInProcessBus, type BusHandle, type EventLog, type MessageBus } from '@portcullis/bus';
import { SqliteEventLog } from '@portcullis/audit-store';
import { Streams } from '@portcullis/contracts';
import { createObservability, startProcessTracing, type Observability } from './observability.js';

/** Which infrastructure a process runs on. */
export const PlatformMode = { Embedded: 'embedded', Cluster: 'cluster' } as const;
export type PlatformMode = (typeof PlatformMode)[keyof typeof PlatformMode];

/**
 * The infrastructure one process holds: config, logger, the bus and the durable event log.
 * Embedded: an in-process bus, and the SQLite audit store as the durable log (an append is
 * acknowledged after its SQLite commit). Cluster: NATS core + JetStream over one connection.
 */
export interface Platform {
  readonly mode: PlatformMode;
  readonly config: PortcullisConfig;
  readonly logger: Logger;
  readonly bus: MessageBus;
  readonly log: EventLog;
  readonly handle: BusHandle;
  /** Metrics, readiness checks, the /metrics listener and tracing. */
  readonly observability: Observability;
  close(): Promise<void>;
}

/** Connects what the configuration asks for; fails fast with a clear message. */
export async function createPlatform(config: PortcullisConfig, role: string): Promise<Platform> {
  const logLevel = config.observability.log.level;
  const logger = createLogger({ base: { role, node: config.node.id }, ...(logLevel !== undefined ? { level: logLevel } : {}) });
  const tracing = await startProcessTracing(config, role);
  mkdirSync(config.node.stateDir, { recursive: true, mode: 0o700 });
  if (config.bus.mode === 'embedded') {
    const handle = createInProcessBus({ logger });
    const log = await SqliteEventLog.open({ path: config.audit.sqlite.file });
    const observability = await createObservability(config, role, handle, logger, tracing);
    return {
      mode: PlatformMode.Embedded,
      config,
      logger,
      bus: handle.bus,
      log,
      handle,
      observability,
      close: async () => {
        await handle.close();
        await log.close();
        await observability.close();
      },
    };
  }
  const nats = config.bus.nats;
  const handle = await connectNats({
    servers: [...nats.servers],
    name: `portcullis-${role}-${config.node.id}`,
    logger,
    ...(nats.user !== undefined ? { user: nats.user } : {}),
    ...(nats.password !== undefined ? { pass: nats.password } : {}),
    ...(nats.token !== undefined ? { token: nats.token } : {}),
  });
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
  const observability = await createObservability(config, role, handle, logger, tracing);
  return {
    mode: PlatformMode.Cluster,
    config,
    logger,
    bus: handle.bus,
    log: handle.log,
    handle,
    observability,
    close: async () => {
      await handle.close();
      await observability.close();
    },
  };
}
