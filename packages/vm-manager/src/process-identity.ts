import { readFileSync } from 'node:fs';

/**
 * The kernel's start time of `pid` (field 22 of /proc/<pid>/stat, in clock ticks since boot), or undefined if the
 * process does not exist. Together with the pid it names one process for its whole life: pids are recycled,
 * (pid, start time) pairs are not.
 */
export function processStartTime(pid: number): number | undefined {
  const start = Number(statFields(pid)?.[19]);
  return Number.isFinite(start) ? start : undefined;
}

/** True when the process that had `startTime` still runs (and is not a zombie). */
export function isProcessAlive(pid: number, startTime?: number): boolean {
  const fields = statFields(pid);
  if (!fields || fields[0] === 'Z' || fields[0] === 'X') return false;
  return startTime === undefined || Number(fields[19]) === startTime;
}

/** Fields 3… of /proc/<pid>/stat: after the command name, which may contain spaces and parentheses. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The argv of `pid` from /proc/<pid>/cmdline, or undefined when it is gone. */
export function processCmdline(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((s, i, all) => s !== '' || i < all.length - 1);
  } catch {
    return undefined;
  }
}

export const selfStartTime = processStartTime(process.pid);
