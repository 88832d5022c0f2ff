import { checkDuration, DurationError, type DurationLimits } from '@portcullis/common/pure';

/**
 * Parses a duration of the one grammar (`@portcullis/common`: `500ms`, `30s`, `5m`, `1h30m`,
 * `30d`) into milliseconds; undefined when it is not one or is outside `limits`. For a message
 * that names the value and what is allowed, use `checkDuration` from `@portcullis/common`.
 */
export function parseDuration(text: string, limits?: DurationLimits): number | undefined {
  const result = checkDuration(text, limits);
  return result instanceof DurationError ? undefined : result;
}
