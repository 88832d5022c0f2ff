/**
 * The table the one subject matcher (`subjectMatches`, `@portcullis/bus/pure`) is held to: the
 * unit test checks every row, and the NATS test checks that a real nats-server routes the
 * well-formed rows the same way. It covers what the two former copies disagreed on (`>` before
 * the last token) and the rest of NATS's rules.
 */

/** One row: does a message on `subject` reach a subscription on `pattern`? */
export interface SubjectCase {
  readonly pattern: string;
  readonly subject: string;
  readonly matches: boolean;
  /** Both sides are valid NATS subjects (pattern for a subscription, subject for a publish). */
  readonly wellFormed: boolean;
  readonly why: string;
}

const row = (pattern: string, subject: string, matches: boolean, why: string, wellFormed = true): SubjectCase => ({
  pattern,
  subject,
  matches,
  wellFormed,
  why,
});

export const SUBJECT_CASES: readonly SubjectCase[] = [
  // literals
  row('a', 'a', true, 'a literal matches itself'),
  row('a.b.c', 'a.b.c', true, 'a literal matches itself'),
  row('a.b', 'a.c', false, 'a different last token'),
  row('a.b', 'a.b.c', false, 'a literal does not match a longer subject'),
  row('a.b.c', 'a.b', false, 'a literal does not match a shorter subject'),
  row('audit', 'auditx', false, 'tokens compare whole, not as prefixes'),
  row('A', 'a', false, 'tokens are case-sensitive'),
  // `*`: exactly one token
  row('*', 'a', true, '* matches one token'),
  row('*', 'a.b', false, '* does not match two tokens'),
  row('a.*', 'a.b', true, '* matches one token'),
  row('a.*', 'a', false, '* needs a token to match'),
  row('a.*', 'a.b.c', false, '* does not cross a dot'),
  row('a.*.c', 'a.b.c', true, '* in the middle'),
  row('a.*.c', 'a.b.x.c', false, '* in the middle matches one token only'),
  row('*.*', 'a.b', true, 'two stars, two tokens'),
  row('audit.*.request.completed', 'audit.prod.request.completed', true, 'a filter the audit tools use'),
  row('audit.*.completed', 'audit.prod.request.completed', false, '* matches one token, not two'),
  // `>`: one or more trailing tokens
  row('>', 'a', true, '> matches one token'),
  row('>', 'a.b.c', true, '> matches many tokens'),
  row('a.>', 'a.b', true, '> matches one trailing token'),
  row('a.>', 'a.b.c.d', true, '> matches many trailing tokens'),
  row('a.>', 'a', false, '> needs at least one token'),
  row('a.>', 'b.c', false, 'the tokens before > must match'),
  row('a.*.>', 'a.b.c', true, '* then >'),
  row('a.*.>', 'a.b', false, '* then > needs three tokens at least'),
  row('audit.*.approval.>', 'audit.prod.approval.requested', true, 'the approval rebuild filter'),
  row('audit.*.approval.>', 'audit.prod.request.received', false, 'the approval rebuild filter skips requests'),
  // what the copies disagreed on: `>` is only a wildcard as the last token
  row('a.>.c', 'a.b.c', false, '> before the last token is malformed and matches nothing', false),
  row('a.>.c', 'a.b', false, '> before the last token is malformed and matches nothing', false),
  row('>.a', 'x.a', false, '> before the last token is malformed and matches nothing', false),
  // no partial-token wildcards: `a*` and `a>` are literal tokens
  row('a*', 'ab', false, 'a partial-token * is not a wildcard'),
  row('a*', 'a*', true, 'a partial-token * is a literal character'),
  row('a.b*', 'a.bc', false, 'a partial-token * is not a wildcard'),
  row('a.b>', 'a.b.c', false, 'a partial-token > is not a wildcard'),
  row('a.b>', 'a.b>', true, 'a partial-token > is a literal character'),
  row('*a', 'ba', false, 'a partial-token * is not a wildcard'),
  // empty tokens: malformed on either side, never a match
  row('', '', false, 'the empty subject is malformed', false),
  row('a', '', false, 'the empty subject is malformed', false),
  row('', 'a', false, 'the empty pattern is malformed', false),
  row('a..b', 'a..b', false, 'an empty token is malformed, even when both are equal', false),
  row('a.*.b', 'a..b', false, '* does not match an empty token', false),
  row('a.>', 'a.', false, '> does not match an empty token', false),
  row('a.>', 'a.b.', false, '> does not take a trailing empty token', false),
  row('a.>', 'a..b', false, '> does not take an empty token', false),
  row('*', '.', false, 'a lone dot is two empty tokens', false),
  row('a.', 'a.', false, 'a trailing dot is an empty token', false),
  row('.a', '.a', false, 'a leading dot is an empty token', false),
  row('>', '', false, '> does not match the empty subject', false),
  // a subject with wildcard tokens is not a publish subject
  row('a.*', 'a.*', false, 'a wildcard in the subject is malformed', false),
  row('a.>', 'a.>', false, 'a wildcard in the subject is malformed', false),
  row('>', 'a.*', false, 'a wildcard in the subject is malformed', false),
  row('a.*', 'a.>', false, 'a wildcard in the subject is malformed', false),
];
