/**
 * The one duration grammar (`@portcullis/common`), shared by the configuration and the policy
 * language, checked against a table and against the two grammars it replaced: everything either
 * of them accepted is still accepted with the same value.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { checkDuration, DurationError, formatDuration, parseDurationMs, type DurationErrorCode, type DurationLimits } from '@portcullis/common';
import { parseDuration } from '@portcullis/config';
import { parseDurationSeconds } from '@portcullis/policy-engine';

/** The config's former grammar (libs/config): one number and one unit, white space trimmed, zero allowed. */
function formerConfigMs(text: string): number | undefined {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
}

/** The policy's former grammar (libs/policy-engine): d, h, m, s in that order, no ms, more than zero. */
function formerPolicySeconds(text: string): number | undefined {
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (!m || text === '') return undefined;
  const [, d, h, min, s] = m;
  const seconds = Number(d ?? 0) * 86_400 + Number(h ?? 0) * 3_600 + Number(min ?? 0) * 60 + Number(s ?? 0);
  return seconds > 0 && Number.isSafeInteger(seconds) ? seconds : undefined;
}

describe('duration grammar', () => {
  test('table: what each text means (ms), or why it is refused', () => {
    const rows: [text: string, expected: number | DurationErrorCode, limits?: DurationLimits][] = [
      // one part, every unit (what the config took)
      ['500ms', 500],
      ['30s', 30_000],
      ['5m', 300_000],
      ['1h', 3_600_000],
      ['30d', 30 * 86_400_000],
      // compound, largest first (what the policy took; now the config too)
      ['1h30m', 5_400_000],
      ['2d12h', 216_000_000],
      ['1m30s500ms', 90_500],
      ['1d1h1m1s1ms', 90_061_001],
      // zero is a duration (written with a unit); the caller decides whether it may be zero
      ['0s', 0],
      ['0ms', 0],
      ['0s', 'too_short', { minMs: 1000 }],
      // white space around it (the config trimmed), leading zeros
      [' 30s ', 30_000],
      ['\t5m\n', 300_000],
      ['05m', 300_000],
      // not durations
      ['', 'malformed'],
      ['   ', 'malformed'],
      ['30', 'malformed'],
      ['0', 'malformed'],
      ['m', 'malformed'],
      ['ms', 'malformed'],
      ['1.5h', 'malformed'],
      ['-1s', 'malformed'],
      ['+1s', 'malformed'],
      ['1h 30m', 'malformed'],
      ['1m1h', 'malformed'],
      ['1h1h', 'malformed'],
      ['1s1m', 'malformed'],
      ['30S', 'malformed'],
      ['1w', 'malformed'],
      ['1y', 'malformed'],
      ['5 minutes', 'malformed'],
      ['PT30S', 'malformed'],
      ['30sec', 'malformed'],
      // limits: range, whole seconds, the largest exact value
      ['50ms', 'too_short', { minMs: 100, maxMs: 300_000 }],
      ['100ms', 100, { minMs: 100, maxMs: 300_000 }],
      ['5m', 300_000, { minMs: 100, maxMs: 300_000 }],
      ['5m1ms', 'too_long', { minMs: 100, maxMs: 300_000 }],
      ['1500ms', 'not_whole_seconds', { minMs: 1000, wholeSeconds: true }],
      ['2000ms', 2000, { minMs: 1000, wholeSeconds: true }],
      ['104249991d', 104_249_991 * 86_400_000],
      ['104249992d', 'too_long'],
      ['99999999999999999999999d', 'too_long'],
    ];
    const wrong: string[] = [];
    for (const [text, expected, limits] of rows) {
      const got = checkDuration(text, limits);
      const gotWhat = got instanceof DurationError ? got.code : got;
      if (gotWhat !== expected) wrong.push(`${JSON.stringify(text)} ${JSON.stringify(limits ?? {})}: expected ${expected}, got ${gotWhat}`);
    }
    assert.deepEqual(wrong, []);
  });

  test('errors name the value and what is allowed', () => {
    const message = (text: string, limits?: DurationLimits): string => {
      const r = checkDuration(text, limits);
      assert.ok(r instanceof DurationError, text);
      return r.message;
    };
    assert.equal(
      message('5 minutes'),
      'expected a duration such as 500ms, 30s, 5m, 1h30m or 30d (whole numbers with units d, h, m, s or ms, largest first), got "5 minutes"',
    );
    assert.equal(message('0s', { minMs: 1000, wholeSeconds: true }), 'expected a duration of at least 1s, got "0s"');
    assert.equal(message('1h', { minMs: 1, maxMs: 300_000 }), 'expected a duration between 1ms and 5m, got "1h"');
    assert.equal(message('10m', { maxMs: 300_000 }), 'expected a duration of at most 5m, got "10m"');
    assert.equal(message('1500ms', { wholeSeconds: true }), 'expected a whole number of seconds (no ms part), got "1500ms"');
    assert.throws(
      () => parseDurationMs('soon'),
      (e: unknown) => e instanceof DurationError && e.code === 'malformed' && e.value === 'soon' && /such as/.test(e.expected),
    );
  });

  test('formatDuration writes what parseDurationMs reads', () => {
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(90_000), '1m30s');
    assert.equal(formatDuration(86_400_000 + 1), '1d1ms');
    fc.assert(fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (ms) => parseDurationMs(formatDuration(ms)) === ms));
  });

  test('everything the config accepted before is accepted with the same value', () => {
    const unit = fc.constantFrom('ms', 's', 'm', 'h', 'd');
    const space = fc.constantFrom('', ' ', '\t', '  ');
    const text = fc.tuple(space, fc.integer({ min: 0, max: 99_999 }), unit, space).map(([a, n, u, b]) => `${a}${n}${u}${b}`);
    fc.assert(
      fc.property(text, (t) => {
        const before = formerConfigMs(t);
        assert.notEqual(before, undefined, t);
        assert.equal(parseDuration(t), before, t);
      }),
      { numRuns: 2000 },
    );
  });

  test('everything the policy accepted before is accepted with the same value', () => {
    const part = (unit: string) =>
      fc.option(
        fc.integer({ min: 0, max: 9999 }).map((n) => `${n}${unit}`),
        { nil: '' },
      );
    const text = fc.tuple(part('d'), part('h'), part('m'), part('s')).map((parts) => parts.join(''));
    fc.assert(
      fc.property(text, (t) => {
        assert.equal(parseDurationSeconds(t), formerPolicySeconds(t), t);
      }),
      { numRuns: 2000 },
    );
  });

  test('what one side refused and the other accepted: the union stays accepted, or fails saying why', () => {
    // config-only forms a policy now takes when they are whole seconds
    assert.equal(parseDurationSeconds('2000ms'), 2);
    assert.equal(parseDurationSeconds(' 30s '), 30);
    // policy-only forms the config now takes
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('2d12h'), 216_000_000);
    // accepted by the config, refused by the policy, with the reason
    assert.equal(checkDuration('500ms', { minMs: 1000, wholeSeconds: true }) instanceof DurationError, true);
    assert.equal(parseDurationSeconds('0s'), undefined);
    assert.equal(parseDuration('0s'), 0);
  });
});
