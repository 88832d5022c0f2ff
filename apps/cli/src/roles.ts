/** The roles `serve` and `start` run (the process bootstrap that composes them is apps/runtime/src/start-process.ts). */
export { ALL_ROLES, Role } from '../../runtime/src/roles.js';
