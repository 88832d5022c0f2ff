import type { Identity } from '@portcullis/contracts';
import type { PolicyIdentity } from './compiled-policy.js';

/**
 * The identity a policy sees, with the token's claims (the `claims_json` of a decision request)
 * parsed lazily: only a rule with `match.claims` pays for the parse. Undecodable or non-object
 * JSON gives no claims, so a `claims` match fails closed.
 */
export function withClaims(identity: Identity, claimsJson: string): PolicyIdentity {
  if (claimsJson === '') return identity;
  let parsed: Readonly<Record<string, unknown>> | undefined;
  return Object.defineProperty({ ...identity }, 'claims', {
    enumerable: true,
    get(): Readonly<Record<string, unknown>> {
      if (parsed === undefined) {
        try {
          const value: unknown = JSON.parse(claimsJson);
          parsed = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
        } catch {
          parsed = {};
        }
      }
      return parsed;
    },
  });
}
