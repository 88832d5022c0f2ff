/**
 * JSON numbers kept exactly as the upstream wrote them. `JSON.parse` reads every number into a
 * double, and `JSON.stringify` prints the double back: 12345678901234567890 comes out as
 * 12345678901234567000, `1.0` as `1`, `1e3` as `1000`. A masked body must keep every number it
 * does not mask, so numbers whose text a double would not print back are read into an
 * {@link ExactNumber} (Node 20's JSON.parse gives a reviver no source text, hence the tokenizer
 * below) and written back from their text. Integers of up to 15 digits — nearly every number in a
 * Kubernetes object — round-trip through a double unchanged and stay plain numbers.
 */
import { randomBytes } from 'node:crypto';

/** A JSON number whose source text a double would not reproduce; masked like any number (to 0). */
export class ExactNumber {
  constructor(readonly text: string) {}

  /** A placeholder string that {@link stringifyJson} replaces with the number's text. */
  toJSON(): string {
    return PLACEHOLDER + this.text;
  }
}

// A NUL and a random tag: a string in a body equal to a placeholder would have to guess 64 random bits.
const PLACEHOLDER = `\u0000exact-${randomBytes(8).toString('hex')}:`;
const PLACEHOLDER_JSON = JSON.stringify(PLACEHOLDER).slice(1, -1);
const PLACEHOLDER_OUT = new RegExp(`"${PLACEHOLDER_JSON.replace(/\\/g, '\\\\')}(-?[0-9][0-9.eE+-]*)"`, 'g');

/** True when a double prints `token` back unchanged (so JSON.parse + JSON.stringify keep it). */
export function numberRoundTrips(token: string): boolean {
  return String(Number(token)) === token;
}

const JSON_NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

function isNumberChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45;
}

/**
 * Parses JSON text; numbers a double would print differently become {@link ExactNumber}s.
 * `exact` says whether any did (then write the value with {@link stringifyJson}).
 * Throws SyntaxError like JSON.parse.
 */
export function parseJsonExact(text: string): { value: unknown; exact: boolean } {
  let out: string[] | undefined;
  let copied = 0;
  const n = text.length;
  for (let i = 0; i < n;) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Skip the string: find its closing quote, not escaped.
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
      i++;
      continue;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      while (j < n && isNumberChar(text.charCodeAt(j))) j++;
      const token = text.slice(i, j);
      // An invalid token is left for JSON.parse to refuse.
      if (JSON_NUMBER.test(token) && !numberRoundTrips(token)) {
        (out ??= []).push(text.slice(copied, i), JSON.stringify(PLACEHOLDER + token));
        copied = j;
      }
      i = j;
      continue;
    }
    i++;
  }
  if (out === undefined) return { value: JSON.parse(text) as unknown, exact: false };
  out.push(text.slice(copied));
  const value = JSON.parse(out.join(''), (_key, v: unknown) =>
    typeof v === 'string' && v.startsWith(PLACEHOLDER) ? new ExactNumber(v.slice(PLACEHOLDER.length)) : v,
  ) as unknown;
  return { value, exact: true };
}

/** JSON text of `value`; {@link ExactNumber}s are written as their source text when `exact`. */
export function stringifyJson(value: unknown, exact: boolean): string {
  const text = JSON.stringify(value) ?? 'null';
  return exact ? text.replace(PLACEHOLDER_OUT, '$1') : text;
}
