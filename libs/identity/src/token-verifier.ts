import { createHash } from 'node:crypto';
import { createLocalJWKSet, decodeProtectedHeader, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { create, IdentitySchema, type Identity } from '@portcullis/contracts';
import { TokenError, TokenErrorCode } from './identity-error.js';
import { httpsJsonFetcher, JwksCache, type JsonFetcher } from './jwks-cache.js';

/** One trusted issuer. */
export interface TrustedIssuer {
  issuer: string;
  /** Audiences accepted on connections that do not name their own (see `connectionAudiences`). */
  audiences: readonly string[];
  algorithms: readonly string[];
  /** A JWKS URL (remote), a key set (local, for the development issuer), or OIDC discovery. */
  keys: { jwksUri: string } | { jwks: JSONWebKeySet } | { discovery: true };
  subjectClaim?: string;
  groupsClaim?: string;
  clientIdClaim?: string;
  scopeClaim?: string;
  /** Claims the token must carry: claim name -> accepted values (exact match; an array claim matches when any element does). */
  requiredClaims?: Readonly<Record<string, readonly string[]>>;
  /** CA bundle (PEM) for the issuer's discovery and JWKS endpoints; default the system's. */
  caPem?: string;
  /** How long fetched keys are used before a refetch (default 10 min). */
  jwksCacheLifetimeMs?: number;
  /** Minimum time between refetches caused by an unknown `kid` (default 30 s). */
  jwksRefetchCooldownMs?: number;
}

/** Verifier settings. */
export interface TokenVerifierOptions {
  issuers: readonly TrustedIssuer[];
  maxTokenLifetimeMs: number;
  clockSkewMs: number;
  /** Per-connection audiences: on these connections a token must carry one of them (instead of its issuer's). */
  connectionAudiences?: Readonly<Record<string, readonly string[]>>;
  /** Bound on the cache of already-verified tokens. */
  cacheSize?: number;
  /** Fetches issuer documents (tests inject one); default HTTPS with the issuer's `caPem`. */
  fetchJson?: (issuer: TrustedIssuer) => JsonFetcher;
  /** The key caches' clock (tests); default Date.now. */
  now?: () => number;
}

/** A verified token: the identity, its claims for policy, and whether this is its first use here. */
export interface VerifiedToken {
  readonly identity: Identity;
  /** Every claim of the token, as JSON (computed once per token), for policy `match.claims`. */
  readonly claimsJson: string;
  /** The token's `exp` in milliseconds. */
  readonly expiresAtMs: number;
  /** True on the first successful use of this token at this verifier (announce it once). */
  readonly first: boolean;
}

const MAX_TOKEN_BYTES = 16 * 1024;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const DEFAULT_JWKS_LIFETIME_MS = 600_000;
const DEFAULT_JWKS_COOLDOWN_MS = 30_000;

interface CachedToken {
  identity: Identity;
  claimsJson: string;
  expMs: number;
  audiences: readonly string[];
  announced: boolean;
}

interface IssuerState {
  cfg: TrustedIssuer;
  getKey: JWTVerifyGetKey;
  /** Every audience accepted anywhere (issuer + connections): jose refuses the rest before caching. */
  anyAudience: string[];
  defaultAudiences: ReadonlySet<string>;
}

/**
 * Verifies bearer JWTs against the configured issuers with jose, and maps claims to an
 * {@link Identity}. Verified tokens are cached until they expire (bounded), so the hot path pays
 * for one signature check per token, not per request; the audience is checked per connection on
 * every request (a Set lookup).
 */
export class TokenVerifier {
  private readonly byIssuer = new Map<string, IssuerState>();
  private readonly cache = new Map<string, CachedToken>();
  private readonly cacheSize: number;
  private readonly connectionAudiences = new Map<string, ReadonlySet<string>>();

  constructor(private readonly opts: TokenVerifierOptions) {
    this.cacheSize = opts.cacheSize ?? 10_000;
    const connectionAudienceList: string[] = [];
    for (const [name, auds] of Object.entries(opts.connectionAudiences ?? {})) {
      this.connectionAudiences.set(name, new Set(auds));
      connectionAudienceList.push(...auds);
    }
    for (const cfg of opts.issuers) {
      const fetchJson = opts.fetchJson?.(cfg) ?? httpsJsonFetcher({ caPem: cfg.caPem });
      this.byIssuer.set(cfg.issuer, {
        cfg,
        getKey: keyResolver(cfg, fetchJson, opts.now),
        anyAudience: [...new Set([...cfg.audiences, ...connectionAudienceList])],
        defaultAudiences: new Set(cfg.audiences),
      });
    }
  }

  /** Verifies a token (without the "Bearer " prefix) against its issuer's audiences and returns the identity. */
  async verify(token: string, now: number = Date.now()): Promise<Identity> {
    return (await this.authenticate(token, undefined, now)).identity;
  }

  /**
   * Verifies a token for use on `connection` (whose configured audiences, if any, replace the
   * issuer's). Throws {@link TokenError}; code `unavailable` means the issuer's keys could not be
   * fetched (503, not 401).
   */
  async authenticate(token: string, connection: string | undefined, now: number = Date.now()): Promise<VerifiedToken> {
    let entry = this.cache.get(token);
    if (entry !== undefined && entry.expMs + this.opts.clockSkewMs <= now) {
      this.cache.delete(token);
      entry = undefined;
    }
    entry ??= await this.verifyUncached(token, now);
    this.checkAudience(entry, connection);
    const first = !entry.announced;
    entry.announced = true;
    return { identity: entry.identity, claimsJson: entry.claimsJson, expiresAtMs: entry.expMs, first };
  }

  private checkAudience(entry: CachedToken, connection: string | undefined): void {
    const accepted =
      (connection !== undefined ? this.connectionAudiences.get(connection) : undefined) ?? this.byIssuer.get(entry.identity.issuer)?.defaultAudiences;
    if (accepted !== undefined) for (const a of entry.audiences) if (accepted.has(a)) return;
    throw new TokenError(
      TokenErrorCode.BadAudience,
      connection !== undefined ? `the token audience is not accepted on connection ${connection}` : 'the token audience is not accepted here',
    );
  }

  private async verifyUncached(token: string, now: number): Promise<CachedToken> {
    if (token.length === 0) throw new TokenError(TokenErrorCode.Missing, 'no bearer token');
    if (token.length > MAX_TOKEN_BYTES || !JWT_SHAPE.test(token)) {
      throw new TokenError(TokenErrorCode.Malformed, 'the bearer token is not a compact JWT');
    }
    const iss = unverifiedIssuer(token);
    const trusted = iss === undefined ? undefined : this.byIssuer.get(iss);
    if (trusted === undefined) throw new TokenError(TokenErrorCode.UnknownIssuer, 'the token issuer is not trusted');
    const { cfg } = trusted;

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, trusted.getKey, {
        issuer: cfg.issuer,
        audience: trusted.anyAudience,
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
    for (const [claim, accepted] of Object.entries(cfg.requiredClaims ?? {})) {
      if (!claimMatches(payload[claim], accepted)) {
        // The claim's value is not echoed: the message goes to the client and the audit log.
        throw new TokenError(TokenErrorCode.RequiredClaim, `the token claim "${claim}" is missing or has a value this gateway does not accept`);
      }
    }
    const identity = toIdentity(cfg, payload, token);
    checkIdentity(identity, cfg);
    const entry: CachedToken = {
      identity,
      claimsJson: JSON.stringify(payload),
      expMs: exp * 1000,
      audiences: claimStrings(payload.aud),
      announced: false,
    };
    if (this.cache.size >= this.cacheSize) {
      const oldest = this.cache.keys().next();
      if (oldest.done !== true) this.cache.delete(oldest.value);
    }
    this.cache.set(token, entry);
    return entry;
  }
}

/**
 * The `iss` of a token before verification (untrusted: for choosing the issuer, and for the
 * rejection event, truncated). Undefined when the token cannot be decoded.
 */
export function unverifiedIssuer(token: string): string | undefined {
  try {
    const header = decodeProtectedHeader(token);
    if (typeof header.alg !== 'string') return undefined;
    const dot = token.indexOf('.');
    const payload = JSON.parse(Buffer.from(token.slice(dot + 1, token.indexOf('.', dot + 1)), 'base64url').toString('utf8')) as JWTPayload;
    return typeof payload.iss === 'string' ? payload.iss : undefined;
  } catch {
    throw new TokenError(TokenErrorCode.Malformed, 'the bearer token is not a decodable JWT');
  }
}

/** A SHA-256 prefix identifying a token in events and caches without revealing it. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 32);
}

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** The mapped names end up in impersonation headers and logs: no empty subject, no control characters. */
function checkIdentity(identity: Identity, cfg: TrustedIssuer): void {
  if (identity.subject === '')
    throw new TokenError(TokenErrorCode.BadClaims, `the token has no subject claim "${cfg.subjectClaim ?? 'sub'}" (a string or a number)`);
  const fields = [identity.subject, identity.clientId, identity.tokenId, ...identity.groups];
  for (const f of fields)
    if (CONTROL_CHARS.test(f)) throw new TokenError(TokenErrorCode.BadClaims, 'the token has control characters in its subject, groups, client id or jti');
}

function claimMatches(value: unknown, accepted: readonly string[]): boolean {
  if (typeof value === 'string') return accepted.includes(value);
  if (typeof value === 'number' || typeof value === 'boolean') return accepted.includes(String(value));
  if (Array.isArray(value)) return value.some((v) => typeof v === 'string' && accepted.includes(v));
  return false;
}

function keyResolver(cfg: TrustedIssuer, fetchJson: JsonFetcher, now: (() => number) | undefined): JWTVerifyGetKey {
  const k = cfg.keys;
  if ('jwks' in k) return createLocalJWKSet(k.jwks);
  return new JwksCache({
    source: 'jwksUri' in k ? { jwksUri: new URL(k.jwksUri) } : { discoveryOf: cfg.issuer },
    fetchJson,
    cacheLifetimeMs: cfg.jwksCacheLifetimeMs ?? DEFAULT_JWKS_LIFETIME_MS,
    refetchCooldownMs: cfg.jwksRefetchCooldownMs ?? DEFAULT_JWKS_COOLDOWN_MS,
    ...(now !== undefined ? { now } : {}),
  }).getKey;
}

/** Maps jose's errors to ours; fetch failures arrive already as `unavailable` from {@link JwksCache}. */
function mapJoseError(cause: unknown): TokenError {
  if (cause instanceof TokenError) return cause;
  if (cause instanceof errors.JWTExpired) return new TokenError(TokenErrorCode.Expired, 'the token has expired', { cause });
  if (cause instanceof errors.JWTClaimValidationFailed) {
    if (cause.claim === 'nbf') return new TokenError(TokenErrorCode.NotYetValid, 'the token is not valid yet (nbf)', { cause });
    if (cause.claim === 'aud') return new TokenError(TokenErrorCode.BadAudience, 'the token audience is not accepted here', { cause });
    if (cause.claim === 'iat' && cause.reason === 'check_failed')
      return new TokenError(TokenErrorCode.NotYetValid, 'the token was issued in the future (iat)', { cause });
    return new TokenError(TokenErrorCode.BadClaims, `the token claim "${cause.claim}" is invalid (${cause.reason})`, { cause });
  }
  if (cause instanceof errors.JWKSNoMatchingKey) return new TokenError(TokenErrorCode.UnknownKey, 'no key of the issuer matches the token', { cause });
  if (cause instanceof errors.JOSEAlgNotAllowed) return new TokenError(TokenErrorCode.BadSignature, 'the token algorithm is not allowed', { cause });
  if (cause instanceof errors.JWSSignatureVerificationFailed) return new TokenError(TokenErrorCode.BadSignature, 'the token signature is invalid', { cause });
  if (cause instanceof errors.JWSInvalid || cause instanceof errors.JWTInvalid)
    return new TokenError(TokenErrorCode.Malformed, 'the token is malformed', { cause });
  return new TokenError(TokenErrorCode.BadSignature, 'the token could not be verified', { cause });
}

function claimStrings(value: unknown): string[] {
  if (typeof value === 'string') return value.split(/[\s]+/).filter((s) => s.length > 0);
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

/**
 * A claim that names someone: a string, or a number as written. Anything else names no one (an
 * object would read "[object Object]", a list its items joined): the subject check refuses it.
 */
function claimName(value: unknown): string {
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '';
}

function toIdentity(cfg: TrustedIssuer, p: JWTPayload, token: string): Identity {
  const subject = claimName(p[cfg.subjectClaim ?? 'sub']);
  const clientId = p[cfg.clientIdClaim ?? 'client_id'] ?? p['azp'];
  return create(IdentitySchema, {
    subject,
    groups: claimStrings(p[cfg.groupsClaim ?? 'groups']),
    clientId: typeof clientId === 'string' ? clientId : '',
    issuer: cfg.issuer,
    scopes: claimStrings(p[cfg.scopeClaim ?? 'scope'] ?? p['scp']),
    audiences: claimStrings(p.aud),
    tokenId: typeof p.jti === 'string' ? p.jti : tokenHash(token),
    tokenLifetimeSeconds: Math.max(0, (p.exp ?? 0) - (p.iat ?? 0)),
  });
}
