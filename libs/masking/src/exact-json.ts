/**
 * JSON numbers kept exactly as the upstream wrote them. `JSON.parse` reads every number into a
 * double, and `JSON.stringify` prints the double back: 12345678901234567890 comes out as
 * 12345678901234567000, `1.0` as `1`, `1e3` as `1000`. A masked body must keep every number it
 * does not mask, so the tokenizer below (Node 20's JSON.parse gives a reviver no source text)
 * turns each number whose text a double would not print back into a placeholder string holding
 * that text; the masker treats a placeholder as a number ({@link isExactNumber}: masked to 0) and
 * {@link stringifyJson} writes the text back. No reviver: the parse stays native. Integers of up
 * to 15 digits — nearly every number in a Kubernetes object — round-trip through a double
 * unchanged and stay plain numbers.
 */
import { randomBytes } from 'node:crypto';

// A NUL and a random tag: a string in a body equal to a placeholder would have to guess 64 random bits.
const PLACEHOLDER = `\u0000exact-${randomBytes(8).toString('hex')}:`;
const PLACEHOLDER_JSON = JSON.stringify(PLACEHOLDER).slice(1, -1);
const PLACEHOLDER_OUT = new RegExp(`"${PLACEHOLDER_JSON.replace(/\\/g, '\\\\')}(-?[0-9][0-9.eE+-]*)"`, 'g');

/** True when `s` is a placeholder for a number kept as written (masked like a number, to 0). */
export function isExactNumber(s: string): boolean {
  return s.charCodeAt(0) === 0 && s.startsWith(PLACEHOLDER);
}

/** True when a double prints `token` back unchanged (so JSON.parse + JSON.stringify keep it). */
export function numberRoundTrips(token: string): boolean {
  return String(Number(token)) === token;
}

/** Whether the character at `at` is escaped: an odd run of backslashes before it. */
function escapedAt(text: string, at: number): boolean {
  let k = at - 1;
  while (k >= 0 && text.charCodeAt(k) === 0x5c) k--;
  return (at - 1 - k) % 2 === 1;
}

const JSON_NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

function isNumberChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45;
}

/**
 * Parses JSON text; numbers a double would print differently become placeholder strings.
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
      // Skip the string with native search: its closing quote is the first one not escaped.
      let q = text.indexOf('"', i + 1);
      while (q !== -1 && escapedAt(text, q)) q = text.indexOf('"', q + 1);
      i = q === -1 ? n : q + 1;
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
  return { value: JSON.parse(out.join('')) as unknown, exact: true };
}

/** JSON text of `value`; placeholders are written as their numbers' source text when `exact`. */
export function stringifyJson(value: unknown, exact: boolean): string {
  const text = JSON.stringify(value) ?? 'null';
  return exact ? text.replace(PLACEHOLDER_OUT, '$1') : text;
}
