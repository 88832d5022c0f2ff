import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PortcullisConfig } from '@portcullis/config';
import { listenUrl } from '@portcullis/common';
import { defaultServedNames } from '@portcullis/gateway';
import { DEV_ISSUER_PATH, DevIssuer, TokenVerifier, type TrustedIssuer } from '@portcullis/identity';
import { clientTrustFor, ClientTrustSource, loadOrCreateDevTls, type ClientTrust } from '@portcullis/tls';

/** The certificate every HTTPS listener presents, and what clients should trust for it. */
export interface GatewayTls {
  readonly certPem: string;
  readonly keyPem: string;
  /** The CA to hand to clients; undefined when the certificate chains to a CA clients already trust. */
  readonly caPem: string | undefined;
  readonly trust: ClientTrustSource;
}

/** The edge's public URL as configured (before it listens: the configured port). */
export function configuredEdgeUrl(config: PortcullisConfig): string {
  const listen = config.edge.listen;
  return (config.edge.publicUrl ?? listenUrl('https', listen.host, listen.port)).replace(/\/$/, '');
}

/**
 * The host names the edge serves path-prefix requests as (a Host naming another is answered 421):
 * loopback and the listen address (unless a wildcard), `edge.publicUrl`'s host, `edge.domain`
 * and `edge.hostNames`.
 */
export function edgeServedNames(config: PortcullisConfig): string[] {
  const names = new Set(defaultServedNames(config.edge.listen.host));
  if (config.edge.publicUrl !== undefined) names.add(new URL(config.edge.publicUrl).hostname.replace(/^\[|\]$/g, '').toLowerCase());
  if (config.edge.domain !== undefined) names.add(config.edge.domain);
  for (const n of config.edge.hostNames) names.add(n);
  return [...names];
}

/**
 * The certificate every Portcullis HTTPS listener presents (edge, approval, audit API): the
 * configured one (`edge.tls`), or the development CA's server certificate. One host set for every
 * role — the edge's, the approval and audit listeners', the public URL and `*.<edge.domain>` — so
 * roles sharing a state dir never re-issue the certificate away from each other.
 */
export async function gatewayTls(config: PortcullisConfig): Promise<GatewayTls> {
  const t = config.edge.tls;
  if (t.certFile !== undefined && t.keyFile !== undefined) {
    const certPem = readFileSync(t.certFile, 'utf8');
    const trust = edgeClientTrust(config, certPem);
    return { certPem, keyPem: readFileSync(t.keyFile, 'utf8'), caPem: trust.caPem, trust: trust.source };
  }
  const hosts = new Set(['localhost', '127.0.0.1', '::1']);
  for (const h of [config.edge.listen.host, config.approval.listen.host, config.audit.listen?.host]) {
    if (h !== undefined && h !== '0.0.0.0' && h !== '::') hosts.add(h);
  }
  if (config.edge.publicUrl !== undefined) hosts.add(new URL(config.edge.publicUrl).hostname.replace(/^\[|\]$/g, ''));
  // Host routing: <connection>.<domain> must be covered too.
  if (config.edge.domain !== undefined) hosts.add(`*.${config.edge.domain}`);
  const dev = await loadOrCreateDevTls(join(config.node.stateDir, 'tls'), [...hosts]);
  return { certPem: dev.certPem, keyPem: dev.keyPem, caPem: dev.caPem, trust: ClientTrustSource.DevCa };
}

/**
 * What clients should trust for a configured certificate (`edge.tls.certFile`, its PEM given):
 * `edge.tls.caBundleFile`, else the certificate when self-signed, else nothing (system roots).
 */
export function edgeClientTrust(config: PortcullisConfig, certPem: string): ClientTrust {
  const t = config.edge.tls;
  const bundle = t.caBundleFile === undefined ? undefined : readFileSync(t.caBundleFile, 'utf8');
  return clientTrustFor(certPem, bundle, {
    cert: `edge.tls.certFile ${t.certFile ?? ''}`.trim(),
    ...(t.caBundleFile === undefined ? {} : { caBundle: `edge.tls.caBundleFile ${t.caBundleFile}` }),
  });
}

/** The development issuer when enabled (its key is shared through node.stateDir by every role). */
export async function openDevIssuer(config: PortcullisConfig): Promise<DevIssuer | undefined> {
  const dev = config.identity.devIssuer;
  if (!dev.enabled) return undefined;
  return DevIssuer.open({
    issuer: dev.issuerUrl ?? `${configuredEdgeUrl(config)}${DEV_ISSUER_PATH}`,
    audience: dev.audience,
    audiences: config.connections.flatMap((c) => c.audiences ?? []),
    tokenLifetimeMs: dev.tokenLifetime,
    maxTokenLifetimeMs: config.identity.maxTokenLifetime,
    clients: dev.clients,
    stateDir: config.node.stateDir,
  });
}

/**
 * The one token verifier every role uses (edge data path, policy explain, approvals REST, audit
 * replay API): the configured issuers with all their checks (algorithms, audiences, required
 * claims, lifetime cap, JWKS cache) plus the development issuer when enabled.
 */
export async function createGatewayTokenVerifier(config: PortcullisConfig, devIssuer?: DevIssuer): Promise<TokenVerifier> {
  const dev = devIssuer ?? (await openDevIssuer(config));
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
  if (dev !== undefined) {
    issuers.push({ issuer: dev.issuer, audiences: [dev.audience], algorithms: ['ES256'], keys: { jwks: dev.jwks() } });
  }
  return new TokenVerifier({
    issuers,
    maxTokenLifetimeMs: config.identity.maxTokenLifetime,
    clockSkewMs: config.identity.clockSkew,
    connectionAudiences: Object.fromEntries(config.connections.flatMap((c) => (c.audiences !== undefined ? [[c.name, c.audiences]] : []))),
  });
}
