import { readdir, readFile } from 'node:fs/promises';

/** `__SO_ACCEPTCON` in /proc/net/unix: the socket has called listen(). */
const SO_ACCEPTCON = 0x10000;
/** `SS_UNCONNECTED` in /proc/net/unix (a listening socket is "unconnected"). */
const SS_UNCONNECTED = 1;

export interface UnixSocketEntry {
  readonly inode: number;
  readonly flags: number;
  readonly state: number;
  readonly path: string;
  readonly listening: boolean;
}

/**
 * Parses /proc/net/unix (`Num RefCount Protocol Flags Type St Inode Path`). Sockets without a path (unnamed) are
 * skipped; abstract ones keep their leading `@`.
 */
export function parseProcNetUnix(text: string): UnixSocketEntry[] {
  const entries: UnixSocketEntry[] = [];
  for (const line of text.split('\n')) {
    // Seven fixed fields, then the path, which may contain spaces.
    const match =
      /^\s*[0-9A-Fa-f]+:\s+[0-9A-Fa-f]+\s+[0-9A-Fa-f]+\s+([0-9A-Fa-f]+)\s+[0-9A-Fa-f]+\s+([0-9A-Fa-f]+)\s+(\d+)\s(.+)$/.exec(
        line,
      );
    if (!match) continue;
    const flags = Number.parseInt(match[1]!, 16);
    const state = Number.parseInt(match[2]!, 16);
    entries.push({
      flags,
      state,
      inode: Number(match[3]),
      path: match[4]!,
      listening: (flags & SO_ACCEPTCON) !== 0 && state === SS_UNCONNECTED,
    });
  }
  return entries;
}

/** True when some socket bound to `path` is listening, according to this network namespace's /proc/net/unix. */
export async function isUnixSocketListening(path: string): Promise<boolean> {
  const text = await readFile('/proc/net/unix', 'utf8');
  return parseProcNetUnix(text).some((entry) => entry.listening && entry.path === path);
}

export interface ProcStat {
  /** One-letter state: R, S, D, Z (zombie), T, … */
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
export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The argv of `pid` from /proc/<pid>/cmdline, or undefined when it is gone (or a zombie, whose cmdline is empty). */
export async function readCmdline(pid: number): Promise<string[] | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    if (text.length === 0) return undefined;
    return text.replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

/**
 * True while any thread of `pid` runs. A leader shows `Z` as soon as its own thread exits, while the other threads
 * (and the process's files and locks) may live on, so a zombie counts as dead only once it is the last task.
 */
export async function isProcessAlive(pid: number): Promise<boolean> {
  const info = await readProcStat(pid);
  if (info === undefined || info.state === 'X') return false;
  if (info.state !== 'Z') return true;
  try {
    return (await readdir(`/proc/${pid}/task`)).length > 1;
  } catch {
    return false;
  }
}

/** Pids of all processes visible in /proc. */
export async function listPids(): Promise<number[]> {
  const names = await readdir('/proc');
  return names.filter((name) => /^\d+$/.test(name)).map(Number);
}
