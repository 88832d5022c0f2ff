import type { Provider } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { PortcullisConfig } from '@portcullis/config';
import type { Logger } from '@portcullis/common';
import type { EventLog, MessageBus } from '@portcullis/bus';
import type { PortcullisMetrics, Readiness } from '@portcullis/observability';
import {
  ApprovalJournal,
  ApprovalService,
  BullMqSlackQueue,
  InProcessSlackQueue,
  MemoryApprovalStore,
  RedisApprovalStore,
  SlackApprovalNotifier,
  type ApprovalStore,
  type SlackJob,
  type SlackJobQueue,
} from '@portcullis/approval';
import { CLOCK, CONFIG, EVENT_LOG, LOGGER, MESSAGE_BUS, METRICS, READINESS, type Clock } from '../../runtime/src/index.js';
import { redisAddress, redisReadiness } from './redis-readiness.js';

/** The pending-approval projection (`ApprovalStore`): Redis in cluster mode (or when configured), memory when embedded. */
export const APPROVAL_STORE = Symbol('portcullis.approval-store');
/** The Slack job queue (`SlackJobQueue`: BullMQ on Redis, or in-process), undefined when Slack is off. */
export const SLACK_QUEUE = Symbol('portcullis.slack-queue');

/** Whether the projection lives in Redis. */
export function usesRedis(config: PortcullisConfig): boolean {
  const store = config.approval.store;
  return store === 'redis' || (store === 'auto' && config.bus.mode === 'nats');
}

/**
 * Where the in-process Slack queue hands its jobs: the Slack job handler needs the approval
 * service, which needs the notifier on this queue, so the handler is attached once all exist.
 */
export class SlackJobRunner {
  private handler: ((job: SlackJob) => Promise<void>) | undefined;

  /** Attaches the handler (once the approval service exists). */
  use(handler: (job: SlackJob) => Promise<void>): void {
    this.handler = handler;
  }

  run(job: SlackJob): Promise<void> {
    if (this.handler === undefined) return Promise.reject(new Error('the Slack worker is not started yet'));
    return this.handler(job);
  }
}

/** The approval role's own ports: its store, its Slack queue, and the service over them. */
export const approvalProviders: Provider[] = [
  SlackJobRunner,
  {
    provide: APPROVAL_STORE,
    inject: [CONFIG, READINESS, CLOCK],
    useFactory: async (config: PortcullisConfig, readiness: Readiness, clock: Clock): Promise<ApprovalStore> => {
      if (!usesRedis(config)) return new MemoryApprovalStore(clock);
      const url = config.approval.redis.url;
      const redis = new Redis(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true });
      redis.on('error', () => undefined); // commands fail (→ the edge fails closed); ioredis reconnects
      // Fail start-up with the server's name, not ioredis' retry counter.
      await redis.ping().catch((err: unknown) => {
        redis.disconnect();
        throw new Error(`cannot reach Redis at ${redisAddress(url)} (approval.redis.url): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      });
      readiness.add(redisReadiness(redis, url));
      return new RedisApprovalStore(redis, { keyPrefix: config.approval.redis.keyPrefix });
    },
  },
  {
    provide: SLACK_QUEUE,
    inject: [CONFIG, LOGGER, SlackJobRunner],
    useFactory: (config: PortcullisConfig, logger: Logger, runner: SlackJobRunner): SlackJobQueue | undefined => {
      const a = config.approval;
      if (!a.slack.enabled) return undefined;
      const retry = { maxAttempts: a.slack.maxAttempts, backoffMs: 500 };
      return usesRedis(config)
        ? new BullMqSlackQueue({ redisUrl: a.redis.url, name: a.slack.queue, retry, lockDurationMs: a.slack.jobLockTimeout, logger })
        : new InProcessSlackQueue((job) => runner.run(job), retry, logger);
    },
  },
  {
    provide: ApprovalService,
    inject: [CONFIG, LOGGER, MESSAGE_BUS, EVENT_LOG, APPROVAL_STORE, SLACK_QUEUE, METRICS, CLOCK],
    useFactory: (
      config: PortcullisConfig,
      logger: Logger,
      bus: MessageBus,
      log: EventLog,
      store: ApprovalStore,
      queue: SlackJobQueue | undefined,
      metrics: PortcullisMetrics,
      clock: Clock,
    ): ApprovalService => {
      const a = config.approval;
      return new ApprovalService({
        store,
        journal: new ApprovalJournal(log, config.edge.auditAckTimeout, config.node.id),
        bus,
        nodeId: config.node.id,
        logger,
        pendingTtlMs: a.pendingTtl,
        grantTtlMs: a.grantTtl,
        retentionMs: a.retention,
        rebuildLookbackMs: a.rebuildLookback,
        breakGlassGroups: a.breakGlassGroups,
        notifier: queue === undefined ? undefined : new SlackApprovalNotifier(queue, logger),
        onDecided: (outcome, waitedMs) => metrics.approval.waitDuration.observe([outcome], waitedMs / 1000),
        now: clock,
      });
    },
  },
];
