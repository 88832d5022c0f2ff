import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';

/** A client of the development issuer (OAuth2 client_credentials). */
export interface DevIssuerClient {
  readonly id: string;
  readonly secret: string;
  readonly subject?: string | undefined;
  readonly groups: readonly string[];
  readonly scopes: readonly string[];
}

/** Options of the development issuer. */
export interface DevIssuerOptions {
  /** The issuer URL (`iss`), e.g. https://127.0.0.1:8443/oidc/dev. */
  issuer: string;
  audience: string;
  /** Other audiences a client may ask for (connections with their own audiences). */
  audiences?: readonly string[];
  tokenLifetimeMs: number;
  /** The lifetime cap that also binds the development issuer. */
  maxTokenLifetimeMs: number;
  clients: readonly DevIssuerClient[];
  /** Directory holding the signing key, shared by every edge of one deployment. */
  stateDir: string;
}

/** A token the issuer minted. */
export interface IssuedToken {
  accessToken: string;
  expiresInSeconds: number;
  scope: string;
}

/** A refused token request, mapped to an OAuth2 error at the HTTP boundary. */
export class DevIssuerError extends Error {
  override readonly name = 'DevIssuerError';
  constructor(
    readonly oauthError: 'invalid_client' | 'invalid_request' | 'invalid_scope' | 'unsupported_grant_type',
    message: string,
  ) {
    super(message);
  }
}

interface StoredKey {
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

/**
 * The built-in development token issuer: client_credentials, discovery and JWKS, ES256 tokens
 * with a short lifetime. For the embedded mode and tests, never for production identities.
 */
export class DevIssuer {
  private constructor(
    private readonly opts: DevIssuerOptions,
    private readonly key: StoredKey,
    private readonly privateKey: CryptoKey | Uint8Array,
  ) {}

  /** Loads the signing key from the state directory, creating it on first start. */
  static async open(opts: DevIssuerOptions): Promise<DevIssuer> {
    const file = join(opts.stateDir, 'dev-issuer-key.json');
    if (!existsSync(file)) {
      const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
      const publicJwk = await exportJWK(publicKey);
      const kid = createHash('sha256').update(JSON.stringify(publicJwk)).digest('base64url').slice(0, 16);
      const created: StoredKey = {
        kid,
        privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' },
        publicJwk: { ...publicJwk, kid, alg: 'ES256', use: 'sig' },
      };
      mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(created), { mode: 0o600 });
      chmodSync(tmp, 0o600);
      // link() fails when the file exists: of several edges starting together, the first key wins
      // and every edge then reads that one.
      try {
        linkSync(tmp, file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      } finally {
        unlinkSync(tmp);
      }
    }
    const stored = JSON.parse(readFileSync(file, 'utf8')) as StoredKey;
    const privateKey = await importJWK(stored.privateJwk, 'ES256');
    return new DevIssuer(opts, stored, privateKey);
  }

  get issuer(): string {
    return this.opts.issuer;
  }

  get audience(): string {
    return this.opts.audience;
  }

  /** The public key set (JWKS document). */
  jwks(): { keys: JWK[] } {
    return { keys: [this.key.publicJwk] };
  }

  /** The OIDC discovery document. */
  discovery(): Record<string, unknown> {
    return {
      issuer: this.opts.issuer,
      jwks_uri: `${this.opts.issuer}/jwks.json`,
      token_endpoint: `${this.opts.issuer}/token`,
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      id_token_signing_alg_values_supported: ['ES256'],
      response_types_supported: ['token'],
      subject_types_supported: ['public'],
    };
  }

  /** Mints a token for a client after checking its secret (constant time). */
  async issue(req: { clientId: string; clientSecret: string; scopes?: readonly string[]; ttlMs?: number; audience?: string }): Promise<IssuedToken> {
    const client = this.opts.clients.find((c) => c.id === req.clientId);
    if (!client || !secretEquals(client.secret, req.clientSecret)) {
      throw new DevIssuerError('invalid_client', 'unknown client or wrong client secret');
    }
    const scopes = req.scopes && req.scopes.length > 0 ? req.scopes : client.scopes;
    // A client configured with no scopes may ask for none: policy rules match on scopes.
    const notAllowed = scopes.filter((s) => !client.scopes.includes(s));
    if (notAllowed.length > 0) {
      throw new DevIssuerError('invalid_scope', `scope not allowed for client ${client.id}: ${notAllowed.join(' ')}`);
    }
    const audience = req.audience ?? this.opts.audience;
    if (audience !== this.opts.audience && !(this.opts.audiences ?? []).includes(audience)) {
      throw new DevIssuerError('invalid_request', `audience ${JSON.stringify(audience.slice(0, 64))} is not one this issuer mints`);
    }
    const ttlMs = req.ttlMs ?? this.opts.tokenLifetimeMs;
    if (ttlMs > this.opts.maxTokenLifetimeMs) {
      throw new DevIssuerError(
        'invalid_request',
        `requested lifetime ${Math.round(ttlMs / 1000)}s exceeds the maximum token lifetime ${Math.round(this.opts.maxTokenLifetimeMs / 1000)}s`,
      );
    }
    const ttl = Math.max(1, Math.floor(ttlMs / 1000));
    const now = Math.floor(Date.now() / 1000);
    const scope = scopes.join(' ');
    const accessToken = await new SignJWT({
      client_id: client.id,
      groups: [...client.groups],
      ...(scope ? { scope } : {}),
    })
      .setProtectedHeader({ alg: 'ES256', kid: this.key.kid, typ: 'JWT' })
      .setIssuer(this.opts.issuer)
      .setSubject(client.subject ?? client.id)
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + ttl)
      .setJti(randomUUID())
      .sign(this.privateKey);
    return { accessToken, expiresInSeconds: ttl, scope };
  }
}

function secretEquals(expected: string, given: string): boolean {
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}
