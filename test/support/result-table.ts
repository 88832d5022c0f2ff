/**
 * The summary table the fault and security suites print: one `case | expected | observed` row per
 * check, then a closing line exactly `N passed, N failed` (what CI reads).
 */

/** One checked case. */
export interface ResultRow {
  readonly name: string;
  readonly expected: string;
  readonly observed: string;
  /** undefined: not run here (shown, not counted), with the reason as the observation. */
  readonly ok: boolean | undefined;
}

/** Collects rows and prints them. */
export class ResultTable {
  readonly rows: ResultRow[] = [];

  /** Records a row; returns `ok` so callers can chain. */
  add(name: string, expected: string, observed: string, ok: boolean | undefined): boolean | undefined {
    this.rows.push({ name, expected, observed: observed.replace(/\s+/g, ' ').slice(0, 240), ok });
    return ok;
  }

  /** Runs `check`, recording its observation; a thrown error is a failed row naming the error. */
  async check(name: string, expected: string, check: () => Promise<{ observed: string; ok: boolean | undefined }>): Promise<void> {
    try {
      const r = await check();
      this.add(name, expected, r.observed, r.ok);
    } catch (err) {
      this.add(name, expected, `error: ${err instanceof Error ? err.message : String(err)}`, false);
    }
  }

  get passed(): number {
    return this.rows.filter((r) => r.ok === true).length;
  }

  get failed(): readonly ResultRow[] {
    return this.rows.filter((r) => r.ok === false);
  }

  /** The table as text: a header, one line per row (FAIL/skip marked), and the closing line. */
  render(title: string): string {
    const mark = (r: ResultRow): string => (r.ok === true ? '' : r.ok === false ? ' ✗ FAIL' : ' (not run)');
    const lines = [`== ${title}`, 'case | expected | observed', ...this.rows.map((r) => `${r.name} | ${r.expected} | ${r.observed}${mark(r)}`)];
    lines.push(`${this.passed} passed, ${this.failed.length} failed`);
    return lines.join('\n');
  }
}
