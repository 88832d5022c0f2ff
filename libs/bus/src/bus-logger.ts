/** Severity of a bus log line. */
export const BusLogLevel = {
  Debug: 'debug',
  Info: 'info',
  Warn: 'warn',
  Error: 'error',
} as const;
export type BusLogLevel = (typeof BusLogLevel)[keyof typeof BusLogLevel];

/**
 * Where the bus reports what it cannot throw to a caller (reconnects, consumer retries, a
 * responder that failed). Inject the process logger; the default writes JSON lines to stderr.
 */
export type BusLogger = (level: BusLogLevel, msg: string, fields?: Readonly<Record<string, unknown>>) => void;

/** The default {@link BusLogger}: one JSON object per line on stderr. */
export const consoleJsonLogger: BusLogger = (level, msg, fields) => {
  console.error(JSON.stringify({ time: new Date().toISOString(), level, component: 'bus', msg, ...fields }));
};

/** The message of any thrown value, for log fields and error texts. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
