/** The CLI's exit codes: what scripts and CI can rely on. */
export const ExitCode = {
  /** Done. */
  Ok: 0,
  /** It failed, or found problems (`audit verify` findings, an invalid `policy check`). */
  Failure: 1,
  /** The command line was wrong: unknown command or option, a bad value, a missing argument. */
  Usage: 2,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A CLI failure: printed as one line on stderr, exit code 1 (2 for usage). */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: ExitCode = ExitCode.Failure,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
