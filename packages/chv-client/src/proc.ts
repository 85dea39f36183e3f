import { readFileSync } from 'node:fs';

/** The argv of `pid` from /proc/<pid>/cmdline, or undefined when there is no such process. */
export function readCmdline(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const args = raw.split('\0');
    if (args.at(-1) === '') args.pop();
    return args;
  } catch {
    return undefined;
  }
}

/** Fields 3… of /proc/<pid>/stat (after the command name, which may hold spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * The kernel's start time of `pid` (clock ticks since boot). Pids are recycled; (pid, start time) pairs are
 * not, so this is what makes "still the same process" checkable.
 */
export function processStartTime(pid: number): number | undefined {
  const start = Number(statFields(pid)?.[19]);
  return Number.isFinite(start) ? start : undefined;
}

/** True while the process exists, is not a zombie and (when given) still has `startTime`. */
export function isProcessAlive(pid: number, startTime?: number): boolean {
  const fields = statFields(pid);
  if (!fields || fields[0] === 'Z' || fields[0] === 'X') return false;
  return startTime === undefined || Number(fields[19]) === startTime;
}
