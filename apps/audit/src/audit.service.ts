import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { AuditWriter, ClickHouseAuditSink } from '../../../libs/audit-store/src/index.js';
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
    });
    this.writer.start();
    logger.info('audit role consuming', { clickhouse: ch.url, database: ch.database });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.writer?.stop();
    await this.sink?.close();
  }
}
