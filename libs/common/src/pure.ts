/**
 * The common library's pure entry point (`@portcullis/common/pure`): the helpers with no I/O and
 * no dependencies (the duration grammar, the listen-address URL), for libs that must not load
 * the logger (pino) to use them — the policy engine, the configuration.
 */
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
