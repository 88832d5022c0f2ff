import { createHash } from 'node:crypto';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { create, IdentitySchema, type Identity } from '../../contracts/src/index.js';
import { TokenError, TokenErrorCode } from './identity-error.js';

/** One trusted issuer. */
export interface TrustedIssuer {
  issuer: string;
  audiences: readonly string[];
  algorithms: readonly string[];
  /** A JWKS URL (remote) or a key set (local, for the development issuer). */
  keys: { jwksUri: string } | { jwks: JSONWebKeySet } | { discovery: true };
  subjectClaim?: string;
  groupsClaim?: string;
  clientIdClaim?: string;
  scopeClaim?: string;
}

/** Verifier settings. */
export interface TokenVerifierOptions {
  issuers: readonly TrustedIssuer[];
  maxTokenLifetimeMs: number;
  clockSkewMs: number;
  /** Bound on the cache of already-verified tokens. */
  cacheSize?: number;
}

const MAX_TOKEN_BYTES = 16 * 1024;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

interface CachedIdentity {
  identity: Identity;
  expMs: number;
}

/**
 * Verifies bearer JWTs against the configured issuers with jose, and maps claims to an
 * {@link Identity}. Verified tokens are cached until they expire (bounded), so the hot path pays
 * for one signature check per token, not per request.
 */
export class TokenVerifier {
  private readonly byIssuer = new Map<string, { cfg: TrustedIssuer; getKey: Promise<JWTVerifyGetKey> | JWTVerifyGetKey }>();
  private readonly cache = new Map<string, CachedIdentity>();
  private readonly cacheSize: number;

  constructor(private readonly opts: TokenVerifierOptions) {
    this.cacheSize = opts.cacheSize ?? 10_000;
    for (const cfg of opts.issuers) {
      this.byIssuer.set(cfg.issuer, { cfg, getKey: keyResolver(cfg) });
    }
  }

  /** Verifies a token (without the "Bearer " prefix) and returns the identity. */
  async verify(token: string, now: number = Date.now()): Promise<Identity> {
    const hit = this.cache.get(token);
    if (hit !== undefined) {
      if (hit.expMs + this.opts.clockSkewMs > now) return hit.identity;
      this.cache.delete(token);
    }
    if (token.length === 0) throw new TokenError(TokenErrorCode.Missing, 'no bearer token');
    if (token.length > MAX_TOKEN_BYTES || !JWT_SHAPE.test(token)) {
      throw new TokenError(TokenErrorCode.Malformed, 'the bearer token is not a compact JWT');
    }
    let iss: string | undefined;
    try {
      const header = decodeProtectedHeader(token);
      if (typeof header.alg !== 'string') throw new Error('no alg');
      const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as JWTPayload;
      iss = typeof payload.iss === 'string' ? payload.iss : undefined;
    } catch {
      throw new TokenError(TokenErrorCode.Malformed, 'the bearer token is not a decodable JWT');
    }
    const trusted = iss === undefined ? undefined : this.byIssuer.get(iss);
    if (trusted === undefined) throw new TokenError(TokenErrorCode.UnknownIssuer, 'the token issuer is not trusted');
    const { cfg } = trusted;

    let payload: JWTPayload;
    try {
      const getKey = await trusted.getKey;
      ({ payload } = await jwtVerify(token, getKey, {
        issuer: cfg.issuer,
        audience: [...cfg.audiences],
        algorithms: [...cfg.algorithms],
        clockTolerance: Math.ceil(this.opts.clockSkewMs / 1000),
        currentDate: new Date(now),
        requiredClaims: ['exp', 'iat', 'sub'],
        // Also refuses an iat in the future: otherwise a token "issued" next year with a 1h
        // exp - iat passes the lifetime cap below and stays valid for a year.
        maxTokenAge: Math.floor(this.opts.maxTokenLifetimeMs / 1000),
      }));
    } catch (cause) {
      throw mapJoseError(cause);
    }
    const iat = payload.iat ?? 0;
    const exp = payload.exp ?? 0;
    if (exp - iat > this.opts.maxTokenLifetimeMs / 1000) {
      throw new TokenError(
        TokenErrorCode.LifetimeTooLong,
        `the token lifetime ${exp - iat}s exceeds the maximum of ${Math.round(this.opts.maxTokenLifetimeMs / 1000)}s`,
      );
    }
    const identity = toIdentity(cfg, payload, token);
    if (this.cache.size >= this.cacheSize) {
      const oldest = this.cache.keys().next();
      if (oldest.done !== true) this.cache.delete(oldest.value);
    }
    this.cache.set(token, { identity, expMs: exp * 1000 });
    return identity;
  }
}

