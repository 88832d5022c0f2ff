import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { join } from 'node:path';
import type { PortcullisConfig } from '../../../libs/config/src/index.js';
import { DevIssuer, TokenVerifier, type TrustedIssuer } from '../../../libs/identity/src/index.js';
import { loadOrCreateDevTls } from '../../../libs/tls/src/index.js';
import {
  ApprovalGate,
  AuditPublisher,
  ConnectionRegistry,
  createEdgeMasking,
  createUpstreamConnection,
  DecisionCache,
  DecisionClient,
  DEV_ISSUER_PATH,
  EdgePipeline,
  EdgeServer,
  inClusterCredential,
  PolicyExplainRoute,
  type UpstreamConnection,
} from '../../../libs/gateway/src/index.js';
import { PLATFORM, type Platform } from '../../runtime/src/index.js';
import type { BusSubscription } from '../../../libs/bus/src/index.js';
import { readFileSync } from 'node:fs';

/** Connections added at start-up by the process (the embedded sandbox), on top of the config's. */
export const EXTRA_CONNECTIONS = Symbol('portcullis.extra-connections');

/** What the edge reports once it listens. */
export interface EdgeEndpoint {
  url: string;
  caPem: string;
  devIssuerUrl: string | undefined;
}

/** Wires the edge: TLS, identity, connections, the pipeline and the HTTPS server. */
@Injectable()
export class EdgeService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private server: EdgeServer | undefined;
  private registry: ConnectionRegistry | undefined;
  private endpointValue: EdgeEndpoint | undefined;
  private policyChanges: BusSubscription | undefined;

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
    const tls = await edgeTls(config);
    const listen = config.edge.listen;
    const publicUrl = (config.edge.publicUrl ?? `https://${urlHost(listen.host)}:${listen.port}`).replace(/\/$/, '');

    const dev = config.identity.devIssuer;
    const devIssuer = dev.enabled
      ? await DevIssuer.open({
          issuer: dev.issuerUrl ?? `${publicUrl}${DEV_ISSUER_PATH}`,
          audience: dev.audience,
          audiences: config.connections.flatMap((c) => c.audiences ?? []),
          tokenLifetimeMs: dev.tokenLifetime,
          maxTokenLifetimeMs: config.identity.maxTokenLifetime,
          clients: dev.clients,
          stateDir: config.node.stateDir,
        })
      : undefined;
    const issuers: TrustedIssuer[] = config.identity.issuers.map((i) => ({
      issuer: i.issuer,
      audiences: i.audiences,
      algorithms: i.algorithms,
      keys: i.jwksUri !== undefined ? { jwksUri: i.jwksUri } : { discovery: true },
      subjectClaim: i.subjectClaim,
      groupsClaim: i.groupsClaim,
      clientIdClaim: i.clientIdClaim,
      scopeClaim: i.scopeClaim,
      requiredClaims: Object.fromEntries(Object.entries(i.requiredClaims).map(([k, v]) => [k, typeof v === 'string' ? [v] : v])),
      ...(i.caFile !== undefined ? { caPem: readFileSync(i.caFile, 'utf8') } : {}),
      jwksCacheLifetimeMs: i.jwksCacheLifetime,
      jwksRefetchCooldownMs: i.jwksRefetchCooldown,
    }));
    if (devIssuer) {
      issuers.push({ issuer: devIssuer.issuer, audiences: [devIssuer.audience], algorithms: ['ES256'], keys: { jwks: devIssuer.jwks() } });
    }
    const verifier = new TokenVerifier({
      issuers,
      maxTokenLifetimeMs: config.identity.maxTokenLifetime,
      clockSkewMs: config.identity.clockSkew,
      connectionAudiences: Object.fromEntries(config.connections.flatMap((c) => (c.audiences !== undefined ? [[c.name, c.audiences]] : []))),
    });
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
      audit: new AuditPublisher(this.platform.log, config.edge.auditAckTimeout, logger, config.bus.mode === 'nats' ? { groupCommit: {} } : {}),
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
      ready: () => this.platform.bus.isConnected(),
      hostRouting: domain === undefined ? undefined : { domain, kindOf: (name) => registry.get(name)?.type },
    });
    const bound = await this.server.listen();
    const url = config.edge.publicUrl ?? `https://${urlHost(listen.host)}:${bound.port}`;
    this.endpointValue = { url: url.replace(/\/$/, ''), caPem: tls.caPem, devIssuerUrl: devIssuer ? devIssuer.issuer : undefined };
    logger.info('edge listening', { url, connections: this.registry.list().map((c) => c.name) });
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.server?.closeAll();
    await this.server?.close();
    await this.policyChanges?.unsubscribe();
    this.registry?.close();
  }
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** The configured certificate, or the development CA's (created on first start, then reused). */
async function edgeTls(config: PortcullisConfig): Promise<{ certPem: string; keyPem: string; caPem: string }> {
  const t = config.edge.tls;
  if (t.certFile !== undefined && t.keyFile !== undefined) {
    const certPem = readFileSync(t.certFile, 'utf8');
    return { certPem, keyPem: readFileSync(t.keyFile, 'utf8'), caPem: certPem };
  }
  const hosts = new Set(['localhost', '127.0.0.1', '::1']);
  const h = config.edge.listen.host;
  if (h !== '0.0.0.0' && h !== '::') hosts.add(h);
  if (config.edge.publicUrl !== undefined) hosts.add(new URL(config.edge.publicUrl).hostname.replace(/^\[|\]$/g, ''));
  // Host routing: <connection>.<domain> must be covered too.
  if (config.edge.domain !== undefined) hosts.add(`*.${config.edge.domain}`);
  const dev = await loadOrCreateDevTls(join(config.node.stateDir, 'tls'), [...hosts]);
  return { certPem: dev.certPem, keyPem: dev.keyPem, caPem: dev.caPem };
}
