/** One server child process: spawn with logs in files, poll a readiness probe, stop or kill. */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { trackProcess, untrackProcess } from './process-reaper.js';

/** How to launch a server. */
export interface LaunchSpec {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  /** Receives the child's stdout and stderr. */
  readonly logFile: string;
}

/** A server exited or did not become ready in time; carries the tail of its logs. */
export class ServiceStartError extends Error {
  override readonly name = 'ServiceStartError';
  constructor(
    message: string,
    /** The server exited because its port was taken (worth retrying on another port). */
    readonly addressInUse: boolean,
    readonly logTail: string,
    options?: ErrorOptions,
  ) {
    super(`${message}\n--- log tail ---\n${logTail}`, options);
  }
}

const POLL_INTERVAL_MS = 50;
const TAIL_CHARS = 4000;

/** The last few KB of each existing log file, labelled. */
export function logTail(files: readonly string[]): string {
  return files
    .filter((file) => existsSync(file))
    .map((file) => {
      const text = readFileSync(file, 'utf8');
      return `[${file}]\n${text.slice(-TAIL_CHARS)}`;
    })
    .join('\n');
}

/** A supervised server child process; at most one is alive at a time. */
export class ServerProcess {
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  /** How long the last start took until ready, in ms. */
  startMs = 0;

  /**
   * @param name for messages
   * @param logFiles files whose tail explains a failure (the stdout log first)
   */
  constructor(
    readonly name: string,
    private readonly logFiles: readonly string[],
  ) {}

  /** Process id of the running server, if any. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Whether the server process is alive. */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Spawns the server and resolves once `ready()` returns true; throws ServiceStartError. */
  async start(spec: LaunchSpec, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    if (this.#child !== undefined) throw new Error(`${this.name} is already running`);
    const log = openSync(spec.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(spec.command, spec.args, { cwd: spec.cwd, stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    this.#child = child;
    trackProcess(child);
    let exitReason: string | undefined;
    this.#exited = new Promise<void>((resolve) => {
      const done = (reason: string): void => {
        exitReason ??= reason;
        untrackProcess(child);
        if (this.#child === child) this.#child = undefined;
        resolve();
      };
      child.once('exit', (code, signal) => done(signal === null ? `exit code ${code}` : `signal ${signal}`));
      child.once('error', (error) => done(`spawn error: ${error.message}`));
    });
    const exited = this.#exited;
    const deadline = Date.now() + timeoutMs;
    const started = Date.now();
    for (;;) {
      if (exitReason !== undefined) {
        const tail = logTail(this.logFiles);
        throw new ServiceStartError(
          `${this.name} (${spec.command} ${spec.args.join(' ')}) exited during start-up: ${exitReason}`,
          /address already in use/i.test(tail),
          tail,
        );
      }
      try {
        if (await ready()) break;
      } catch {
        // not listening yet
      }
      if (exitReason !== undefined) continue;
      if (Date.now() > deadline) {
        await this.kill();
        throw new ServiceStartError(`${this.name} was not ready within ${timeoutMs} ms`, false, logTail(this.logFiles));
      }
      await Promise.race([delay(POLL_INTERVAL_MS), exited]);
    }
    this.startMs = Date.now() - started;
    // A server left running must not keep the test process alive; the reaper kills it at exit.
    child.unref();
  }

  /** SIGTERM, then SIGKILL if it has not exited within `timeoutMs`. */
  async stop(timeoutMs = 15_000): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    child.ref();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await this.#exited;
    clearTimeout(timer);
  }

  /** SIGKILL (a crash, for fault tests); resolves once the process is gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    child.ref();
    child.kill('SIGKILL');
    await this.#exited;
  }
}
