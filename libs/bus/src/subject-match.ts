/**
 * NATS subject matching for the in-process bus: tokens separated by `.`, `*` matches exactly one
 * token, `>` (last token only) matches one or more.
 */
export function subjectMatches(pattern: string, subject: string): boolean {
  if (pattern === subject) return true;
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === '>') return i === p.length - 1 && s.length > i;
    if (i >= s.length) return false;
    if (token !== '*' && token !== s[i]) return false;
  }
  return p.length === s.length;
}

/** Whether a subject a publisher uses is well formed (non-empty tokens, no wildcards). */
export function isPublishSubject(subject: string): boolean {
  return subject.length > 0 && subject.split('.').every((t) => t.length > 0 && t !== '*' && t !== '>' && !/\s/.test(t));
}
