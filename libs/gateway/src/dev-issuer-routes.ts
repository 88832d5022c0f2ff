import type { IncomingMessage, ServerResponse } from 'node:http';
import { DevIssuerError, type DevIssuer } from '@portcullis/identity';

/** Path prefix of the development issuer on the edge. */
export const DEV_ISSUER_PATH = '/oidc/dev';

const MAX_FORM_BYTES = 8 * 1024;

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** Serves discovery, JWKS and the client_credentials token endpoint of the development issuer. */
export async function handleDevIssuer(issuer: DevIssuer, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  if (req.method === 'GET' && path === '/.well-known/openid-configuration') return json(res, 200, issuer.discovery());
  if (req.method === 'GET' && path === '/jwks.json') return json(res, 200, issuer.jwks());
  if (path !== '/token') return json(res, 404, { error: 'not_found' });
  if (req.method !== 'POST') return json(res, 405, { error: 'invalid_request', error_description: 'use POST' });

  let body = '';
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) return json(res, 413, { error: 'invalid_request', error_description: 'form too large' });
    body += chunk.toString('utf8');
  }
  const form = new URLSearchParams(body);
  if (form.get('grant_type') !== 'client_credentials') {
    return json(res, 400, { error: 'unsupported_grant_type', error_description: 'only client_credentials is supported' });
  }
  let clientId = form.get('client_id') ?? '';
  let clientSecret = form.get('client_secret') ?? '';
  const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
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
  try {
    const t = await issuer.issue({
      clientId,
      clientSecret,
      ...(scope ? { scopes: scope.split(' ').filter((s) => s) } : {}),
      ...(ttl && /^\d+$/.test(ttl) ? { ttlMs: Number(ttl) * 1000 } : {}),
      ...(audience ? { audience } : {}),
    });
    json(res, 200, { access_token: t.accessToken, token_type: 'Bearer', expires_in: t.expiresInSeconds, ...(t.scope ? { scope: t.scope } : {}) });
  } catch (err) {
    if (err instanceof DevIssuerError) {
      json(res, err.oauthError === 'invalid_client' ? 401 : 400, { error: err.oauthError, error_description: err.message });
      return;
    }
    throw err;
  }
}
