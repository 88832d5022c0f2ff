import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import {
  AuditApiServer,
  AuditChain,
  chainedRecorder,
  formatRetentionPlan,
  runRetention,
  type AuditSink,
  type AuditWriter,
  type SqliteEventLog,
} from '@portcullis/audit-store';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { AuditWriterObserver } from '@portcullis/audit-store';
import type { NatsBus } from '@portcullis/bus';
import { Consumers, Streams } from '@portcullis/contracts';
import { recordStoredMessages, type PortcullisMetrics } from '@portcullis/observability';
import { PLATFORM, PlatformMode, createGatewayTokenVerifier, gatewayTls, type Platform } from '../../runtime/src/index.js';

/**
 * The audit role: in cluster mode, a durable JetStream consumer batch-inserting into ClickHouse
 * (acks after the insert); in the embedded mode the SQLite log is the store itself. In both, the
 * retention job (`audit.retention`) and the replay API (`audit.listen`).
 */
@Injectable()
export class AuditService implements OnApplicationBootstrap, OnApplicationShutdown {
  private writer: AuditWriter | undefined;
  private sink: AuditSink | undefined;
  private ownsSink = false;
  private api: AuditApiServer | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  private retentionRun: Promise<void> | undefined;

  constructor(@Inject(PLATFORM) private readonly platform: Platform) {}

  async onApplicationBootstrap(): Promise<void> {
    const { config, logger, log } = this.platform;
    if (this.platform.mode === PlatformMode.Embedded) {
      logger.info('audit role: embedded mode writes events straight into the SQLite store', { file: config.audit.sqlite.file });
      this.sink = (log as SqliteEventLog).sink;
    } else {
      const ch = config.audit.clickhouse;
      // Loaded only in cluster mode: the embedded gateway never pays for the ClickHouse client.
      const { AuditWriter, ClickHouseAuditSink, eventLogDeadLetter } = await import('@portcullis/audit-store');
      const sink = new ClickHouseAuditSink({ url: ch.url, database: ch.database, username: ch.username, password: ch.password });
      this.sink = sink;
      this.ownsSink = true;
      await sink.migrate();
      this.writer = new AuditWriter({
        log,
        sink,
        batchSize: ch.batchSize,
        maxWaitMs: ch.flushInterval,
        insertsInFlight: ch.insertsInFlight,
        logger,
        // The dead-letter msgId derives from the bytes: a redelivered bad message is stored once.
        deadLetter: eventLogDeadLetter(log),
        observer: writerObserver(this.platform.observability.metrics.audit),
      });
      this.watchHealth(ch.url);
      this.writer.start();
      logger.info('audit role consuming', { clickhouse: ch.url, database: ch.database });
    }
    this.startRetention();
    await this.startApi();
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
    clearInterval(this.retentionTimer);
    await this.retentionRun;
    await this.api?.close();
    await this.writer?.stop();
    if (this.ownsSink) await this.sink?.close();
  }

  private startRetention(): void {
    const { config, logger, log } = this.platform;
    const retention = config.audit.retention;
    const sink = this.sink;
    if (retention === undefined || sink === undefined) return;
    // The role's own chain: its events (retention runs) are tamper-evident like the edges'.
    const record = chainedRecorder(log, new AuditChain(config.node.id));
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

  private async startApi(): Promise<void> {
    const { config, logger } = this.platform;
    const listen = config.audit.listen;
    if (listen === undefined || this.sink === undefined) return;
    this.api = new AuditApiServer({
      host: listen.host,
      port: listen.port,
      tls: await gatewayTls(config),
      sink: this.sink,
      verifier: await createGatewayTokenVerifier(config),
      auditorGroups: config.audit.auditorGroups,
      logger,
    });
    const { port } = await this.api.listen();
    logger.info('audit replay API listening', { url: `https://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${port}/v1/audit/replay/` });
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
