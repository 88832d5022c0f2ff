import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually, EventuallyTimeoutError } from '../support/eventually.js';

describe("eventually (the tests' one poll-with-deadline helper)", () => {
  test('resolves with the first value that is not undefined or false, polling until then', async () => {
    let calls = 0;
    const got = await eventually('the third call', () => (++calls >= 3 ? { calls } : undefined));
    assert.deepEqual(got, { calls: 3 });
    let n = 0;
    assert.equal(await eventually('a promised true', () => Promise.resolve(++n === 2)), true);
    assert.equal(await eventually('zero and the empty string are values', () => 0), 0);
    assert.equal(await eventually('zero and the empty string are values', () => ''), '');
  });

  test('a probe that throws is not done yet; it is retried', async () => {
    let calls = 0;
    const got = await eventually('the probe to stop throwing', () => {
      if (++calls < 3) throw new Error('not listening yet');
      return 'up';
    });
    assert.equal(got, 'up');
  });

  test('at the deadline it fails naming what was awaited and the last value seen', async () => {
    let n = 0;
    const started = Date.now();
    await assert.rejects(
      eventually('the counter to reach 1000', () => (++n >= 1000 ? true : undefined), { timeoutMs: 150, seen: () => ({ n }) }),
      (error: unknown) => {
        assert.ok(error instanceof EventuallyTimeoutError);
        assert.match(error.message, /^timed out after 150 ms waiting for the counter to reach 1000; last seen: \{ n: \d+ \}$/);
        return true;
      },
    );
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 150 && elapsed < 5000, `gave up after ${elapsed} ms`);
    await assert.rejects(
      eventually('nothing', () => false, 60),
      /: timed out after 60 ms waiting for nothing; last seen: false$/,
    );
    await assert.rejects(
      eventually(
        'NATS',
        () => {
          throw new Error('connection refused');
        },
        60,
      ),
      /waiting for NATS; the last probe threw Error: connection refused$/,
    );
  });

  test('polls soon at first, then less often; or every intervalMs when given', async () => {
    const gapsOf = async (opts: { timeoutMs: number; intervalMs?: number }): Promise<number[]> => {
      const at: number[] = [];
      await assert.rejects(eventually('never', () => void at.push(performance.now()), opts));
      return at.slice(1).map((t, i) => t - at[i]!);
    };
    // Timers never fire early, so lower bounds hold on a loaded machine too.
    const backoff = await gapsOf({ timeoutMs: 600 });
    // (the last pause is cut short at the deadline)
    assert.ok(
      backoff.slice(4, -1).every((g) => g >= 75),
      `pauses grow to 80-100 ms: ${backoff.map(Math.round).join(', ')}`,
    );
    const fixed = await gapsOf({ timeoutMs: 300, intervalMs: 50 });
    assert.ok(
      fixed.slice(0, -1).every((g) => g >= 45),
      `every 50 ms from the first: ${fixed.map(Math.round).join(', ')}`,
    );
  });
});
