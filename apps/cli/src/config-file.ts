import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigFile, type PortcullisConfig } from '@portcullis/config';

/** The repository / package root (dist/apps/cli/src → ../../../..). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

/** The CLI entry script, for exec credential plugins. */
export const CLI_SCRIPT = join(PACKAGE_ROOT, 'bin', 'portcullis.js');

/**
 * Which config file a command uses: --config, else $PORTCULLIS_CONFIG, else ./portcullis.yaml,
 * else the example configuration shipped with the package.
 */
export function resolveConfigPath(flag: string | undefined): string {
  if (flag !== undefined) return resolve(flag);
  const env = process.env['PORTCULLIS_CONFIG'];
  if (env !== undefined && env !== '') return resolve(env);
  const local = resolve('portcullis.yaml');
  if (existsSync(local)) return local;
  return join(PACKAGE_ROOT, 'portcullis.example.yaml');
}

/** Loads the config a command uses. */
export function loadCliConfig(flag: string | undefined): { config: PortcullisConfig; path: string } {
  const path = resolveConfigPath(flag);
  return { config: loadConfigFile(path), path };
}
