/**
 * Liveness and readiness. `/healthz` answers while the process runs; `/readyz` runs the role's
 * checks (NATS connected, the JetStream stream present, ClickHouse answering, …), each bounded by
 * a timeout, and answers 503 naming the ones that failed.
 */

/** One dependency a role needs before it can serve. */
export interface ReadinessCheck {
  /** Short name shown in `/readyz` (`nats`, `jetstream`, `clickhouse`, `redis`). */
  readonly name: string;
  /** Resolves true when ready; false or a rejection means not ready. */
  check(): Promise<boolean> | boolean;
}

/** The result of running every check. */
export interface ReadinessReport {
  readonly ready: boolean;
  /** Per check: `ok`, or why it is not ready. */
  readonly checks: Readonly<Record<string, string>>;
}

const CHECK_TIMEOUT_MS = 2000;

/** The readiness checks of one process. */
export class Readiness {
  private readonly checks: ReadinessCheck[] = [];
  private last: ReadinessReport = { ready: true, checks: {} };

  /** Adds a check; roles add what they depend on while they start. */
  add(check: ReadinessCheck): void {
    this.checks.push(check);
  }

  /** Runs every check (in parallel, each within 2 s). */
  async run(): Promise<ReadinessReport> {
    const results = await Promise.all(
      this.checks.map(async (c): Promise<[string, string]> => {
        let timer: NodeJS.Timeout | undefined;
        try {
          const ok = await Promise.race([
            Promise.resolve(c.check()),
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
            }),
          ]);
          return [c.name, ok ? 'ok' : 'not ready'];
        } catch (err) {
          return [c.name, err instanceof Error ? err.message.slice(0, 200) : 'failed'];
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    this.last = { ready: results.every(([, r]) => r === 'ok'), checks: Object.fromEntries(results) };
    return this.last;
  }

  /** The last report (for synchronous callers); `ready` until the first run. */
  lastReport(): ReadinessReport {
    return this.last;
  }
}
