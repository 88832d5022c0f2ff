/**
 * A level-free wake-up: `wait()` resolves at the next `notify()` or after `ms`. Loops use it to
 * sleep until "something changed" without polling. Timers are unref'd so an idle waiter never
 * keeps the process alive.
 */
export class WakeSignal {
  private waiters: Array<() => void> = [];

  /** Resolves at the next {@link notify} or after `ms` (no timeout when omitted). */
  wait(ms?: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const wake = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        resolve();
      };
      this.waiters.push(wake);
      if (ms !== undefined) {
        timer = setTimeout(
          () => {
            const i = this.waiters.indexOf(wake);
            if (i >= 0) this.waiters.splice(i, 1);
            resolve();
          },
          Math.max(0, ms),
        );
        timer.unref();
      }
    });
  }

  /** Wakes every current waiter. */
  notify(): void {
    if (this.waiters.length === 0) return;
    const woken = this.waiters;
    this.waiters = [];
    for (const wake of woken) wake();
  }
}

/** Exponential back-off with jitter: 250 ms, 500 ms, … capped at `maxMs`. */
export function backoffMs(attempt: number, maxMs = 10_000): number {
  const base = Math.min(maxMs, 250 * 2 ** Math.min(Math.max(0, attempt - 1), 10));
  return Math.round(base / 2 + Math.random() * (base / 2));
}
