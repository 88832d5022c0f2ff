import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PortcullisConfig } from '../../../libs/config/src/index.js';
import { DevIssuer, TokenVerifier, type TrustedIssuer } from '../../../libs/identity/src/index.js';
import { loadOrCreateDevTls } from '../../../libs/tls/src/index.js';

/** Path of the built-in development issuer under the edge URL. */
const DEV_ISSUER_PATH = '/oidc/dev';

/**
 * The TLS certificate a Portcullis server presents: the configured one (`edge.tls`), or the
 * development CA's server certificate (created on first start in stateDir/tls, then reused).
 * Mirrors the edge's choice so that every role serves the same certificate.
 */
export async function serverTls(config: PortcullisConfig, extraHosts: readonly string[] = []): Promise<{ certPem: string; keyPem: string; caPem: string }> {
  const t = config.edge.tls;
  if (t.certFile !== undefined && t.keyFile !== undefined) {
    const certPem = readFileSync(t.certFile, 'utf8');
    return { certPem, keyPem: readFileSync(t.keyFile, 'utf8'), caPem: certPem };
  }
  const hosts = new Set(['localhost', '127.0.0.1', '::1', ...extraHosts.filter((h) => h !== '0.0.0.0' && h !== '::')]);
  const h = config.edge.listen.host;
  if (h !== '0.0.0.0' && h !== '::') hosts.add(h);
  if (config.edge.publicUrl !== undefined) hosts.add(new URL(config.edge.publicUrl).hostname.replace(/^\[|\]$/g, ''));
  const dev = await loadOrCreateDevTls(join(config.node.stateDir, 'tls'), [...hosts]);
  return { certPem: dev.certPem, keyPem: dev.keyPem, caPem: dev.caPem };
}

/**
 * A token verifier trusting what the edge trusts: the configured issuers and, when enabled, the
 * development issuer (its key from stateDir, its URL as the edge computes it).
 */
export async function tokenVerifierFromConfig(config: PortcullisConfig): Promise<TokenVerifier> {
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
  const dev = config.identity.devIssuer;
  if (dev.enabled) {
    const listen = config.edge.listen;
    const host = listen.host === '0.0.0.0' || listen.host === '::' ? '127.0.0.1' : listen.host.includes(':') ? `[${listen.host}]` : listen.host;
    const publicUrl = (config.edge.publicUrl ?? `https://${host}:${listen.port}`).replace(/\/$/, '');
    const devIssuer = await DevIssuer.open({
      issuer: dev.issuerUrl ?? `${publicUrl}${DEV_ISSUER_PATH}`,
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
