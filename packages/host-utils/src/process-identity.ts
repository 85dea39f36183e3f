import { readdirSync, readFileSync } from 'node:fs';

// Synchronous on purpose: a /proc read is microseconds, a thread-pool round trip is not, and callers ask from
// getters (`running`) and tight polls.

/** The fields of `/proc/<pid>/stat` that identify a process and tell whether it still runs. */
export interface ProcStat {
  /** One-letter state: R, S, D, Z (zombie), T, X (dead), … */
  readonly state: string;
  /** Start time in clock ticks since boot: with the pid, it names one process even after the pid is reused. */
  readonly startTime: number;
}

/** Parses /proc/<pid>/stat. The command name is in parentheses and may itself contain `)` and spaces. */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  // Fields after the name: state is field 3, starttime field 22, so index 0 and 19 here.
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const startTime = Number(fields[19]);
  if (!state || !Number.isFinite(startTime)) return undefined;
  return { state, startTime };
}

/** /proc/<pid>/stat, or undefined when the process does not exist. */
export function readProcStat(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * The kernel's start time of `pid` (clock ticks since boot), or undefined if there is no such process. Pids are
 * recycled; (pid, start time) pairs are not, so this is what makes "still the same process" checkable.
 */
export function processStartTime(pid: number): number | undefined {
  return readProcStat(pid)?.startTime;
}

/**
 * True while `pid` runs and (when given) still has `startTime`. A leader shows `Z` as soon as its own thread
 * exits while its other threads (and the process's files, sockets and locks) may live on, so a zombie counts as
 * dead only once it is the last task of its group.
 */
export function isProcessAlive(pid: number, startTime?: number): boolean {
  const info = readProcStat(pid);
  if (info === undefined || info.state === 'X') return false;
  if (startTime !== undefined && info.startTime !== startTime) return false;
  if (info.state !== 'Z') return true;
  try {
    return readdirSync(`/proc/${pid}/task`).length > 1;
  } catch {
    return false;
  }
}

/**
 * The argv of `pid` from /proc/<pid>/cmdline, or undefined when it is gone (or has no argv: a zombie, a kernel
 * thread). Empty arguments inside the argv are kept.
 */
export function readCmdline(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
  if (text.length === 0) return undefined;
  return text.replace(/\0$/, '').split('\0');
}

/** Pids of all processes visible in /proc (none when /proc cannot be read). */
export function listPids(): number[] {
  try {
    return readdirSync('/proc')
      .filter((name) => /^\d+$/.test(name))
      .map(Number);
  } catch {
    return [];
  }
}
