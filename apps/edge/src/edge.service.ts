import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { join } from 'node:path';
import type { PortcullisConfig } from '../../../libs/config/src/index.js';
import { DevIssuer, TokenVerifier, type TrustedIssuer } from '../../../libs/identity/src/index.js';
import { loadOrCreateDevTls } from '../../../libs/tls/src/index.js';
import {
  AuditPublisher,
  ConnectionRegistry,
  createUpstreamConnection,
  DecisionClient,
  DEV_ISSUER_PATH,
  EdgePipeline,
  EdgeServer,
  type UpstreamConnection,
} from '../../../libs/gateway/src/index.js';
import { PLATFORM, type Platform } from '../../runtime/src/index.js';
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
    }));
    if (devIssuer) {
      issuers.push({ issuer: devIssuer.issuer, audiences: [devIssuer.audience], algorithms: ['ES256'], keys: { jwks: devIssuer.jwks() } });
    }
    const verifier = new TokenVerifier({
      issuers,
      maxTokenLifetimeMs: config.identity.maxTokenLifetime,
      clockSkewMs: config.identity.clockSkew,
    });
    this.registry = new ConnectionRegistry([
      ...config.connections.map((c) =>
        createUpstreamConnection({
          name: c.name,
          type: c.type,
          server: c.server,
          ...(c.caFile !== undefined ? { caFile: c.caFile } : {}),
          ...(c.tokenFile !== undefined ? { tokenFile: c.tokenFile } : {}),
          insecureSkipTlsVerify: c.insecureSkipTlsVerify,
          ...(c.type === 'kubernetes' ? { impersonate: c.impersonate, impersonationPrefix: c.impersonationPrefix } : { impersonate: false }),
        }),
      ),
      ...this.extra,
    ]);
    const pipeline = new EdgePipeline({
      nodeId: config.node.id,
      connections: this.registry,
      verifier,
      decisions: new DecisionClient(this.platform.bus, config.edge.decisionTimeout),
      audit: new AuditPublisher(this.platform.log, config.edge.auditAckTimeout, logger, this.platform.observability.metrics.edge),
      logger,
      upstreamTimeoutMs: config.edge.upstreamTimeout,
      metrics: this.platform.observability.metrics.edge,
    });
    this.server = new EdgeServer({
      host: listen.host,
      port: listen.port,
      tls,
      pipeline,
      devIssuer,
      logger,
      // The full checks (JetStream stream, …) run on the observability listener's /readyz.
      ready: () => this.platform.bus.isConnected() && this.platform.observability.readiness.lastReport().ready,
    });
    const bound = await this.server.listen();
    const url = config.edge.publicUrl ?? `https://${urlHost(listen.host)}:${bound.port}`;
    this.endpointValue = { url: url.replace(/\/$/, ''), caPem: tls.caPem, devIssuerUrl: devIssuer ? devIssuer.issuer : undefined };
    logger.info('edge listening', { url, connections: this.registry.list().map((c) => c.name) });
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.server?.closeAll();
    await this.server?.close();
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
  const dev = await loadOrCreateDevTls(join(config.node.stateDir, 'tls'), [...hosts]);
  return { certPem: dev.certPem, keyPem: dev.keyPem, caPem: dev.caPem };
}
