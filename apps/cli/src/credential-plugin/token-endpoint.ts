/**
 * The credential plugin's slow path, loaded only on a cache miss: OIDC discovery (cached on disk
 * for an hour), then an OAuth2 client credentials grant at the token endpoint. The client secret
 * comes from an environment variable or a file at run time (or, for the development issuer, the
 * Portcullis config), never from the kubeconfig, and never appears in an error.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { CredentialError, jwtExpiryMs, type PluginRequest } from './plugin-request.js';
import type { CachedToken } from './token-cache.js';

type ClientCredentialsRequest = Extract<PluginRequest, { mode: 'client-credentials' }>;

/** How long a discovery document is reused. */
const DISCOVERY_LIFETIME_MS = 3_600_000;
/** The lifetime assumed for a token whose response and claims say nothing about it. */
const UNKNOWN_LIFETIME_MS = 60_000;

interface Discovery {
  readonly tokenEndpoint: string;
  /** client_secret_basic unless the provider supports only client_secret_post. */
  readonly postSecret: boolean;
}

/** Fetches a token with the client credentials grant. */
export async function fetchClientCredentialsToken(req: ClientCredentialsRequest, caPem: string | undefined, dir: string): Promise<CachedToken> {
  const secret = await clientSecret(req);
  const discovery: Discovery =
    req.tokenEndpoint !== undefined ? { tokenEndpoint: req.tokenEndpoint, postSecret: false } : await discover(req.issuer, caPem, dir);
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  if (req.scopes.length > 0) form.set('scope', req.scopes.join(' '));
  if (req.audience !== undefined) form.set('audience', req.audience);
  const headers: Record<string, string> = {};
  if (discovery.postSecret) {
    form.set('client_id', req.client);
    form.set('client_secret', secret);
  } else {
    // RFC 6749 §2.3.1: both parts form-urlencoded before base64.
    headers['authorization'] = `Basic ${Buffer.from(`${formEncode(req.client)}:${formEncode(secret)}`).toString('base64')}`;
  }
  const issuedAtMs = Date.now();
  const res = await httpsJson('POST', discovery.tokenEndpoint, caPem, form.toString(), headers);
  const body = res.body;
  if (res.status !== 200 || typeof body['access_token'] !== 'string' || body['access_token'] === '') {
    const error = [body['error'], body['error_description']].filter((v) => typeof v === 'string').join(': ');
    throw new CredentialError(
      `the token endpoint ${discovery.tokenEndpoint} refused client ${req.client} (HTTP ${res.status}${error === '' ? '' : `, ${error.slice(0, 300)}`})`,
    );
  }
  const accessToken = body['access_token'];
  const expiresIn = Number(body['expires_in']);
  const expiresAtMs =
    Number.isFinite(expiresIn) && expiresIn > 0 ? issuedAtMs + expiresIn * 1000 : (jwtExpiryMs(accessToken) ?? issuedAtMs + UNKNOWN_LIFETIME_MS);
  return { accessToken, issuedAtMs, expiresAtMs };
}

async function clientSecret(req: ClientCredentialsRequest): Promise<string> {
  const source = req.secret;
  if (source.kind === 'env') {
    const value = process.env[source.name];
    if (value === undefined || value === '') {
      throw new CredentialError(
        `no client secret for ${req.client}: the environment variable ${source.name} is not set (kubectl passes its own environment to the plugin)`,
      );
    }
    return value;
  }
  if (source.kind === 'file') {
    let value: string;
    try {
      value = readFileSync(source.path, 'utf8').trim();
    } catch (err) {
      throw new CredentialError(`cannot read the client secret file ${source.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    if (value === '') throw new CredentialError(`the client secret file ${source.path} is empty`);
    return value;
  }
  const fromEnv = process.env['PORTCULLIS_CLIENT_SECRET'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  // The development issuer's clients are in the Portcullis config: loaded here, off the hot path.
  const { loadConfigFile } = await import('@portcullis/config');
  let secret: string | undefined;
  try {
    secret = loadConfigFile(source.configPath).identity.devIssuer.clients.find((c) => c.id === req.client)?.secret;
  } catch (err) {
    throw new CredentialError(`cannot read ${source.configPath}: ${(err as Error).message}`);
  }
  if (secret === undefined) {
    throw new CredentialError(
      `no secret for client ${req.client}: it is not in identity.devIssuer.clients of ${source.configPath} and PORTCULLIS_CLIENT_SECRET is not set`,
    );
  }
  return secret;
}

/** The issuer's discovery document (token endpoint, auth methods), from the disk cache when younger than an hour. */
async function discover(issuer: string, caPem: string | undefined, dir: string): Promise<Discovery> {
  const file = join(dir, 'discovery', `${createHash('sha256').update(issuer).digest('hex').slice(0, 40)}.json`);
  try {
    const cached = JSON.parse(readFileSync(file, 'utf8')) as { issuer?: unknown; fetchedAtMs?: unknown; discovery?: Discovery };
    if (cached.issuer === issuer && typeof cached.fetchedAtMs === 'number' && Date.now() - cached.fetchedAtMs < DISCOVERY_LIFETIME_MS) {
      if (typeof cached.discovery?.tokenEndpoint === 'string') return cached.discovery;
    }
  } catch {
    // none yet, or unreadable: fetched again below
  }
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  const res = await httpsJson('GET', url, caPem);
  if (res.status !== 200) throw new CredentialError(`OIDC discovery ${url} answered HTTP ${res.status}`);
  const doc = res.body;
  if (doc['issuer'] !== issuer) {
    throw new CredentialError(`OIDC discovery ${url} names the issuer ${JSON.stringify(doc['issuer'])}, not ${issuer}`);
  }
  const endpoint = doc['token_endpoint'];
  if (typeof endpoint !== 'string' || !endpoint.startsWith('https://')) {
    throw new CredentialError(`OIDC discovery ${url} has no https token_endpoint: the provider does not offer the client credentials grant`);
  }
  const methods = Array.isArray(doc['token_endpoint_auth_methods_supported']) ? (doc['token_endpoint_auth_methods_supported'] as unknown[]) : [];
  const discovery: Discovery = { tokenEndpoint: endpoint, postSecret: !methods.includes('client_secret_basic') && methods.includes('client_secret_post') };
  try {
    mkdirSync(join(dir, 'discovery'), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ issuer, fetchedAtMs: Date.now(), discovery }), { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    // a cache only: fetched again next time
  }
  return discovery;
}

function formEncode(s: string): string {
  return encodeURIComponent(s).replace(/%20/g, '+');
}

/** One HTTPS request with a JSON answer; a CredentialError naming the URL when it cannot be made. */
function httpsJson(
  method: 'GET' | 'POST',
  url: string,
  caPem: string | undefined,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  if (!url.startsWith('https://')) return Promise.reject(new CredentialError(`refusing ${url}: the client secret is only sent over https`));
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method,
        headers: {
          accept: 'application/json',
          ...headers,
          ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)) } : {}),
        },
        ...(caPem !== undefined ? { ca: caPem } : {}),
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = undefined;
          }
          const obj = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
          resolve({ status: res.statusCode ?? 0, body: obj });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new CredentialError(`cannot reach ${url}: ${err.code ?? err.message}`)));
    req.end(body);
  });
}
