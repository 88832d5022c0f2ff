/** Small shared pieces: the logger, the duration grammar and the listen-address URL helper. */
export { createLogger, silentLogger, LogLevel } from './logger.js';
export type { Logger } from './logger.js';
export {
  DURATION_EXAMPLES,
  DURATION_PATTERN,
  DurationError,
  DurationErrorCode,
  DurationUnit,
  checkDuration,
  formatDuration,
  parseDurationMs,
} from './duration.js';
export type { DurationLimits } from './duration.js';
export { listenUrl, urlHost } from './listen-url.js';
