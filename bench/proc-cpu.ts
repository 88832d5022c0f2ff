/** CPU time of processes from /proc (Linux), for the benches' per-process CPU figures. */
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ). */
const CLK_TCK = 100;

/**
 * utime + stime of `pid` in seconds, with its descendants' when `descendants` is set (nginx
 * workers); 0 once the process is gone (a reaped process has no /proc entry).
 */
export function cpuSeconds(pid: number | undefined, descendants = false): number {
  if (pid === undefined || pid === 0) return 0;
  let seconds = 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    seconds += (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    if (descendants) {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean)) seconds += cpuSeconds(Number(child), true);
      }
    }
  } catch {
    // The process ended: its time is not counted.
  }
  return seconds;
}

/**
 * utime + stime of the calling thread in seconds (/proc/thread-self: a worker thread's own time,
 * not the process's), at the 10 ms resolution of USER_HZ.
 */
export function threadCpuSeconds(): number {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}
