/**
 * Locates the server binaries the tests run and, when they are missing and we are root,
 * installs them from Debian (the project's only supported way to get them on CI).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Debian packages that provide each binary the harness runs. */
export const DEBIAN_PACKAGES = {
  'nats-server': ['nats-server'],
  'redis-server': ['redis-server'],
  'clickhouse-server': ['clickhouse-server', 'clickhouse-client'],
  'clickhouse-client': ['clickhouse-server', 'clickhouse-client'],
  // The benchmarks' reference proxy and load generator.
  nginx: ['nginx'],
  wrk: ['wrk'],
} as const;

/** A binary the harness knows how to install. */
export type ServiceBinary = keyof typeof DEBIAN_PACKAGES;

/** Thrown when a binary is missing and cannot be installed here; the message says what to install. */
export class MissingBinaryError extends Error {
  override readonly name = 'MissingBinaryError';
  constructor(
    readonly binaries: readonly string[],
    readonly packages: readonly string[],
    options?: ErrorOptions,
  ) {
    super(`missing ${binaries.join(', ')}; install them with: ` + `sudo apt-get update && sudo apt-get install -y ${packages.join(' ')}`, options);
  }
}

// Debian puts the servers in /usr/sbin, which a non-root PATH often lacks.
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Absolute path of an executable named `name` on PATH (or in the sbin dirs), or undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}

/** Resolves a binary or throws MissingBinaryError (never installs). */
export function requireBinary(name: ServiceBinary): string {
  const found = findBinary(name);
  if (found === undefined) throw new MissingBinaryError([name], DEBIAN_PACKAGES[name]);
  return found;
}

let aptUpdated: Promise<void> | undefined;

function run(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    // apt's chatter goes to stderr: a test process's stdout belongs to the test runner.
    const child = spawn(command, args, {
      stdio: ['ignore', 2, 2],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`})`));
    });
  });
}

// Another process may hold the dpkg lock (a parallel test file installing too): wait for it.
const APT_OPTIONS = ['-o', 'DPkg::Lock::Timeout=600'];

/** Runs `apt-get update` (once per process) and installs `packages` non-interactively. */
export async function aptInstall(packages: readonly string[]): Promise<void> {
  aptUpdated ??= run('apt-get', [...APT_OPTIONS, 'update']).catch((error: unknown) => {
    aptUpdated = undefined;
    throw error;
  });
  await aptUpdated;
  await run('apt-get', [
    ...APT_OPTIONS,
    'install',
    '-y',
    '--no-install-recommends',
    '-o',
    'Dpkg::Options::=--force-confdef',
    '-o',
    'Dpkg::Options::=--force-confold',
    ...packages,
  ]);
}

/**
 * Makes sure every binary in `names` exists, installing the missing ones with apt-get when running
 * as root; otherwise throws MissingBinaryError naming the packages to install.
 * @returns the absolute path of each binary
 */
export async function ensureBinaries<const N extends ServiceBinary>(names: readonly N[]): Promise<Record<N, string>> {
  const missing = names.filter((name) => findBinary(name) === undefined);
  if (missing.length > 0) {
    const packages = [...new Set(missing.flatMap((name) => DEBIAN_PACKAGES[name]))];
    if (process.getuid?.() !== 0) throw new MissingBinaryError(missing, packages);
    process.stderr.write(`portcullis test harness: installing ${packages.join(' ')} with apt-get\n`);
    try {
      await aptInstall(packages);
    } catch (error) {
      throw new MissingBinaryError(missing, packages, { cause: error });
    }
  }
  const paths = {} as Record<N, string>;
  for (const name of names) paths[name] = requireBinary(name);
  return paths;
}
