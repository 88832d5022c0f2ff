/**
 * Durations in policy documents (`approval.wait`, `approval.ttl`): the one grammar of
 * `@portcullis/common` (`30s`, `15m`, `1h30m`, `2d`), counted in whole seconds, at least 1s.
 */
import { checkDuration, DURATION_PATTERN, DurationError, type DurationLimits } from '@portcullis/common/pure';

export { DURATION_PATTERN };

/** What a policy accepts of the grammar: whole seconds, more than zero. */
export const POLICY_DURATION_LIMITS: DurationLimits = { minMs: 1000, wholeSeconds: true };

/** Why `text` is not a policy duration (naming the value and what is allowed), or undefined. */
export function policyDurationError(text: string): string | undefined {
  const result = checkDuration(text, POLICY_DURATION_LIMITS);
  return result instanceof DurationError ? result.message : undefined;
}

/** Parses a policy duration into whole seconds; `undefined` when malformed, zero or not whole seconds. */
export function parseDurationSeconds(text: string): number | undefined {
  const result = checkDuration(text, POLICY_DURATION_LIMITS);
  return result instanceof DurationError ? undefined : result / 1000;
}
