import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { PortcullisConfig } from '@portcullis/config';
import { listenUrl, type Logger } from '@portcullis/common';
import { QueueGroups, Subjects } from '@portcullis/contracts';
import type { PortcullisMetrics } from '@portcullis/observability';
import { ApprovalService, BullMqSlackQueue, SlackJobHandler, SlackWebClient, type ApprovalStore, type SlackJobQueue } from '@portcullis/approval';
import type { EventLog } from '@portcullis/bus';
import type { ChainCheckpointer } from '@portcullis/audit-store/pure';
import { CONFIG, EVENT_LOG, GATEWAY_TLS, HttpListeners, Listener, LOGGER, METRICS, startChainCheckpointer, type GatewayTls } from '../../runtime/src/index.js';
import { APPROVAL_STORE, SLACK_QUEUE, SlackJobRunner, usesRedis } from './approval.providers.js';

/**
 * The approval role's lifecycle: rebuilds the projection from the stream when it is lost, runs
 * the Slack worker, expires approvals nobody decided, and opens the approvers' HTTPS listener
 * (`approval.listen`). Its gate answers on the bus (ApprovalGateController); its store and queue
 * close only after the transport answered the gate requests in flight.
 */
@Injectable()
export class ApprovalRoleService implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  private sweeper: NodeJS.Timeout | undefined;
  private checkpointer: ChainCheckpointer | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: PortcullisConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(METRICS) private readonly metrics: PortcullisMetrics,
    @Inject(ApprovalService) private readonly approvals: ApprovalService,
    @Inject(APPROVAL_STORE) private readonly store: ApprovalStore,
    @Inject(SLACK_QUEUE) private readonly queue: SlackJobQueue | undefined,
    @Inject(SlackJobRunner) private readonly slackJobs: SlackJobRunner,
    @Inject(HttpListeners) private readonly listeners: HttpListeners,
    @Inject(GATEWAY_TLS) private readonly tls: GatewayTls,
    @Inject(EVENT_LOG) private readonly log: EventLog,
  ) {}

  /** The approvers' URL (once the listener is open). */
  get url(): string {
    const a = this.config.approval;
    const port = this.listeners.port(Listener.Approval);
    if (port === undefined) throw new Error('the approval listener is not open yet');
    return (a.publicUrl ?? listenUrl('https', a.listen.host, port)).replace(/\/$/, '');
  }

  async onApplicationBootstrap(): Promise<void> {
    const { config, logger, metrics, store } = this;
    const a = config.approval;
    await this.approvals.rebuild();
    // The heads of the role's own chains, signed apart from the log: a deleted tail is detected.
    this.checkpointer = startChainCheckpointer(config, this.log, logger, 'approval', [() => this.approvals.takeChainHeads()]);
    // portcullis_approvals_pending, read from the projection at scrape time.
    metrics.registry.collect(async () => metrics.approval.pending.set([], (await store.listPending()).length));
    if (a.slack.enabled) {
      const handler = new SlackJobHandler({
        service: this.approvals,
        store,
        client: new SlackWebClient({ apiUrl: a.slack.apiUrl, botToken: a.slack.botToken }),
        users: a.slack.users,
        logger,
        messageTtlMs: a.pendingTtl + a.retention + 86_400_000,
      });
      const handle = (job: Parameters<SlackJobHandler['handle']>[0]): Promise<void> => handler.handle(job);
      this.slackJobs.use(handle);
      if (this.queue instanceof BullMqSlackQueue) this.queue.start(handle);
    }
    this.listeners.serve({
      listener: Listener.Approval,
      description: 'approvals API and Slack interactions',
      host: a.listen.host,
      port: a.listen.port,
      tls: this.tls,
    });
    this.sweeper = setInterval(() => {
      this.approvals.expireDue().catch((err: unknown) => logger.warn('approval expiry sweep failed', { err }));
    }, a.sweepInterval);
    this.sweeper.unref();
    logger.info('approval role serving', {
      subject: Subjects.approvalGate(),
      queue: QueueGroups.approval,
      store: usesRedis(config) ? 'redis' : 'memory',
      slack: a.slack.enabled,
    });
  }

  beforeApplicationShutdown(): void {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.checkpointer?.stop();
    await this.queue?.close();
    await this.store.close();
  }
}
