import { readFile } from 'node:fs/promises';

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
