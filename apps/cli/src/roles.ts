/** The roles `serve` and `start` run, and the process bootstrap that composes them (apps/runtime). */
export { ALL_ROLES, Role } from '../../runtime/src/roles.js';
export { runUntilSignal, startProcess } from '../../runtime/src/start-process.js';
