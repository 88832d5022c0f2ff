import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import {
  ApprovalGate,
  AuditPublisher,
  ConnectionRegistry,
  createEdgeMasking,
  createUpstreamConnection,
  DecisionCache,
  DecisionClient,
  EdgePipeline,
  EdgeServer,
  inClusterCredential,
  PolicyExplainRoute,
  type UpstreamConnection,
} from '@portcullis/gateway';
import { configuredEdgeUrl, createGatewayTokenVerifier, gatewayTls, openDevIssuer, PLATFORM, type Platform } from '../../runtime/src/index.js';
import type { BusSubscription } from '@portcullis/bus';

/** Connections added at start-up by the process (the embedded sandbox), on top of the config's. */
export const EXTRA_CONNECTIONS = Symbol('portcullis.extra-connections');

/** What the edge reports once it listens. */
export interface EdgeEndpoint {
  url: string;
  /** The CA clients should trust; undefined when the configured certificate chains to their system roots. */
  caPem: string | undefined;
  devIssuerUrl: string | undefined;
}

/** Wires the edge: TLS, identity, connections, the pipeline and the HTTPS server. */
@Injectable()
export class EdgeService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private server: EdgeServer | undefined;
  private registry: ConnectionRegistry | undefined;
  private endpointValue: EdgeEndpoint | undefined;
  private policyChanges: BusSubscription | undefined;
  private audit: AuditPublisher | undefined;

  constructor(
    @Inject(PLATFORM) private readonly platform: Platform,
    @Inject(EXTRA_CONNECTIONS) private readonly extra: readonly UpstreamConnection[],
  ) {}

  /** The listening endpoint (after bootstrap). */
  get endpoint(): EdgeEndpoint {
    if (!this.endpointValue) throw new Error('edge is not listening yet');
    return this.endpointValue;
  }

  async onApplicationBootstrap(): Promise<void> {
    const { config, logger } = this.platform;
    const tls = await gatewayTls(config);
    const listen = config.edge.listen;
    const dev = config.identity.devIssuer;
    const devIssuer = await openDevIssuer(config);
    const verifier = await createGatewayTokenVerifier(config, devIssuer);
    this.registry = new ConnectionRegistry([
      ...config.connections.map((c) => {
        // Explicit settings win over what the pod's service account provides.
        const inCluster = c.type === 'kubernetes' && c.inCluster ? inClusterCredential(c.serviceAccountDir) : undefined;
        const server = c.server ?? inCluster?.server ?? '';
        const tokenFile = c.tokenFile ?? inCluster?.tokenFile;
        const caFile = c.caFile ?? inCluster?.caFile;
        return createUpstreamConnection({
          name: c.name,
          type: c.type,
          server,
          ...(caFile !== undefined ? { caFile } : {}),
          ...(tokenFile !== undefined ? { tokenFile } : {}),
          ...(c.clientCertFile !== undefined ? { clientCertFile: c.clientCertFile } : {}),
          ...(c.clientKeyFile !== undefined ? { clientKeyFile: c.clientKeyFile } : {}),
          insecureSkipTlsVerify: c.insecureSkipTlsVerify,
          ...(c.type === 'kubernetes' ? { impersonate: c.impersonate, impersonationPrefix: c.impersonationPrefix } : { impersonate: false }),
        });
      }),
      ...this.extra,
    ]);
    const cacheConfig = config.edge.decisionCache;
    const decisions = new DecisionClient(
      this.platform.bus,
      config.edge.decisionTimeout,
      cacheConfig.enabled ? new DecisionCache({ ttlMs: cacheConfig.ttl, maxEntries: cacheConfig.maxEntries }) : undefined,
    );
    this.policyChanges = decisions.followPolicyChanges();
    const pipeline = new EdgePipeline({
      nodeId: config.node.id,
      connections: this.registry,
      verifier,
      decisions,
      // JetStream pays per message: group-commit the events of concurrent requests. The embedded
      // SQLite log already commits one transaction per tick.
      audit: (this.audit = new AuditPublisher(this.platform.log, config.edge.auditAckTimeout, logger, {
        metrics: this.platform.observability.metrics.edge,
        ...(config.bus.mode === 'nats' ? { groupCommit: {} } : {}),
      })),
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
      }),
      approvals: new ApprovalGate({
        bus: this.platform.bus,
        timeoutMs: config.approval.gateTimeout,
        cliName: 'npx portcullis',
        // With the development issuer, name a client that can approve: a newcomer copies one line.
        approverFlags: (groups) => {
          const c = dev.enabled ? dev.clients.find((x) => x.groups.some((g) => groups.includes(g))) : undefined;
          return c === undefined ? ' --token <approver token>' : ` --as-client ${c.id}`;
        },
      }),
      maxRequestBodyBytes: config.edge.maxRequestBodyBytes,
      metrics: this.platform.observability.metrics.edge,
    });
    const registry = this.registry;
    const domain = config.edge.domain;
    this.server = new EdgeServer({
      host: listen.host,
      port: listen.port,
      tls,
      pipeline,
      devIssuer,
      policyExplain: new PolicyExplainRoute({ verifier, decisions, adminGroups: config.edge.admin.groups, logger }),
      logger,
      // The full checks (JetStream stream, …) run on the observability listener's /readyz.
      ready: () => this.platform.bus.isConnected() && this.platform.observability.readiness.lastReport().ready,
      hostRouting: domain === undefined ? undefined : { domain, kindOf: (name) => registry.get(name)?.type },
      headersTimeoutMs: config.edge.headersTimeout,
    });
    const bound = await this.server.listen();
    // Bound port (listen.port may be 0); the host as clients reach it.
    const url = config.edge.publicUrl ?? configuredEdgeUrl({ ...config, edge: { ...config.edge, listen: { host: listen.host, port: bound.port } } });
    this.endpointValue = { url: url.replace(/\/$/, ''), caPem: tls.caPem, devIssuerUrl: devIssuer ? devIssuer.issuer : undefined };
    logger.info('edge listening', { url, connections: this.registry.list().map((c) => c.name) });
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.server?.closeAll();
    await this.server?.close();
    // Completions may still linger for the next group-commit message: send them before the bus closes.
    await this.audit?.flush();
    await this.policyChanges?.unsubscribe();
    this.registry?.close();
  }
}
