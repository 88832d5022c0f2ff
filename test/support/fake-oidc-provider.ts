import { randomUUID, type JsonWebKey } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { listenUrl } from '@portcullis/common';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTHeaderParameters, type JWTPayload } from 'jose';

/** A signing key of the fake provider. */
export interface ProviderKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
  /** The public key as SPKI PEM (what an HS256-confusion attacker would use as the HMAC secret). */
  readonly publicPem: string;
}

/** A client of the fake provider's client credentials grant. */
export interface ProviderClient {
  readonly secret: string;
  /** Extra claims of its tokens (sub defaults to the client id). */
  readonly claims?: JWTPayload;
}

/**
 * An OpenID provider over HTTPS on loopback: discovery and JWKS, with keys the test rotates, an
 * on/off switch (down = 503), and a count of key-set fetches. Tokens are signed in-process, or
 * issued at its token endpoint (client credentials grant, client_secret_basic or _post) to the
 * registered `clients`, signed with the first published key.
 */
export interface FakeOidcProvider {
  readonly issuer: string;
  /** Keys served at the JWKS endpoint (replace to rotate). */
  published: ProviderKey[];
  /** When false, every endpoint answers 503. */
  up: boolean;
  /** Number of JWKS requests received. */
  readonly jwksFetches: () => number;
  /** Clients of the token endpoint, by id. */
  readonly clients: Map<string, ProviderClient>;
  /** Lifetime of the tokens the token endpoint issues, in seconds. */
  tokenLifetimeSeconds: number;
  /** The audience of issued tokens when the request names none. */
  defaultAudience: string;
  /** Token endpoint requests received, and discovery fetches. */
  readonly tokenRequests: () => number;
  readonly discoveryFetches: () => number;
  newKey(kid: string): Promise<ProviderKey>;
  /** Signs `payload` with `key` (ES256), header overrides allowed. */
  sign(key: ProviderKey, payload: JWTPayload, header?: Partial<JWTHeaderParameters>): Promise<string>;
  close(): Promise<void>;
}

/** Starts a provider with the given serving certificate. */
export async function startFakeOidcProvider(tls: { certPem: string; keyPem: string }): Promise<FakeOidcProvider> {
  let jwks = 0;
  let tokens = 0;
  let discoveries = 0;
  let issuer = '';
  const state = { published: [] as ProviderKey[], up: true, tokenLifetimeSeconds: 300, defaultAudience: 'portcullis' };
  const clients = new Map<string, ProviderClient>();
  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const send = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.url === '/keys') jwks += 1;
    if (req.url === '/token') tokens += 1;
    if (req.url === '/.well-known/openid-configuration') discoveries += 1;
    if (!state.up) return send(503, { error: 'down' });
    if (req.url === '/.well-known/openid-configuration')
      return send(200, {
        issuer,
        jwks_uri: `${issuer}/keys`,
        token_endpoint: `${issuer}/token`,
        grant_types_supported: ['client_credentials'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        id_token_signing_alg_values_supported: ['ES256'],
      });
    if (req.url === '/keys') return send(200, { keys: state.published.map((k) => k.publicJwk) });
    if (req.url === '/token' && req.method === 'POST') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        let id = form.get('client_id') ?? '';
        let secret = form.get('client_secret') ?? '';
        const basic = /^Basic (\S+)$/.exec(req.headers.authorization ?? '');
        if (basic) {
          const [u = '', p = ''] = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':');
          id = decodeURIComponent(u.replace(/\+/g, ' '));
          secret = decodeURIComponent(p.replace(/\+/g, ' '));
        }
        const client = clients.get(id);
        if (form.get('grant_type') !== 'client_credentials') return send(400, { error: 'unsupported_grant_type' });
        if (client === undefined || client.secret !== secret)
          return send(401, { error: 'invalid_client', error_description: 'unknown client or wrong secret' });
        const key = state.published[0];
        if (key === undefined) return send(500, { error: 'server_error', error_description: 'no signing key' });
        const now = Math.floor(Date.now() / 1000);
        const scope = form.get('scope');
        new SignJWT({ client_id: id, ...(scope !== null ? { scope } : {}), ...client.claims })
          .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
          .setIssuer(issuer)
          .setSubject(typeof client.claims?.sub === 'string' ? client.claims.sub : id)
          .setAudience(form.get('audience') ?? state.defaultAudience)
          .setIssuedAt(now)
          .setExpirationTime(now + state.tokenLifetimeSeconds)
          .setJti(randomUUID())
          .sign(key.privateKey)
          .then(
            (token) => send(200, { access_token: token, token_type: 'Bearer', expires_in: state.tokenLifetimeSeconds }),
            (err: Error) => send(500, { error: 'server_error', error_description: err.message }),
          );
      });
      return;
    }
    send(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const bound = server.address() as AddressInfo;
  issuer = listenUrl('https', bound.address, bound.port);
  return {
    issuer,
    get published() {
      return state.published;
    },
    set published(keys: ProviderKey[]) {
      state.published = keys;
    },
    get up() {
      return state.up;
    },
    set up(v: boolean) {
      state.up = v;
    },
    jwksFetches: () => jwks,
    clients,
    get tokenLifetimeSeconds() {
      return state.tokenLifetimeSeconds;
    },
    set tokenLifetimeSeconds(v: number) {
      state.tokenLifetimeSeconds = v;
    },
    get defaultAudience() {
      return state.defaultAudience;
    },
    set defaultAudience(v: string) {
      state.defaultAudience = v;
    },
    tokenRequests: () => tokens,
    discoveryFetches: () => discoveries,
    async newKey(kid) {
      const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
      const { createPublicKey } = await import('node:crypto');
      const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
      const publicPem = createPublicKey({ key: publicJwk as JsonWebKey, format: 'jwk' })
        .export({ type: 'spki', format: 'pem' })
        .toString();
      return { kid, privateKey, publicJwk, publicPem };
    },
    sign(key, payload, header = {}) {
      return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT', ...header }).sign(key.privateKey);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
