import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { PortcullisConfig } from '@portcullis/config';
import type { Logger } from '@portcullis/common';
import type { EventLog } from '@portcullis/bus';
import { Consumers, Streams } from '@portcullis/contracts';
import {
  AuditWriter,
  ChainedAppender,
  eventLogDeadLetter,
  formatRetentionPlan,
  runRetention,
  type AuditSink,
  type AuditWriterObserver,
} from '@portcullis/audit-store';
import { recordStoredMessages, type PortcullisMetrics, type Readiness } from '@portcullis/observability';
import type { ChainCheckpointer, EvidenceReadRecorder } from '@portcullis/audit-store/pure';
import { CONFIG, EVENT_LOG, EVIDENCE_READS, LOGGER, METRICS, NATS_CONNECTION, READINESS, startChainCheckpointer } from '../../runtime/src/index.js';
import { AUDIT_SINK } from './audit.providers.js';

/**
 * The audit role: in cluster mode, a durable JetStream consumer batch-inserting into ClickHouse
 * (acks after the insert); in the embedded mode the SQLite log is the store itself. In both, the
 * retention job (`audit.retention`); the replay API is AuditReplayController's.
 */
@Injectable()
export class AuditService implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  private writer: AuditWriter | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  private retentionRun: Promise<void> | undefined;
  private checkpointer: ChainCheckpointer | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: PortcullisConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(EVENT_LOG) private readonly log: EventLog,
    @Inject(AUDIT_SINK) private readonly sink: AuditSink,
    @Inject(METRICS) private readonly metrics: PortcullisMetrics,
    @Inject(READINESS) private readonly readiness: Readiness,
    @Inject(NATS_CONNECTION) private readonly nats: NatsConnection | undefined,
    @Inject(EVIDENCE_READS) private readonly reads: EvidenceReadRecorder,
  ) {}

  onApplicationBootstrap(): void {
    const { config, logger } = this;
    if (config.bus.mode === 'embedded') {
      logger.info('audit role: embedded mode writes events straight into the SQLite store', { file: config.audit.sqlite.file });
    } else {
      const ch = config.audit.clickhouse;
      this.writer = new AuditWriter({
        log: this.log,
        sink: this.sink,
        batchSize: ch.batchSize,
        maxWaitMs: ch.flushInterval,
        insertsInFlight: ch.insertsInFlight,
        logger,
        // The dead-letter msgId derives from the bytes: a redelivered bad message is stored once.
        deadLetter: eventLogDeadLetter(this.log),
        observer: writerObserver(this.metrics.audit),
      });
      this.watchHealth(ch.url);
      this.writer.start();
      logger.info('audit role consuming', { clickhouse: ch.url, database: ch.database });
    }
    this.startRetention();
  }

  /** Readiness: ClickHouse answers /ping. Metrics: the durable consumer's lag, read at scrape time. */
  private watchHealth(clickHouseUrl: string): void {
    const { metrics } = this;
    const ping = new URL('/ping', clickHouseUrl).href;
    this.readiness.add({
      name: 'clickhouse',
      check: async () => (await fetch(ping, { signal: AbortSignal.timeout(2000) })).ok,
    });
    const nc = this.nats;
    if (nc === undefined) return;
    let jsm: JetStreamManager | undefined;
    const labels = [Streams.audit.name, Consumers.auditWriter];
    metrics.registry.collect(async () => {
      jsm ??= await jetstreamManager(nc);
      const info = await jsm.consumers.info(Streams.audit.name, Consumers.auditWriter);
      metrics.audit.consumerLag.set(labels, info.num_pending);
      metrics.audit.consumerAckPending.set(labels, info.num_ack_pending);
    });
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.retentionTimer);
    await this.retentionRun;
    await this.checkpointer?.stop();
    await this.writer?.stop();
  }

  async onApplicationShutdown(): Promise<void> {
    // The embedded store is the event log's own: it closes with the bus.
    if (this.config.bus.mode !== 'embedded') await this.sink.close();
  }

  private startRetention(): void {
    const { config, logger, sink } = this;
    const retention = config.audit.retention;
    if (retention === undefined) return;
    // The role's own chain: its events (retention runs) are tamper-evident like the edges', its heads signed.
    const appender = new ChainedAppender(this.log, config.node.id, 5000);
    const record = (event: Parameters<ChainedAppender['append']>[0]): Promise<void> => appender.append(event);
    this.checkpointer = startChainCheckpointer(config, this.log, logger, 'audit', [() => appender.takeHeads(), () => this.reads.takeHeads()]);
    const run = (): void => {
      if (this.retentionRun !== undefined) return;
      this.retentionRun = runRetention(sink, { retentionMs: retention.ms, retentionText: retention.text, dryRun: false, record, nodeId: config.node.id })
        .then((plan) => {
          if (plan.partitions.length > 0) logger.warn('audit retention applied', { lines: formatRetentionPlan(plan, false) });
        })
        .catch((err: unknown) => logger.error('audit retention failed; nothing was dropped without a record', { err }))
        .finally(() => {
          this.retentionRun = undefined;
        });
    };
    run();
    this.retentionTimer = setInterval(run, config.audit.retentionCheckInterval);
    this.retentionTimer.unref();
  }
}

/** Batch sizes, insert latency and failures as metrics; one `audit write` span per traced event. */
function writerObserver(m: PortcullisMetrics['audit']): AuditWriterObserver {
  return {
    inserted(rows, messages, startedAtMs, endedAtMs) {
      m.insertBatchSize.observe([], rows);
      m.insertDuration.observe([], (endedAtMs - startedAtMs) / 1000);
      recordStoredMessages(
        messages.map((msg) => msg.headers),
        startedAtMs,
        endedAtMs,
        { 'db.system.name': 'clickhouse', 'portcullis.batch_rows': rows },
      );
    },
    insertFailed: () => m.insertFailures.inc(),
    deadLettered: () => m.deadLettered.inc(),
  };
}
