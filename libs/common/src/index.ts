/** Small shared pieces with no I/O of their own: the logger and the listen-address URL helper. */
export { createLogger, silentLogger, LogLevel } from './logger.js';
export type { Logger } from './logger.js';
export { listenUrl, urlHost } from './listen-url.js';
