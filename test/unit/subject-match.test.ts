import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isPublishSubject, subjectMatches } from '@portcullis/bus/pure';
import { SUBJECT_CASES } from '../support/subject-match-cases.js';

test('subjectMatches: NATS semantics, one row at a time', () => {
  const wrong = SUBJECT_CASES.filter((c) => subjectMatches(c.pattern, c.subject) !== c.matches).map(
    (c) => `${JSON.stringify(c.pattern)} ~ ${JSON.stringify(c.subject)}: expected ${c.matches} (${c.why})`,
  );
  assert.deepEqual(wrong, []);
});

test('subjectMatches: a subject that is not a publish subject matches no pattern', () => {
  for (const c of SUBJECT_CASES) {
    if (!isPublishSubject(c.subject)) assert.equal(subjectMatches('>', c.subject), false, JSON.stringify(c.subject));
  }
});
