/** The development issuer over HTTP: where the edge mounts it, and its token request form. */
import { DevIssuerError } from './dev-issuer.js';

/** Path prefix of the development issuer on the edge (discovery, JWKS, the token endpoint). */
export const DEV_ISSUER_PATH = '/oidc/dev';

/** A `client_credentials` token request of the development issuer, read from its form. */
export interface DevTokenRequest {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly scopes?: readonly string[];
  readonly ttlMs?: number;
  readonly audience?: string;
}

/**
 * Reads an OAuth2 token request (`application/x-www-form-urlencoded` body, client credentials in
 * the form or as HTTP Basic): only `client_credentials` is supported; `ttl_seconds` asks for a
 * shorter lifetime; `audience` (or RFC 8707 `resource`) for another audience.
 */
export function parseDevTokenRequest(body: string, authorization: string | undefined): DevTokenRequest {
  const form = new URLSearchParams(body);
  if (form.get('grant_type') !== 'client_credentials') {
    throw new DevIssuerError('unsupported_grant_type', 'only client_credentials is supported');
  }
  let clientId = form.get('client_id') ?? '';
  let clientSecret = form.get('client_secret') ?? '';
  const basic = /^Basic\s+(\S+)$/i.exec(authorization ?? '');
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i > 0) {
      clientId = decodeURIComponent(decoded.slice(0, i));
      clientSecret = decodeURIComponent(decoded.slice(i + 1));
    }
  }
  const scope = form.get('scope');
  const ttl = form.get('ttl_seconds');
  // RFC 8707 calls it resource; many providers (Auth0, Okta) call it audience.
  const audience = form.get('audience') ?? form.get('resource');
  return {
    clientId,
    clientSecret,
    ...(scope ? { scopes: scope.split(' ').filter((s) => s) } : {}),
    ...(ttl && /^\d+$/.test(ttl) ? { ttlMs: Number(ttl) * 1000 } : {}),
    ...(audience ? { audience } : {}),
  };
}
