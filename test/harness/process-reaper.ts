/**
 * Makes sure no server started by the harness outlives the test process and no temp dir is left:
 * a synchronous clean-up on exit, SIGINT/SIGTERM/SIGHUP and uncaught errors, plus a detached
 * watchdog process that does the same when we die without running any handler (SIGKILL, OOM).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

const pids = new Set<number>();
const dirs = new Set<string>();
let watchdog: ChildProcess | undefined;
let installed = false;

// Runs as CommonJS via `node -e`: reads "+pid N", "-pid N", "+dir P", "-dir P" lines; when its
// stdin closes (the parent is gone, however it died) it SIGKILLs the pids and removes the dirs.
const WATCHDOG_SOURCE = `
const fs = require('node:fs');
const pids = new Set(), dirs = new Set();
let buf = '';
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => {});
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    const op = line.slice(0, 4), v = line.slice(5);
    if (op === '+pid') pids.add(Number(v)); else if (op === '-pid') pids.delete(Number(v));
    else if (op === '+dir') dirs.add(v); else if (op === '-dir') dirs.delete(v);
  }
});
process.stdin.on('close', () => {
  for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch {} }
  setTimeout(() => {
    for (const d of dirs) { try { fs.rmSync(d, { recursive: true, force: true, maxRetries: 3 }); } catch {} }
    process.exit(0);
  }, 300);
});
`;

function tellWatchdog(line: string): void {
  if (watchdog === undefined) {
    watchdog = spawn(process.execPath, ['-e', WATCHDOG_SOURCE], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true, // survives a Ctrl-C to our process group long enough to clean up
    });
    watchdog.unref();
    watchdog.stdin?.on('error', () => {});
    (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  }
  watchdog.stdin?.write(`${line}\n`);
}

/** Kills every tracked process (SIGKILL) and removes every tracked dir, synchronously. */
export function reapAll(): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  pids.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  dirs.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  reapAll();
  process.removeListener(signal, onSignal);
  // Re-raise so the default action (or another listener) decides how the process ends.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', reapAll);
  process.on('uncaughtExceptionMonitor', reapAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
}

/** Tracks a started child until `untrackProcess` (or until we exit, when it is killed). */
export function trackProcess(child: ChildProcess): void {
  if (child.pid === undefined) return;
  install();
  pids.add(child.pid);
  tellWatchdog(`+pid ${child.pid}`);
}

/** Stops tracking a child that has exited. */
export function untrackProcess(child: ChildProcess): void {
  if (child.pid === undefined || !pids.delete(child.pid)) return;
  tellWatchdog(`-pid ${child.pid}`);
}

/** Tracks a temp dir so it is removed when we exit. */
export function trackDir(dir: string): void {
  install();
  dirs.add(dir);
  tellWatchdog(`+dir ${dir}`);
}

/** Removes a tracked dir now. */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  if (dirs.delete(dir)) tellWatchdog(`-dir ${dir}`);
}
