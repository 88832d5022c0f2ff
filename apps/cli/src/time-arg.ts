import { parseDuration } from '@portcullis/config';
import { CliError, ExitCode } from './cli-error.js';

/** What a time flag accepts, for option descriptions (the same words as the errors). */
export const TIME_FORMS =
  'a duration back from now (10m, 2h, 7d, 1h30m), an ISO 8601 date or time (2026-06-01, 2026-06-01T12:00:00Z, 2026-06-01T14:00:00+02:00; no offset means UTC), epoch seconds (9-11 digits) or epoch milliseconds (12-16 digits), or "now"';

// One or more `<n><unit>` segments; each is handed to the config's duration parser.
const COMPOUND_DURATION = /^(?:\d+(?:ms|s|m|h|d))+$/;
const DURATION_SEGMENT = /\d+(?:ms|s|m|h|d)/g;
const DIGITS = /^\d+$/;
const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;
// Seconds since the epoch have 10 digits from 2001 to 2286; milliseconds 13. The ranges leave
// room either side and keep the two apart: 12 digits of seconds would be the year 33658.
const EPOCH_SECONDS_DIGITS = { min: 9, max: 11 } as const;
const EPOCH_MS_DIGITS = { min: 12, max: 16 } as const;

/**
 * Parses a point in time as `--since`, `--until` and `--at` accept it (see {@link TIME_FORMS});
 * epoch milliseconds. A bad value is a usage error naming the flag, the value and the accepted forms.
 */
export function parseTimeArg(text: string, flag: string, now: number = Date.now()): number {
  const value = text.trim();
  if (value.toLowerCase() === 'now') return now;
  const duration = parseCompoundDuration(value);
  if (duration !== undefined) return now - duration;
  if (DIGITS.test(value)) return epochMs(value, flag);
  const iso = ISO_8601.exec(value);
  if (iso !== null) return isoMs(iso, value, flag);
  throw new CliError(`${flag}: expected ${TIME_FORMS}, got ${JSON.stringify(text)}`, ExitCode.Usage);
}

/** `10m`, `1h30m`, `2d12h`: milliseconds, or undefined when it is no duration. */
export function parseCompoundDuration(text: string): number | undefined {
  const whole = parseDuration(text);
  if (whole !== undefined) return whole;
  if (!COMPOUND_DURATION.test(text)) return undefined;
  let total = 0;
  for (const [segment] of text.matchAll(DURATION_SEGMENT)) {
    const ms = parseDuration(segment);
    if (ms === undefined) return undefined;
    total += ms;
  }
  return total;
}

function epochMs(digits: string, flag: string): number {
  const n = digits.replace(/^0+(?=\d)/, '').length;
  if (n >= EPOCH_SECONDS_DIGITS.min && n <= EPOCH_SECONDS_DIGITS.max) return Number(digits) * 1000;
  if (n >= EPOCH_MS_DIGITS.min && n <= EPOCH_MS_DIGITS.max) return Number(digits);
  const hint = n < EPOCH_SECONDS_DIGITS.min ? ` — a duration needs a unit (${digits}s, ${digits}m, ${digits}h)` : '';
  throw new CliError(
    `${flag}: ${JSON.stringify(digits)} is neither epoch seconds (9-11 digits) nor epoch milliseconds (12-16 digits)${hint}; expected ${TIME_FORMS}`,
    ExitCode.Usage,
  );
}

function isoMs(m: RegExpExecArray, text: string, flag: string): number {
  const part = (i: number): number => Number(m[i] ?? 0);
  const [year, month, day, hour, minute, second] = [part(1), part(2), part(3), part(4), part(5), part(6)];
  const utc = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  // Date.UTC rolls 2026-02-30 over into March: a value that does not come back unchanged is no date.
  const real =
    utc.getUTCFullYear() === year &&
    utc.getUTCMonth() === month - 1 &&
    utc.getUTCDate() === day &&
    utc.getUTCHours() === hour &&
    utc.getUTCMinutes() === minute &&
    utc.getUTCSeconds() === second;
  if (!real) throw new CliError(`${flag}: ${JSON.stringify(text)} is not a real date or time; expected ${TIME_FORMS}`, ExitCode.Usage);
  const fraction = m[7] === undefined ? 0 : Math.floor(Number(`0.${m[7]}`) * 1000);
  const offset = m[8] === undefined || m[8].toUpperCase() === 'Z' ? 0 : offsetMs(m[8]);
  if (offset === undefined) throw new CliError(`${flag}: ${JSON.stringify(text)} has an invalid UTC offset; expected ${TIME_FORMS}`, ExitCode.Usage);
  return utc.getTime() + fraction - offset;
}

/** `+02:00` / `-0530` → milliseconds east of UTC; undefined when out of range. */
function offsetMs(text: string): number | undefined {
  const digits = text.slice(1).replace(':', '');
  const hours = Number(digits.slice(0, 2));
  const minutes = Number(digits.slice(2));
  if (hours > 23 || minutes > 59) return undefined;
  return (text.startsWith('-') ? -1 : 1) * (hours * 60 + minutes) * 60_000;
}
