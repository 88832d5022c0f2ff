/**
 * The one parser behind `--since`, `--until` and `--at`: durations back from now, ISO 8601 and
 * epoch seconds or milliseconds, as the help says; anything else is a usage error that names the
 * flag, the value and the accepted forms.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CliError, ExitCode } from '../../../apps/cli/src/cli-error.js';
import { parseCompoundDuration, parseTimeArg } from '../../../apps/cli/src/time-arg.js';

const NOW = Date.UTC(2026, 5, 15, 12, 0, 0); // 2026-06-15T12:00:00Z
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

describe('parseTimeArg', () => {
  const accepted: [input: string, expected: number, what: string][] = [
    ['10m', NOW - 10 * MIN, 'minutes back from now'],
    ['2h', NOW - 2 * HOUR, 'hours'],
    ['7d', NOW - 7 * DAY, 'days'],
    ['90s', NOW - 90_000, 'seconds'],
    ['250ms', NOW - 250, 'milliseconds'],
    ['1h30m', NOW - 90 * MIN, 'a compound duration'],
    ['2d12h', NOW - 60 * HOUR, 'days and hours'],
    ['1h0m30s', NOW - HOUR - 30_000, 'three segments, one of them zero'],
    [' 5m ', NOW - 5 * MIN, 'surrounding spaces'],
    ['now', NOW, 'now'],
    ['NOW', NOW, 'now in capitals'],
    ['2026-06-01', Date.UTC(2026, 5, 1), 'a date: midnight UTC'],
    ['2026-06-01T12:00:00Z', Date.UTC(2026, 5, 1, 12), 'a UTC time'],
    ['2026-06-01T12:00Z', Date.UTC(2026, 5, 1, 12), 'a UTC time without seconds'],
    ['2026-06-01T12:00:00', Date.UTC(2026, 5, 1, 12), 'no offset means UTC'],
    ['2026-06-01T14:00:00+02:00', Date.UTC(2026, 5, 1, 12), 'an offset east of UTC'],
    ['2026-06-01T07:30:00-0430', Date.UTC(2026, 5, 1, 12), 'an offset without a colon, west of UTC'],
    ['2026-06-01T12:00:00.123Z', Date.UTC(2026, 5, 1, 12, 0, 0, 123), 'milliseconds'],
    ['2026-06-01T12:00:00.123456789Z', Date.UTC(2026, 5, 1, 12, 0, 0, 123), 'nanoseconds, cut to milliseconds'],
    ['2026-06-01t12:00:00z', Date.UTC(2026, 5, 1, 12), 'lower-case t and z'],
    ['2024-02-29', Date.UTC(2024, 1, 29), 'a leap day'],
    ['1780315200', Date.UTC(2026, 5, 1, 12), 'epoch seconds (10 digits)'],
    ['1780315200000', Date.UTC(2026, 5, 1, 12), 'epoch milliseconds (13 digits)'],
    ['946684800', Date.UTC(2000, 0, 1), 'epoch seconds with 9 digits'],
    ['99999999999', 99_999_999_999_000, 'epoch seconds with 11 digits'],
    ['100000000000', 100_000_000_000, 'epoch milliseconds with 12 digits'],
  ];
  for (const [input, expected, what] of accepted) {
    test(`${JSON.stringify(input)}: ${what}`, () => {
      assert.equal(parseTimeArg(input, '--since', NOW), expected, new Date(expected).toISOString());
    });
  }

  const refused: [input: string, problem: RegExp, what: string][] = [
    ['yesterday', /expected a duration back from now/, 'a word'],
    ['', /expected a duration back from now/, 'nothing'],
    ['10', /"10" is neither epoch seconds .* a duration needs a unit \(10s, 10m, 10h\)/, 'a bare small number'],
    ['12345678', /neither epoch seconds/, 'eight digits'],
    ['12345678901234567', /neither epoch seconds/, 'seventeen digits'],
    ['10x', /expected a duration/, 'an unknown unit'],
    ['1.5h', /expected a duration/, 'a fraction'],
    ['-10m', /expected a duration/, 'a negative duration'],
    ['h', /expected a duration/, 'a unit alone'],
    ['2026-02-30', /"2026-02-30" is not a real date or time/, 'a day February does not have'],
    ['2025-02-29', /not a real date or time/, 'a leap day in a common year'],
    ['2026-13-01', /not a real date or time/, 'month 13'],
    ['2026-06-01T24:00:00Z', /not a real date or time/, 'hour 24'],
    ['2026-06-01T12:60Z', /not a real date or time/, 'minute 60'],
    ['2026-06-01T12:00:00+25:00', /invalid UTC offset/, 'an offset beyond 23 hours'],
    ['2026-6-1', /expected a duration/, 'a date without leading zeros'],
    ['06/01/2026', /expected a duration/, 'a US date'],
    ['2026-06-01 12:00', /expected a duration/, 'a space instead of T'],
  ];
  for (const [input, problem, what] of refused) {
    test(`${JSON.stringify(input)} is refused: ${what}`, () => {
      assert.throws(
        () => parseTimeArg(input, '--until', NOW),
        (err: unknown) => {
          assert.ok(err instanceof CliError, String(err));
          assert.equal(err.exitCode, ExitCode.Usage, 'a usage error: exit code 2');
          assert.match(err.message, /^--until: /, 'names the flag');
          assert.ok(err.message.includes(JSON.stringify(input)), `names the value: ${err.message}`);
          assert.match(err.message, problem);
          assert.match(err.message, /ISO 8601/, 'lists the accepted forms');
          return true;
        },
      );
    });
  }
});

describe('parseCompoundDuration', () => {
  test('whole durations go to the config parser; compound ones are the sum of their segments', () => {
    assert.equal(parseCompoundDuration('5m'), 5 * MIN);
    assert.equal(parseCompoundDuration('1h30m'), 90 * MIN);
    assert.equal(parseCompoundDuration('1d1h1m1s1ms'), DAY + HOUR + MIN + 1001);
    assert.equal(parseCompoundDuration('1h30'), undefined);
    assert.equal(parseCompoundDuration('30m1h'), 90 * MIN, 'order is not enforced: the sum is the same');
    assert.equal(parseCompoundDuration(''), undefined);
  });
});