function keyResolver(cfg: TrustedIssuer): Promise<JWTVerifyGetKey> | JWTVerifyGetKey {
  const k = cfg.keys;
  if ('jwks' in k) return createLocalJWKSet(k.jwks);
  if ('jwksUri' in k) return createRemoteJWKSet(new URL(k.jwksUri), { cooldownDuration: 30_000, cacheMaxAge: 600_000 });
  // Discovery: resolved lazily on first use, retried on failure.
  let pending: Promise<JWTVerifyGetKey> | undefined;
  const resolver: JWTVerifyGetKey = async (header, input) => {
    pending ??= discoverJwks(cfg.issuer).catch((e: unknown) => {
      pending = undefined;
      throw e;
    });
    return (await pending)(header, input);
  };
  return resolver;
}

async function discoverJwks(issuer: string): Promise<JWTVerifyGetKey> {
  let doc: { jwks_uri?: unknown };
  try {
    const res = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    doc = (await res.json()) as { jwks_uri?: unknown };
  } catch (cause) {
    throw new TokenError(TokenErrorCode.Unavailable, `OIDC discovery for ${issuer} failed`, { cause });
  }
  if (typeof doc.jwks_uri !== 'string') throw new TokenError(TokenErrorCode.Unavailable, `OIDC discovery for ${issuer} has no jwks_uri`);
  return createRemoteJWKSet(new URL(doc.jwks_uri), { cooldownDuration: 30_000, cacheMaxAge: 600_000 });
}

function mapJoseError(cause: unknown): TokenError {
  if (cause instanceof TokenError) return cause;
  if (cause instanceof errors.JWTExpired) return new TokenError(TokenErrorCode.Expired, 'the token has expired', { cause });
  if (cause instanceof errors.JWTClaimValidationFailed) {
    if (cause.claim === 'nbf') return new TokenError(TokenErrorCode.NotYetValid, 'the token is not valid yet (nbf)', { cause });
    if (cause.claim === 'aud') return new TokenError(TokenErrorCode.BadAudience, 'the token audience is not accepted here', { cause });
    if (cause.claim === 'iat' && cause.reason === 'check_failed') return new TokenError(TokenErrorCode.NotYetValid, 'the token was issued in the future (iat)', { cause });
    return new TokenError(TokenErrorCode.BadClaims, `the token claim "${cause.claim}" is invalid (${cause.reason})`, { cause });
  }
  if (cause instanceof errors.JWKSNoMatchingKey) return new TokenError(TokenErrorCode.UnknownKey, 'no key of the issuer matches the token', { cause });
  if (cause instanceof errors.JWKSTimeout || cause instanceof errors.JOSEError && cause.code === 'ERR_JOSE_GENERIC' && /fetch|network/i.test(cause.message)) {
    return new TokenError(TokenErrorCode.Unavailable, 'the issuer keys are unavailable', { cause });
  }
  if (cause instanceof errors.JOSEAlgNotAllowed) return new TokenError(TokenErrorCode.BadSignature, 'the token algorithm is not allowed', { cause });
  if (cause instanceof errors.JWSSignatureVerificationFailed) return new TokenError(TokenErrorCode.BadSignature, 'the token signature is invalid', { cause });
  if (cause instanceof errors.JWSInvalid || cause instanceof errors.JWTInvalid) return new TokenError(TokenErrorCode.Malformed, 'the token is malformed', { cause });
  if (cause instanceof TypeError || (cause instanceof Error && /fetch failed|ECONNREFUSED|timeout/i.test(cause.message))) {
    return new TokenError(TokenErrorCode.Unavailable, 'the issuer keys are unavailable', { cause });
  }
  return new TokenError(TokenErrorCode.BadSignature, 'the token could not be verified', { cause });
}

function claimStrings(value: unknown): string[] {
  if (typeof value === 'string') return value.split(/[\s]+/).filter((s) => s.length > 0);
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

function toIdentity(cfg: TrustedIssuer, p: JWTPayload, token: string): Identity {
  const subject = String(p[cfg.subjectClaim ?? 'sub'] ?? '');
  const clientId = p[cfg.clientIdClaim ?? 'client_id'] ?? p['azp'];
  return create(IdentitySchema, {
    subject,
    groups: claimStrings(p[cfg.groupsClaim ?? 'groups']),
    clientId: typeof clientId === 'string' ? clientId : '',
    issuer: cfg.issuer,
    scopes: claimStrings(p[cfg.scopeClaim ?? 'scope'] ?? p['scp']),
    audiences: claimStrings(p.aud),
    tokenId: typeof p.jti === 'string' ? p.jti : createHash('sha256').update(token).digest('hex').slice(0, 32),
    tokenLifetimeSeconds: Math.max(0, (p.exp ?? 0) - (p.iat ?? 0)),
  });
}
