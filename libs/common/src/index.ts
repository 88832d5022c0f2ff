/** Small shared pieces: the logger, the duration grammar and the listen-address URL helper. */
// Everything the pure entry point exports (./pure.ts lists it), then what needs the heavier dependencies.
export * from './pure.js';
export { createLogger, silentLogger, LogLevel } from './logger.js';
export type { Logger } from './logger.js';
