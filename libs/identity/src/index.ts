/** Machine identity: bearer JWT verification with jose, and the development issuer. */
export { TokenVerifier } from './token-verifier.js';
export type { TrustedIssuer, TokenVerifierOptions } from './token-verifier.js';
export { DevIssuer, DevIssuerError } from './dev-issuer.js';
export type { DevIssuerClient, DevIssuerOptions, IssuedToken } from './dev-issuer.js';
export { TokenError, TokenErrorCode } from './identity-error.js';
