import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import type { PortcullisConfig } from '@portcullis/config';
import { listenUrl, type Logger } from '@portcullis/common';
import type { BusSubscription, EventLog, MessageBus } from '@portcullis/bus';
import type { TokenVerifier } from '@portcullis/identity';
import type { PortcullisMetrics } from '@portcullis/observability';
import type { ChainCheckpointer, EvidenceReadRecorder } from '@portcullis/audit-store/pure';
import { ApprovalGate, AuditPublisher, ConnectionRegistry, createEdgeMasking, DecisionClient, EdgePipeline, EdgeServer } from '@portcullis/gateway';
import {
  CONFIG,
  edgeServedNames,
  EVENT_LOG,
  GATEWAY_TLS,
  HttpListeners,
  Listener,
  EVIDENCE_READS,
  LOGGER,
  MESSAGE_BUS,
  METRICS,
  startChainCheckpointer,
  openBodyDigest,
  TOKEN_VERIFIER,
  type GatewayTls,
} from '../../runtime/src/index.js';

/** What the edge reports once it listens. */
export interface EdgeEndpoint {
  url: string;
  /** The CA clients should trust; undefined when the configured certificate chains to their system roots. */
  caPem: string | undefined;
}

/**
 * The edge: the request pipeline and its HTTPS server (`edge.listen`). The data path
 * (`/k8s/…`, `/http/…`, host-routed names) is plain Node; every other request goes to the Nest
 * HTTP adapter (health, policy explain, the development issuer) through the server's admin hook.
 */
@Injectable()
export class EdgeService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private server: EdgeServer | undefined;
  private policyChanges: BusSubscription | undefined;
  private audit: AuditPublisher | undefined;
  private checkpointer: ChainCheckpointer | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: PortcullisConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(MESSAGE_BUS) private readonly bus: MessageBus,
    @Inject(EVENT_LOG) private readonly log: EventLog,
    @Inject(METRICS) private readonly metrics: PortcullisMetrics,
    @Inject(TOKEN_VERIFIER) private readonly verifier: TokenVerifier,
    @Inject(GATEWAY_TLS) private readonly tls: GatewayTls,
    @Inject(ConnectionRegistry) private readonly registry: ConnectionRegistry,
    @Inject(DecisionClient) private readonly decisions: DecisionClient,
    @Inject(HttpListeners) private readonly listeners: HttpListeners,
    @Inject(EVIDENCE_READS) private readonly reads: EvidenceReadRecorder,
  ) {}

  /** The listening endpoint (once the listeners are open). */
  get endpoint(): EdgeEndpoint {
    const port = this.listeners.port(Listener.Edge);
    if (port === undefined) throw new Error('edge is not listening yet');
    return { url: this.urlAt(port), caPem: this.tls.caPem };
  }

  /** The edge's URL as clients reach it: `edge.publicUrl`, else the bound address. */
  private urlAt(port: number): string {
    return (this.config.edge.publicUrl ?? listenUrl('https', this.config.edge.listen.host, port)).replace(/\/$/, '');
  }

  onApplicationBootstrap(): void {
    const { config, logger, registry } = this;
    const dev = config.identity.devIssuer;
    this.policyChanges = this.decisions.followPolicyChanges();
    // JetStream pays per message: group-commit the events of concurrent requests. The embedded
    // SQLite log already commits one transaction per tick.
    this.audit = new AuditPublisher(this.log, config.edge.auditAckTimeout, logger, {
      metrics: this.metrics.edge,
      ...(config.bus.mode === 'nats' ? { groupCommit: {} } : {}),
    });
    const audit = this.audit;
    this.checkpointer = startChainCheckpointer(config, this.log, logger, 'edge', [() => audit.takeChainHeads(), () => this.reads.takeHeads()]);
    const pipeline = new EdgePipeline({
      nodeId: config.node.id,
      connections: registry,
      verifier: this.verifier,
      decisions: this.decisions,
      audit: this.audit,
      logger,
      upstreamTimeoutMs: config.edge.upstreamTimeout,
      sessionRecording: {
        maxBytes: config.edge.sessionRecording.maxBytes,
        flushIntervalMs: config.edge.sessionRecording.flushInterval,
        flushBytes: config.edge.sessionRecording.flushBytes,
      },
      masking: createEdgeMasking({
        profiles: config.masking.profiles,
        auditProfile: config.masking.auditProfile,
        hmacKey: config.masking.hmacKey,
        maxObjectBytes: config.masking.maxObjectBytes,
        requestCaptureBytes: config.masking.requestCaptureBytes,
        excerptBytes: config.masking.excerptBytes,
        bodyDigest: openBodyDigest(config, { create: true }),
      }),
      approvals: new ApprovalGate({
        bus: this.bus,
        timeoutMs: config.approval.gateTimeout,
        cliName: 'npx portcullis',
        // With the development issuer, name a client that can approve: a newcomer copies one line.
        approverFlags: (groups) => {
          const c = dev.enabled ? dev.clients.find((x) => x.groups.some((g) => groups.includes(g))) : undefined;
          return c === undefined ? ' --token <approver token>' : ` --as-client ${c.id}`;
        },
      }),
      maxRequestBodyBytes: config.edge.maxRequestBodyBytes,
      metrics: this.metrics.edge,
    });
    const domain = config.edge.domain;
    const server = new EdgeServer({
      host: config.edge.listen.host,
      port: config.edge.listen.port,
      tls: this.tls,
      pipeline,
      logger,
      admin: this.listeners.dispatcher(Listener.Edge),
      hostRouting: domain === undefined ? undefined : { domain, kindOf: (name) => registry.get(name)?.type },
      servedNames: edgeServedNames(config),
      headersTimeoutMs: config.edge.headersTimeout,
    });
    this.server = server;
    this.listeners.host({
      listener: Listener.Edge,
      open: async () => {
        const bound = await server.listen();
        logger.info('edge listening', { url: this.urlAt(bound.port), connections: registry.list().map((c) => c.name) });
        return bound.port;
      },
      close: () => this.closeServer(),
    });
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.closeServer();
    // Completions may still linger for the next group-commit message: send them before the bus closes.
    await this.audit?.flush();
    await this.checkpointer?.stop();
    await this.policyChanges?.unsubscribe();
    this.registry.close();
  }

  private async closeServer(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    server?.closeAll();
    await server?.close();
  }
}
