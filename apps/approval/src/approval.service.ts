import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { Redis } from 'ioredis';
import { redisReadiness } from './redis-readiness.js';
import {
  ApprovalGateReplySchema,
  create,
  decodeApprovalGateRequest,
  encodeApprovalGateReply,
  QueueGroups,
  Subjects,
} from '@portcullis/contracts';
import type { BusSubscription } from '@portcullis/bus';
import {
  ApprovalError,
  ApprovalHttpServer,
  ApprovalJournal,
  ApprovalService,
  BullMqSlackQueue,
  InProcessSlackQueue,
  MemoryApprovalStore,
  RedisApprovalStore,
  SlackApprovalNotifier,
  SlackJobHandler,
  SlackWebClient,
  type ApprovalStore,
  type SlackJob,
  type SlackJobQueue,
} from '@portcullis/approval';
import { createGatewayTokenVerifier, gatewayTls, PLATFORM, PlatformMode, type Platform } from '../../runtime/src/index.js';

/** What the approval role reports once it listens. */
export interface ApprovalEndpoint {
  url: string;
}

/**
 * The approval role: serves the edge's gate questions (NATS request-reply, queue group
 * portcullis-approval), keeps the projection (Redis in cluster mode, memory when embedded) and
 * rebuilds it from the stream when it is lost, expires approvals nobody decided, runs the Slack
 * worker, and listens for Slack interactions and the approvers' REST API.
 */
@Injectable()
export class ApprovalRoleService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private subscription: BusSubscription | undefined;
  private http: ApprovalHttpServer | undefined;
  private store: ApprovalStore | undefined;
  private queue: SlackJobQueue | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private endpointValue: ApprovalEndpoint | undefined;
  private serviceValue: ApprovalService | undefined;

  constructor(@Inject(PLATFORM) private readonly platform: Platform) {}

  /** The listening endpoint (after bootstrap). */
  get endpoint(): ApprovalEndpoint {
    if (this.endpointValue === undefined) throw new Error('approval role is not listening yet');
    return this.endpointValue;
  }

  /** The approval service (after bootstrap). */
  get service(): ApprovalService {
    if (this.serviceValue === undefined) throw new Error('approval role is not started yet');
    return this.serviceValue;
  }

  async onApplicationBootstrap(): Promise<void> {
    const { config, logger, bus, log } = this.platform;
    const a = config.approval;
    const useRedis = a.store === 'redis' || (a.store === 'auto' && this.platform.mode === PlatformMode.Cluster);
    const redis = useRedis ? redisClient(a.redis.url) : undefined;
    const store: ApprovalStore = redis !== undefined ? new RedisApprovalStore(redis, { keyPrefix: a.redis.keyPrefix }) : new MemoryApprovalStore();
    this.store = store;
    if (redis !== undefined) this.platform.observability.readiness.add(redisReadiness(redis, a.redis.url));
    const slack = a.slack;
    let notifier: SlackApprovalNotifier | undefined;
    let handle: ((job: SlackJob) => Promise<void>) | undefined;
    const retry = { maxAttempts: slack.maxAttempts, backoffMs: 500 };
    if (slack.enabled) {
      const queue: SlackJobQueue = useRedis
        ? new BullMqSlackQueue({ redisUrl: a.redis.url, name: slack.queue, retry, lockDurationMs: slack.jobLockTimeout, logger })
        : new InProcessSlackQueue((job) => handle!(job), retry, logger);
      this.queue = queue;
      notifier = new SlackApprovalNotifier(queue, logger);
    }
    const service = new ApprovalService({
      store,
      journal: new ApprovalJournal(log, config.edge.auditAckTimeout),
      bus,
      nodeId: config.node.id,
      logger,
      pendingTtlMs: a.pendingTtl,
      grantTtlMs: a.grantTtl,
      retentionMs: a.retention,
      rebuildLookbackMs: a.rebuildLookback,
      breakGlassGroups: a.breakGlassGroups,
      notifier,
      onDecided: (outcome, waitedMs) => this.platform.observability.metrics.approval.waitDuration.observe([outcome], waitedMs / 1000),
    });
    this.serviceValue = service;
    await service.rebuild();
    // portcullis_approvals_pending, read from the projection at scrape time.
    const metrics = this.platform.observability.metrics;
    metrics.registry.collect(async () => metrics.approval.pending.set([], (await store.listPending()).length));

    if (slack.enabled) {
      const handler = new SlackJobHandler({
        service,
        store,
        client: new SlackWebClient({ apiUrl: slack.apiUrl, botToken: slack.botToken }),
        users: slack.users,
        logger,
        messageTtlMs: a.pendingTtl + a.retention + 86_400_000,
      });
      handle = (job) => handler.handle(job);
      if (this.queue instanceof BullMqSlackQueue) this.queue.start(handle);
    }

    this.subscription = bus.serve(Subjects.approvalGate(), QueueGroups.approval, async (msg) => {
      try {
        return encodeApprovalGateReply(await service.gate(decodeApprovalGateRequest(msg.data)));
      } catch (err) {
        const why = err instanceof ApprovalError ? err.message : 'internal error';
        if (!(err instanceof ApprovalError)) logger.error('approval gate failed', { err });
        return encodeApprovalGateReply(create(ApprovalGateReplySchema, { error: why }));
      }
    });

    const verifier = await createGatewayTokenVerifier(config);
    const tls = await gatewayTls(config);
    this.http = new ApprovalHttpServer({
      host: a.listen.host,
      port: a.listen.port,
      tls,
      service,
      store,
      authenticate: async (token) => {
        const id = await verifier.verify(token);
        return { subject: id.subject, groups: id.groups };
      },
      slack: slack.enabled && this.queue !== undefined ? { signingSecret: slack.signingSecret, queue: this.queue } : undefined,
      logger,
    });
    const bound = await this.http.listen();
    const host = a.listen.host === '0.0.0.0' || a.listen.host === '::' ? '127.0.0.1' : a.listen.host;
    this.endpointValue = { url: (a.publicUrl ?? `https://${host}:${bound.port}`).replace(/\/$/, '') };

    this.sweeper = setInterval(() => {
      service.expireDue().catch((err: unknown) => logger.warn('approval expiry sweep failed', { err }));
    }, a.sweepInterval);
    this.sweeper.unref();
    logger.info('approval role serving', {
      subject: Subjects.approvalGate(),
      queue: QueueGroups.approval,
      store: useRedis ? 'redis' : 'memory',
      slack: slack.enabled,
      url: this.endpointValue.url,
    });
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    await this.subscription?.unsubscribe();
    await this.http?.close();
    await this.queue?.close();
    await this.store?.close();
  }
}

function redisClient(url: string): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true });
  r.on('error', () => undefined); // commands fail (→ the edge fails closed); ioredis reconnects
  return r;
}
