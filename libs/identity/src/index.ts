/** Machine identity: bearer JWT verification with jose, and the development issuer. */
export { TokenVerifier, tokenHash, unverifiedIssuer } from './token-verifier.js';
export type { TrustedIssuer, TokenVerifierOptions, VerifiedToken } from './token-verifier.js';
export { JwksCache, httpsJsonFetcher } from './jwks-cache.js';
export type { JwksCacheOptions, JsonFetcher } from './jwks-cache.js';
export { DevIssuer, DevIssuerError } from './dev-issuer.js';
export type { DevIssuerClient, DevIssuerOptions, IssuedToken } from './dev-issuer.js';
export { DEV_ISSUER_PATH, parseDevTokenRequest } from './dev-issuer-http.js';
export type { DevTokenRequest } from './dev-issuer-http.js';
export { TokenError, TokenErrorCode } from './identity-error.js';
