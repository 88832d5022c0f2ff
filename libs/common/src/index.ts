/** Small shared pieces with no I/O of their own. */
export { createLogger, silentLogger, LogLevel } from './logger.js';
export type { Logger } from './logger.js';
