/** Why a bearer token was refused. `unavailable` means the keys could not be fetched (503, not 401). */
export const TokenErrorCode = {
  Missing: 'missing',
  Malformed: 'malformed',
  UnknownIssuer: 'unknown_issuer',
  BadSignature: 'bad_signature',
  Expired: 'expired',
  NotYetValid: 'not_yet_valid',
  BadAudience: 'bad_audience',
  BadClaims: 'bad_claims',
  LifetimeTooLong: 'lifetime_too_long',
  UnknownKey: 'unknown_key',
  RequiredClaim: 'required_claim',
  Unavailable: 'unavailable',
} as const;
export type TokenErrorCode = (typeof TokenErrorCode)[keyof typeof TokenErrorCode];

/** A refused token. The message is safe to show to the client: it never contains the token. */
export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(
    readonly code: TokenErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
