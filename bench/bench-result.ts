/**
 * How a bench hands its figures to `npm run bench` (bench/suite.ts): one line
 * `BENCH_RESULT {"part": …, "figures": …}` on stdout, beside its human-readable output.
 */

/** The line prefix the suite looks for. */
export const BENCH_RESULT_PREFIX = 'BENCH_RESULT ';

/** Prints this bench's figures for the suite (JSON-serialisable values only). */
export function reportFigures(part: string, figures: Record<string, unknown>): void {
  process.stdout.write(`${BENCH_RESULT_PREFIX}${JSON.stringify({ part, figures })}\n`);
}
