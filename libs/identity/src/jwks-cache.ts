import { request as httpsRequest } from 'node:https';
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { TokenError, TokenErrorCode } from './identity-error.js';

/** Fetches a JSON document over HTTPS (the issuer's discovery document or key set). */
export type JsonFetcher = (url: URL) => Promise<unknown>;

const MAX_DOCUMENT_BYTES = 1024 * 1024;

/**
 * A {@link JsonFetcher} over node:https: HTTPS only, the given CA (or the system's), no
 * redirects, a timeout and a size limit, since an issuer's answer is untrusted input.
 */
export function httpsJsonFetcher(opts: { caPem?: string | undefined; timeoutMs?: number } = {}): JsonFetcher {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return (url) =>
    new Promise((resolve, reject) => {
      if (url.protocol !== 'https:') {
        reject(new Error(`refusing to fetch ${url.origin}: issuers are fetched over https only`));
        return;
      }
      const req = httpsRequest(
        url,
        {
          method: 'GET',
          headers: { accept: 'application/json, application/jwk-set+json' },
          timeout: timeoutMs,
          ...(opts.caPem !== undefined ? { ca: opts.caPem } : {}),
        },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            reject(new Error(`HTTP ${res.statusCode ?? 0} from ${url.origin}${url.pathname}`));
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_DOCUMENT_BYTES) req.destroy(new Error(`the document at ${url.origin}${url.pathname} exceeds ${MAX_DOCUMENT_BYTES} bytes`));
            else chunks.push(c);
          });
          res.on('end', () => {
            try {
              resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown);
            } catch (cause) {
              reject(new Error(`the document at ${url.origin}${url.pathname} is not JSON`, { cause }));
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer from ${url.origin} within ${timeoutMs}ms`)));
      req.on('error', reject);
      req.end();
    });
}

/** Settings of one issuer's key cache. */
export interface JwksCacheOptions {
  /** Where the key set is: a fixed URL, or discovered from `<issuer>/.well-known/openid-configuration`. */
  source: { jwksUri: URL } | { discoveryOf: string };
  fetchJson: JsonFetcher;
  /** How long fetched keys are used without a refetch; past it a failed refetch means "unavailable". */
  cacheLifetimeMs: number;
  /** Minimum time between two refetches caused by an unknown `kid`. */
  refetchCooldownMs: number;
  /** Minimum time between two attempts after a failed fetch (no keys, or stale keys). */
  retryAfterFailureMs?: number;
  now?: () => number;
}

/**
 * One issuer's JWKS, cached, with rotation. jose's createRemoteJWKSet does most of this but
 * measures its cooldown from the last *successful* fetch, so while the endpoint is down every
 * request with an unknown `kid` would trigger another fetch; this cache rate-limits attempts.
 *
 * - Keys are fetched on first use and used for `cacheLifetimeMs`; then refetched on next use.
 * - An unknown `kid` triggers one refetch, at most once per `refetchCooldownMs` (attempts count,
 *   successful or not); inside the cooldown it is answered `unknown_key` at once.
 * - Endpoint down: cached keys keep working until their lifetime ends; with no usable keys (none
 *   fetched yet, or stale) the answer is `unavailable` (503 at the edge), never a 401.
 */
export class JwksCache {
  private keys: { getKey: JWTVerifyGetKey; fetchedAt: number } | undefined;
  private jwksUri: URL | undefined;
  private lastAttemptAt = Number.NEGATIVE_INFINITY;
  private lastFailure: unknown;
  private pending: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly retryAfterFailureMs: number;
  /** Number of fetch attempts of the key set (for tests and metrics). */
  fetches = 0;

  constructor(private readonly opts: JwksCacheOptions) {
    this.now = opts.now ?? Date.now;
    this.retryAfterFailureMs = opts.retryAfterFailureMs ?? 1000;
    if ('jwksUri' in opts.source) this.jwksUri = opts.source.jwksUri;
  }

  /** The jose key resolver backed by this cache. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    const now = this.now();
    if (this.keys === undefined || now - this.keys.fetchedAt >= this.opts.cacheLifetimeMs) {
      if (now - this.lastAttemptAt >= this.retryAfterFailureMs || this.pending !== undefined) await this.refresh();
      if (this.keys === undefined || this.now() - this.keys.fetchedAt >= this.opts.cacheLifetimeMs) {
        throw new TokenError(TokenErrorCode.Unavailable, 'the issuer keys are unavailable', { cause: this.lastFailure });
      }
    }
    try {
      return await this.keys.getKey(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      if (this.now() - this.lastAttemptAt < this.opts.refetchCooldownMs && this.pending === undefined) throw err;
      // Key rotation: the issuer may have published a new key since the last fetch.
      const before = this.keys;
      await this.refresh();
      if (this.keys === before) {
        throw new TokenError(TokenErrorCode.Unavailable, 'the issuer keys could not be refetched for an unknown key id', { cause: this.lastFailure });
      }
      return await this.keys.getKey(header, token);
    }
  };

  /** One fetch at a time; concurrent callers share it. Never rejects: a failure is kept in lastFailure. */
  private refresh(): Promise<void> {
    this.pending ??= this.fetchKeys().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async fetchKeys(): Promise<void> {
    this.lastAttemptAt = this.now();
    this.fetches += 1;
    try {
      this.jwksUri ??= await this.discover();
      const doc = await this.opts.fetchJson(this.jwksUri);
      const getKey = createLocalJWKSet(doc as JSONWebKeySet);
      this.keys = { getKey, fetchedAt: this.now() };
      this.lastFailure = undefined;
    } catch (cause) {
      this.lastFailure = cause;
    }
  }

  private async discover(): Promise<URL> {
    const source = this.opts.source;
    if ('jwksUri' in source) return source.jwksUri;
    const issuer = source.discoveryOf;
    const doc = (await this.opts.fetchJson(new URL(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`))) as {
      issuer?: unknown;
      jwks_uri?: unknown;
    };
    // OpenID Connect Discovery 1.0 §4.3: the document's issuer must be exactly the configured one.
    if (doc.issuer !== issuer) throw new Error(`the discovery document of ${issuer} names another issuer`);
    if (typeof doc.jwks_uri !== 'string') throw new Error(`the discovery document of ${issuer} has no jwks_uri`);
    return new URL(doc.jwks_uri);
  }
}
