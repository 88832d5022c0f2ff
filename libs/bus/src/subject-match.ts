/**
 * NATS subject matching, the one copy (the in-process bus, the in-process and SQLite event logs):
 * subjects are tokens separated by `.`; in a pattern `*` matches exactly one token and `>`, as the
 * last token only, one or more. A wildcard is a whole token: `a*` is the literal token `a*`.
 * Malformed input never matches: an empty token (`a..b`, `.a`, `a.`, ``) on either side, `>`
 * before the last token of a pattern, or a wildcard token in the subject.
 */

const DOT = 46; // '.'
const STAR = 42; // '*'
const GT = 62; // '>'

/** Whether `subject` is one of the subjects `pattern` (with `*` and `>` wildcards) stands for. */
export function subjectMatches(pattern: string, subject: string): boolean {
  // A token walk over both strings: this runs for every subscriber on every in-process publish.
  let p = 0;
  let s = 0;
  for (;;) {
    const pEnd = tokenEnd(pattern, p);
    const sEnd = tokenEnd(subject, s);
    if (pEnd === p || sEnd === s || isWildcard(subject, s, sEnd)) return false;
    if (pEnd - p === 1 && pattern.charCodeAt(p) === GT) return pEnd === pattern.length && restIsWellFormed(subject, sEnd);
    if (!(pEnd - p === 1 && pattern.charCodeAt(p) === STAR) && !sameToken(pattern, p, pEnd, subject, s, sEnd)) return false;
    const pDone = pEnd === pattern.length;
    const sDone = sEnd === subject.length;
    if (pDone || sDone) return pDone && sDone;
    p = pEnd + 1;
    s = sEnd + 1;
  }
}

/** Whether a subject a publisher uses is well formed (non-empty tokens, no wildcards, no white space). */
export function isPublishSubject(subject: string): boolean {
  return subject.length > 0 && subject.split('.').every((t) => t.length > 0 && t !== '*' && t !== '>' && !/\s/.test(t));
}

function tokenEnd(text: string, from: number): number {
  const dot = text.indexOf('.', from);
  return dot === -1 ? text.length : dot;
}

function isWildcard(text: string, start: number, end: number): boolean {
  if (end - start !== 1) return false;
  const c = text.charCodeAt(start);
  return c === STAR || c === GT;
}

function sameToken(a: string, aStart: number, aEnd: number, b: string, bStart: number, bEnd: number): boolean {
  if (aEnd - aStart !== bEnd - bStart) return false;
  for (let i = 0; i < aEnd - aStart; i++) if (a.charCodeAt(aStart + i) !== b.charCodeAt(bStart + i)) return false;
  return true;
}

/** After the token ending at `end`, the rest of `subject` is well-formed tokens (what `>` takes). */
function restIsWellFormed(subject: string, end: number): boolean {
  let start = end;
  while (start < subject.length) {
    if (subject.charCodeAt(start) !== DOT) return false;
    const next = tokenEnd(subject, start + 1);
    if (next === start + 1 || isWildcard(subject, start + 1, next)) return false;
    start = next;
  }
  return true;
}
