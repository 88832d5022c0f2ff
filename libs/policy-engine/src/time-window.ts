/**
 * Time windows (`time: { days, hours, timezone }`) compiled once; evaluated against the clock
 * the caller injects, never `Date.now()`.
 */

/** Day names as written in policies, index = JavaScript `getDay()` (0 = Sunday). */
export const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type DayName = (typeof DAY_NAMES)[number];

/** `mon` or a range `mon-fri` (ranges may wrap, e.g. `fri-mon`). */
export const DAY_PATTERN = /^(sun|mon|tue|wed|thu|fri|sat)(?:-(sun|mon|tue|wed|thu|fri|sat))?$/;
/** `HH:MM-HH:MM`, end exclusive, `24:00` allowed as an end; start > end wraps past midnight. */
export const HOURS_PATTERN = /^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$/;

/** Validates an IANA time zone name. */
export function timeZoneError(tz: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return undefined;
  } catch {
    return `unknown time zone "${tz}" (use an IANA name such as "UTC" or "Europe/Paris")`;
  }
}

/** Parses `HH:MM-HH:MM` into minutes of the day; `undefined` when malformed or empty. */
export function parseHours(text: string): { start: number; end: number } | undefined {
  const m = HOURS_PATTERN.exec(text);
  if (!m) return undefined;
  const start = Number(m[1]) * 60 + Number(m[2]);
  const end = Number(m[3]) * 60 + Number(m[4]);
  if (end > 24 * 60 || start === end) return undefined;
  return { start, end };
}

/** Expands day entries into a 7-slot mask (index = `getDay()`). */
export function parseDays(entries: readonly string[]): boolean[] | undefined {
  const mask = [false, false, false, false, false, false, false];
  for (const e of entries) {
    const m = DAY_PATTERN.exec(e);
    if (!m) return undefined;
    const from = DAY_NAMES.indexOf(m[1] as DayName);
    const to = m[2] === undefined ? from : DAY_NAMES.indexOf(m[2] as DayName);
    for (let d = from; ; d = (d + 1) % 7) {
      mask[d] = true;
      if (d === to) break;
    }
  }
  return mask;
}

/** A compiled time window. */
export class TimeWindow {
  readonly #days: readonly boolean[] | undefined;
  readonly #hours: { start: number; end: number } | undefined;
  readonly #format: Intl.DateTimeFormat;
  // Local day/minute is a pure function of the epoch minute; memoizing it keeps Intl off the hot path.
  #cachedMinute = Number.NaN;
  #cachedDay = 0;
  #cachedMinuteOfDay = 0;

  constructor(readonly spec: { readonly days?: readonly string[]; readonly hours?: string; readonly timezone?: string }) {
    this.#days = spec.days ? parseDays(spec.days) : undefined;
    this.#hours = spec.hours ? parseHours(spec.hours) : undefined;
    this.#format = new Intl.DateTimeFormat('en-US', {
      timeZone: spec.timezone ?? 'UTC',
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
  }

  #localize(now: Date): void {
    const minute = Math.floor(now.getTime() / 60_000);
    if (minute === this.#cachedMinute) return;
    let day = 0;
    let hour = 0;
    let min = 0;
    for (const part of this.#format.formatToParts(now)) {
      if (part.type === 'weekday') day = DAY_NAMES.indexOf(part.value.toLowerCase().slice(0, 3) as DayName);
      else if (part.type === 'hour') hour = Number(part.value) % 24;
      else if (part.type === 'minute') min = Number(part.value);
    }
    this.#cachedMinute = minute;
    this.#cachedDay = day;
    this.#cachedMinuteOfDay = hour * 60 + min;
  }

  /** True when `now` falls inside the window. */
  contains(now: Date): boolean {
    this.#localize(now);
    if (this.#days && !this.#days[this.#cachedDay]) return false;
    const h = this.#hours;
    if (!h) return true;
    const t = this.#cachedMinuteOfDay;
    return h.start < h.end ? t >= h.start && t < h.end : t >= h.start || t < h.end;
  }

  /** Human-readable local time of `now` in the window's zone, for explain traces. */
  describe(now: Date): string {
    this.#localize(now);
    const t = this.#cachedMinuteOfDay;
    const hh = String(Math.floor(t / 60)).padStart(2, '0');
    const mm = String(t % 60).padStart(2, '0');
    return `${DAY_NAMES[this.#cachedDay] ?? '?'} ${hh}:${mm} ${this.spec.timezone ?? 'UTC'}`;
  }
}
