/** Durations in policy documents: `30s`, `15m`, `1h`, `1h30m`, `2d` (units d, h, m, s, in that order). */
export const DURATION_PATTERN = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/** Parses a duration into whole seconds; `undefined` when malformed or zero. */
export function parseDurationSeconds(text: string): number | undefined {
  const m = DURATION_PATTERN.exec(text);
  if (!m || text === '') return undefined;
  const [, d, h, min, s] = m;
  const seconds = Number(d ?? 0) * 86_400 + Number(h ?? 0) * 3_600 + Number(min ?? 0) * 60 + Number(s ?? 0);
  return seconds > 0 && Number.isSafeInteger(seconds) ? seconds : undefined;
}
