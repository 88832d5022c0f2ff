/**
 * The one duration grammar, shared by the configuration and the policy language (copies drifted:
 * the config took `500ms` but not `1h30m`, the policy the other way round).
 *
 * A duration is one or more parts `<whole number><unit>`, units `d` `h` `m` `s` `ms`, each at most
 * once and largest first: `500ms`, `30s`, `5m`, `1h30m`, `2d12h`, `1m30s500ms`. Zero is written
 * with a unit (`0s`). White space around it is ignored; signs, fractions, spaces inside and other
 * units are not durations. The value must be a safe integer of milliseconds. Whether zero, a
 * sub-second part or a long value is acceptable is the caller's {@link DurationLimits}.
 */

/** Milliseconds per unit, largest first (the order parts must be written in). */
export const DurationUnit = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 } as const;
export type DurationUnit = keyof typeof DurationUnit;

/**
 * The grammar as a regular expression (for JSON Schema `pattern`); capture groups d, h, m, s, ms.
 * It does not check the value's size: {@link parseDurationMs} does.
 */
export const DURATION_PATTERN = /^\s*(?=\d)(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?\s*$/;

/** Examples for messages and help texts. */
export const DURATION_EXAMPLES = '500ms, 30s, 5m, 1h30m or 30d';
/** Examples where only whole seconds are accepted (the policy language). */
const WHOLE_SECOND_EXAMPLES = '30s, 15m, 1h or 1h30m';

/** The rule, in words, for messages. */
const GRAMMAR_IN_WORDS = 'whole numbers with units d, h, m, s or ms, largest first';

/** What a caller accepts beyond the grammar. */
export interface DurationLimits {
  /** Shortest accepted, in ms (default 0). */
  readonly minMs?: number;
  /** Longest accepted, in ms (default: the largest safe integer). */
  readonly maxMs?: number;
  /** Only whole seconds (the policy language counts in seconds). */
  readonly wholeSeconds?: boolean;
}

/** Why a text is not an acceptable duration. */
export const DurationErrorCode = {
  Malformed: 'malformed',
  TooShort: 'too_short',
  TooLong: 'too_long',
  NotWholeSeconds: 'not_whole_seconds',
} as const;
export type DurationErrorCode = (typeof DurationErrorCode)[keyof typeof DurationErrorCode];

/** A text that is not a duration, or not one the caller accepts. */
export class DurationError extends Error {
  override readonly name = 'DurationError';
  constructor(
    readonly code: DurationErrorCode,
    /** The text as given. */
    readonly value: string,
    /** What is allowed, without the value: `expected a duration such as …` (for messages that add the value themselves). */
    readonly expected: string,
  ) {
    super(`${expected}, got ${JSON.stringify(value)}`);
  }
}

/**
 * Parses a duration into milliseconds. Throws a {@link DurationError} naming the value and what
 * is allowed when it is not in the grammar or outside `limits`.
 */
export function parseDurationMs(text: string, limits: DurationLimits = {}): number {
  const result = checkDuration(text, limits);
  if (result instanceof DurationError) throw result;
  return result;
}

/** {@link parseDurationMs} without the throw: the milliseconds, or the error. */
export function checkDuration(text: string, limits: DurationLimits = {}): number | DurationError {
  const ms = grammarMs(text);
  if (ms === undefined) {
    const examples = limits.wholeSeconds === true ? WHOLE_SECOND_EXAMPLES : DURATION_EXAMPLES;
    return new DurationError(DurationErrorCode.Malformed, text, `expected a duration such as ${examples} (${GRAMMAR_IN_WORDS})`);
  }
  const min = limits.minMs ?? 0;
  const max = Math.min(limits.maxMs ?? Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const bounded = limits.minMs !== undefined && limits.maxMs !== undefined;
  if (ms < min) {
    return new DurationError(
      DurationErrorCode.TooShort,
      text,
      `expected a duration ${bounded ? `between ${formatDuration(min)} and ${formatDuration(max)}` : `of at least ${formatDuration(min)}`}`,
    );
  }
  // Past the largest safe integer the sum is no longer exact: too long whatever the caller allows.
  if (ms > max || !Number.isSafeInteger(ms)) {
    return new DurationError(
      DurationErrorCode.TooLong,
      text,
      `expected a duration ${bounded ? `between ${formatDuration(min)} and ${formatDuration(max)}` : `of at most ${formatDuration(max)}`}`,
    );
  }
  if (limits.wholeSeconds === true && ms % 1000 !== 0) {
    return new DurationError(DurationErrorCode.NotWholeSeconds, text, 'expected a whole number of seconds (no ms part)');
  }
  return ms;
}

/** Writes milliseconds in the grammar, largest units first (`90000` → `1m30s`, `0` → `0s`). */
export function formatDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`formatDuration: ${ms} is not a whole, non-negative number of milliseconds`);
  if (ms === 0) return '0s';
  let rest = ms;
  let text = '';
  for (const [unit, size] of Object.entries(DurationUnit)) {
    const n = Math.floor(rest / size);
    if (n > 0) text += `${n}${unit}`;
    rest -= n * size;
  }
  return text;
}

function grammarMs(text: string): number | undefined {
  const m = DURATION_PATTERN.exec(text);
  if (m === null) return undefined;
  let ms = 0;
  const sizes = Object.values(DurationUnit);
  for (let i = 0; i < sizes.length; i++) {
    const digits = m[i + 1];
    if (digits !== undefined) ms += Number(digits) * sizes[i]!;
  }
  return ms;
}
