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
} from '../../../libs/audit-store/src/index.js';
import { PLATFORM, PlatformMode, serverTls, tokenVerifierFromConfig, type Platform } from '../../runtime/src/index.js';

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
      const { AuditWriter, ClickHouseAuditSink, eventLogDeadLetter } = await import('../../../libs/audit-store/src/index.js');
      const sink = new ClickHouseAuditSink({ url: ch.url, database: ch.database, username: ch.username, password: ch.password });
      this.sink = sink;
      this.ownsSink = true;
      await sink.migrate();
      this.writer = new AuditWriter({
        log,
        sink,
        batchSize: ch.batchSize,
        maxWaitMs: ch.flushInterval,
        logger,
        // The dead-letter msgId derives from the bytes: a redelivered bad message is stored once.
        deadLetter: eventLogDeadLetter(log),
      });
      this.writer.start();
      logger.info('audit role consuming', { clickhouse: ch.url, database: ch.database });
    }
    this.startRetention();
    await this.startApi();
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
      tls: await serverTls(config, [listen.host]),
      sink: this.sink,
      verifier: await tokenVerifierFromConfig(config),
      auditorGroups: config.audit.auditorGroups,
      logger,
    });
    const { port } = await this.api.listen();
    logger.info('audit replay API listening', { url: `https://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${port}/v1/audit/replay/` });
  }
}
