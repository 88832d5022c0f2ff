import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { trackProcess, untrackProcess } from '../harness/process-reaper.js';

/** Repository root (dist/test/support → ../../..). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** The CLI entry users run. */
export const CLI = join(REPO_ROOT, 'bin', 'portcullis.js');

/** A portcullis process started by a test. */
export interface PortcullisProcess {
  readonly child: ChildProcess;
  /** Everything it wrote so far (stdout + stderr), for assertions and failure messages. */
  output(): string;
  /** Resolves when a line matching `pattern` appears on stdout or stderr. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM and wait for exit (SIGKILL after 10 s). */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  /** Resolves with the exit code when it exits. */
  readonly exited: Promise<number | null>;
}

/**
 * Starts `portcullis <args…>` as its own process. `cli` runs another build's entry point instead
 * (the benches compare an earlier build side by side).
 */
export function startPortcullis(
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; nodeArgs?: readonly string[]; cli?: string } = {},
): PortcullisProcess {
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), opts.cli ?? CLI, ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    env: { ...process.env, PORTCULLIS_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackProcess(child);
  let out = '';
  const waiters: { pattern: RegExp; resolve: (l: string) => void }[] = [];
  const onData = (chunk: Buffer): void => {
    out += chunk.toString('utf8');
    for (const w of [...waiters]) {
      const m = out.split('\n').find((l) => w.pattern.test(l));
      if (m !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      untrackProcess(child);
      r(code);
    }),
  );
  return {
    child,
    exited,
    output: () => out,
    waitFor(pattern, timeoutMs = 30_000) {
      const existing = out.split('\n').find((l) => pattern.test(l));
      if (existing !== undefined) return Promise.resolve(existing);
      return new Promise((res, rej) => {
        const timer = setTimeout(
          () => rej(new Error(`timed out waiting for ${pattern} from portcullis ${args.join(' ')}; output:\n${out.slice(-4000)}`)),
          timeoutMs,
        );
        void exited.then((code) => {
          clearTimeout(timer);
          rej(new Error(`portcullis ${args.join(' ')} exited (${code}) before ${pattern}; output:\n${out.slice(-4000)}`));
        });
        waiters.push({
          pattern,
          resolve: (l) => {
            clearTimeout(timer);
            res(l);
          },
        });
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Runs a portcullis command to completion (`cli`: another build's entry point). */
export function runPortcullis(
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cli?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return runFile(process.execPath, [opts.cli ?? CLI, ...args], opts.env);
}

/** Runs kubectl with its own discovery cache dir; never throws on a non-zero exit. */
export function kubectl(
  kubeconfig: string,
  cacheDir: string,
  args: readonly string[],
  timeoutMs = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return runFile('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, '--request-timeout', '30s', ...args], undefined, timeoutMs);
}

function runFile(
  file: string,
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
  timeoutMs = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    execFile(file, [...args], { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** A temp dir for one test file. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `portcullis-${prefix}-`));
}

/** Writes a config object as YAML and returns its path. */
export function writeConfig(dir: string, name: string, config: Record<string, unknown>): string {
  const file = join(dir, name);
  writeFileSync(file, stringify(config));
  return file;
}
