/**
 * Running one role (or several) as its own Nest application without the CLI: `node
 * dist/apps/<role>/src/main.js --config FILE` (or `$PORTCULLIS_CONFIG`). Prints one JSON line
 * `{"ready":true,…}` once it serves, and stops on SIGINT or SIGTERM.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile } from '@portcullis/config';
import type { Role } from './roles.js';
import { runUntilSignal, startProcess } from './start-process.js';

/** Starts `roles` from the config named on the command line, until a signal. */
export async function runRoleMain(roles: readonly Role[]): Promise<void> {
  try {
    const { values } = parseArgs({ args: process.argv.slice(2), options: { config: { type: 'string' } } });
    const path = values.config ?? process.env['PORTCULLIS_CONFIG'];
    if (path === undefined || path === '')
      throw new ConfigError(`usage: main.js --config FILE (or set PORTCULLIS_CONFIG): the config of the ${roles.join('+')} role`);
    const running = await startProcess({ config: loadConfigFile(path), roles });
    process.stdout.write(
      `${JSON.stringify({ ready: true, roles, config: path, ...(running.edgeUrl !== undefined ? { url: running.edgeUrl } : {}), ...(running.approvalUrl !== undefined ? { approvalUrl: running.approvalUrl } : {}) })}\n`,
    );
    await runUntilSignal(running);
    process.exit(0);
  } catch (err) {
    process.stderr.write(`portcullis: ${err instanceof ConfigError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  }
}
