/**
 * The one poll-with-deadline helper of the tests (copies of it drifted: different intervals,
 * defaults, argument orders, and failures that did not say what was last seen). Use it where
 * there is no event to await; never sleep a fixed time to wait for something.
 */
import { inspect } from 'node:util';

/** How {@link eventually} polls. */
export interface EventuallyOptions {
  /** Give up after this long (default 20 s). */
  readonly timeoutMs?: number;
  /**
   * Probe every this many ms (for a probe that compares successive values). By default the pause
   * starts at 5 ms and doubles up to 100 ms: what holds soon is seen soon, and what takes long is
   * not probed in a tight loop.
   */
  readonly intervalMs?: number;
  /** What the failure reports as last seen, for a probe that only answers yes or no. */
  readonly seen?: () => unknown;
}

/** What a probe returns while the awaited thing has not happened yet. */
export type NotYet = undefined | false;

/** The awaited thing did not happen in time; the message names it and what was last seen. */
export class EventuallyTimeoutError extends Error {
  override readonly name = 'EventuallyTimeoutError';
}

/**
 * Calls `probe` until it returns something other than `undefined` or `false`, and resolves with
 * that. A probe that throws counts as not yet (its error is what was last seen). At the deadline
 * it rejects with an {@link EventuallyTimeoutError} naming `what` and the last value or error.
 * A number for `options` is the timeout in ms.
 */
export async function eventually<T>(what: string, probe: () => T | PromiseLike<T>, options: EventuallyOptions | number = {}): Promise<Exclude<T, NotYet>> {
  const opts: EventuallyOptions = typeof options === 'number' ? { timeoutMs: options } : options;
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const maxPauseMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let pauseMs = opts.intervalMs ?? 5;
  let last: { value: unknown } | { error: unknown } = { value: undefined };
  let atDeadline = false;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as Exclude<T, NotYet>;
      last = { value };
    } catch (error) {
      last = { error };
    }
    const leftMs = deadline - Date.now();
    if (atDeadline || leftMs <= 0) throw new EventuallyTimeoutError(`timed out after ${timeoutMs} ms waiting for ${what}; ${lastSeen(last, opts.seen)}`);
    // The last pause ends at the deadline, for one last probe there.
    atDeadline = leftMs <= pauseMs;
    await new Promise((resolve) => setTimeout(resolve, Math.min(pauseMs, leftMs)));
    pauseMs = Math.min(pauseMs * 2, maxPauseMs);
  }
}

function lastSeen(last: { value: unknown } | { error: unknown }, seen: (() => unknown) | undefined): string {
  if ('error' in last) return `the last probe threw ${show(last.error)}`;
  if (seen === undefined) return `last seen: ${show(last.value)}`;
  try {
    return `last seen: ${show(seen())}`;
  } catch (error) {
    return `last seen: (seen() threw ${show(error)})`;
  }
}

function show(value: unknown): string {
  const text =
    value instanceof Error ? `${value.name}: ${value.message}` : inspect(value, { depth: 3, breakLength: Infinity, maxArrayLength: 20, maxStringLength: 300 });
  return text.length > 1000 ? `${text.slice(0, 1000)}…` : text;
}
