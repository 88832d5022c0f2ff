import { pino, stdTimeFunctions, type Logger as PinoLogger } from 'pino';
import { logContext } from '@portcullis/observability';

/** Log levels, lowest first. */
export const LogLevel = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type LogLevel = keyof typeof LogLevel;

/** Structured logger port: one JSON line per call. Never pass secrets in fields. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** Field names whose values are replaced by `[redacted]` wherever they appear (two levels deep). */
const SECRET_FIELDS = ['password', 'pass', 'token', 'secret', 'clientSecret', 'client_secret', 'authorization', 'cookie', 'privateKey', 'keyPem'];
const REDACT_PATHS = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);

/**
 * A JSON-lines logger (pino) to stderr, or to `write` (tests). Every line carries `time`, `level`,
 * `msg`, the base fields, and — while tracing is on — the active `traceId`, `spanId` and the
 * request's `auditId`. Secret-named fields are redacted; errors are logged as name, message, code.
 */
export function createLogger(
  opts: {
    level?: LogLevel;
    base?: Record<string, unknown>;
    write?: (line: string) => void;
  } = {},
): Logger {
  const envLevel = process.env['PORTCULLIS_LOG_LEVEL'];
  const level = opts.level ?? (envLevel !== undefined && envLevel in LogLevel ? (envLevel as LogLevel) : 'info');
  const write = opts.write;
  const destination = write !== undefined ? { write: (s: string) => write(s.endsWith('\n') ? s.slice(0, -1) : s) } : pino.destination({ dest: 2, sync: true });
  const logger = pino(
    {
      level,
      base: opts.base ?? {},
      messageKey: 'msg',
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: errorFields, error: errorFields, cause: errorFields },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      // pino merges the line's fields into the mixin's object: it must be a fresh one.
      mixin: () => logContext() ?? {},
    },
    destination,
  );
  return wrap(logger);
}

function wrap(l: PinoLogger): Logger {
  return {
    debug: (m, f) => (f === undefined ? l.debug(m) : l.debug(f, m)),
    info: (m, f) => (f === undefined ? l.info(m) : l.info(f, m)),
    warn: (m, f) => (f === undefined ? l.warn(m) : l.warn(f, m)),
    error: (m, f) => (f === undefined ? l.error(m) : l.error(f, m)),
    child: (fields) => wrap(l.child(fields)),
  };
}

function errorFields(value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, ...('code' in value ? { code: (value as { code: unknown }).code } : {}) };
  }
  return value;
}

/** A logger that drops everything (tests, quiet CLI paths). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};
