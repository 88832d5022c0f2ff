import type { JsonWebKey } from 'node:crypto';
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

/**
 * An OpenID provider over HTTPS on loopback: discovery and JWKS, with keys the test rotates, an
 * on/off switch (down = 503), and a count of key-set fetches. Tokens are signed in-process.
 */
export interface FakeOidcProvider {
  readonly issuer: string;
  /** Keys served at the JWKS endpoint (replace to rotate). */
  published: ProviderKey[];
  /** When false, every endpoint answers 503. */
  up: boolean;
  /** Number of JWKS requests received. */
  readonly jwksFetches: () => number;
  newKey(kid: string): Promise<ProviderKey>;
  /** Signs `payload` with `key` (ES256), header overrides allowed. */
  sign(key: ProviderKey, payload: JWTPayload, header?: Partial<JWTHeaderParameters>): Promise<string>;
  close(): Promise<void>;
}

/** Starts a provider with the given serving certificate. */
export async function startFakeOidcProvider(tls: { certPem: string; keyPem: string }): Promise<FakeOidcProvider> {
  let jwks = 0;
  let issuer = '';
  const state = { published: [] as ProviderKey[], up: true };
  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const send = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.url === '/keys') jwks += 1;
    if (!state.up) return send(503, { error: 'down' });
    if (req.url === '/.well-known/openid-configuration')
      return send(200, { issuer, jwks_uri: `${issuer}/keys`, id_token_signing_alg_values_supported: ['ES256'] });
    if (req.url === '/keys') return send(200, { keys: state.published.map((k) => k.publicJwk) });
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
