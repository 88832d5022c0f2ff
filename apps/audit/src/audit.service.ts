import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { AuditWriter, AuditWriterObserver, ClickHouseAuditSink } from '../../../libs/audit-store/src/index.js';
import type { NatsBus } from '../../../libs/bus/src/index.js';
import { Consumers, Streams } from '../../../libs/contracts/src/index.js';
import { recordStoredMessages, type PortcullisMetrics } from '../../../libs/observability/src/index.js';
import { PLATFORM, PlatformMode, type Platform } from '../../runtime/src/index.js';

/**
 * The audit role: in cluster mode, a durable JetStream consumer batch-inserting into ClickHouse
 * (acks after the insert). In the embedded mode the SQLite log is the store itself: nothing to do.
 */
@Injectable()
export class AuditService implements OnApplicationBootstrap, OnApplicationShutdown {
  private writer: AuditWriter | undefined;
  private sink: ClickHouseAuditSink | undefined;

  constructor(@Inject(PLATFORM) private readonly platform: Platform) {}

  async onApplicationBootstrap(): Promise<void> {
    const { config, logger, log } = this.platform;
    if (this.platform.mode === PlatformMode.Embedded) {
      logger.info('audit role: embedded mode writes events straight into the SQLite store', { file: config.audit.sqlite.file });
      return;
    }
    const ch = config.audit.clickhouse;
    // Loaded only in cluster mode: the embedded gateway never pays for the ClickHouse client.
    const { AuditWriter, ClickHouseAuditSink, eventLogDeadLetter } = await import('../../../libs/audit-store/src/index.js');
    this.sink = new ClickHouseAuditSink({ url: ch.url, database: ch.database, username: ch.username, password: ch.password });
    await this.sink.migrate();
    this.writer = new AuditWriter({
      log,
      sink: this.sink,
      batchSize: ch.batchSize,
      maxWaitMs: ch.flushInterval,
      logger,
      // The dead-letter msgId derives from the bytes: a redelivered bad message is stored once.
      deadLetter: eventLogDeadLetter(log),
      observer: writerObserver(this.platform.observability.metrics.audit),
    });
    this.watchHealth(ch.url);
    this.writer.start();
    logger.info('audit role consuming', { clickhouse: ch.url, database: ch.database });
  }

  /** Readiness: ClickHouse answers /ping. Metrics: the durable consumer's lag, read at scrape time. */
  private watchHealth(clickHouseUrl: string): void {
    const { readiness, metrics } = this.platform.observability;
    const ping = new URL('/ping', clickHouseUrl).href;
    readiness.add({
      name: 'clickhouse',
      check: async () => (await fetch(ping, { signal: AbortSignal.timeout(2000) })).ok,
    });
    if (!('connection' in this.platform.handle)) return;
    const nc = (this.platform.handle as NatsBus).connection;
    let jsm: JetStreamManager | undefined;
    const labels = [Streams.audit.name, Consumers.auditWriter];
    metrics.registry.collect(async () => {
      jsm ??= await jetstreamManager(nc);
      const info = await jsm.consumers.info(Streams.audit.name, Consumers.auditWriter);
      metrics.audit.consumerLag.set(labels, info.num_pending);
      metrics.audit.consumerAckPending.set(labels, info.num_ack_pending);
    });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.writer?.stop();
    await this.sink?.close();
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
