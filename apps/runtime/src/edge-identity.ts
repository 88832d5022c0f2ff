import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PortcullisConfig } from '../../../libs/config/src/index.js';
import { DevIssuer, TokenVerifier, type TrustedIssuer } from '../../../libs/identity/src/index.js';
import { loadOrCreateDevTls } from '../../../libs/tls/src/index.js';

/** The path of the development issuer under the edge URL (mirrors libs/gateway DEV_ISSUER_PATH). */
const DEV_ISSUER_PATH = '/oidc/dev';

/** The edge's public URL as configured (before it listens: the configured port). */
export function configuredEdgeUrl(config: PortcullisConfig): string {
  const listen = config.edge.listen;
  const host = listen.host === '0.0.0.0' || listen.host === '::' ? '127.0.0.1' : listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return (config.edge.publicUrl ?? `https://${host}:${listen.port}`).replace(/\/$/, '');
}

/**
 * A token verifier with the edge's trust: the configured issuers plus the development issuer
 * (its key is shared through node.stateDir). Used by roles other than the edge that accept
 * bearer tokens (the approval REST API).
 */
export async function createEdgeTokenVerifier(config: PortcullisConfig): Promise<TokenVerifier> {
  const dev = config.identity.devIssuer;
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
  if (dev.enabled) {
    const devIssuer = await DevIssuer.open({
      issuer: dev.issuerUrl ?? `${configuredEdgeUrl(config)}${DEV_ISSUER_PATH}`,
      audience: dev.audience,
      tokenLifetimeMs: dev.tokenLifetime,
      maxTokenLifetimeMs: config.identity.maxTokenLifetime,
      clients: dev.clients,
      stateDir: config.node.stateDir,
    });
    issuers.push({ issuer: devIssuer.issuer, audiences: [devIssuer.audience], algorithms: ['ES256'], keys: { jwks: devIssuer.jwks() } });
  }
  return new TokenVerifier({ issuers, maxTokenLifetimeMs: config.identity.maxTokenLifetime, clockSkewMs: config.identity.clockSkew });
}

/** The gateway's TLS: the configured certificate, or the development CA's (created once, then reused). */
export async function gatewayTls(config: PortcullisConfig, extraHosts: readonly string[] = []): Promise<{ certPem: string; keyPem: string; caPem: string }> {
  const t = config.edge.tls;
  if (t.certFile !== undefined && t.keyFile !== undefined) {
    const certPem = readFileSync(t.certFile, 'utf8');
    return { certPem, keyPem: readFileSync(t.keyFile, 'utf8'), caPem: certPem };
  }
  const hosts = new Set(['localhost', '127.0.0.1', '::1']);
  for (const h of [config.edge.listen.host, ...extraHosts]) if (h !== '0.0.0.0' && h !== '::') hosts.add(h);
  if (config.edge.publicUrl !== undefined) hosts.add(new URL(config.edge.publicUrl).hostname.replace(/^\[|\]$/g, ''));
  const dev = await loadOrCreateDevTls(join(config.node.stateDir, 'tls'), [...hosts]);
  return { certPem: dev.certPem, keyPem: dev.keyPem, caPem: dev.caPem };
}
