import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  type Stats,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { unsafePermission } from './dir-trust.js';

/**
 * The listing cache: one file beside the VM directories holding, for each VM, its last parsed state record and the
 * stamp (inode, size, mtime, ctime) of the state.json it came from. `StateStore.list()` then costs one stat per VM
 * plus one read, instead of a read and parse per VM. It is only ever a cache: every entry is checked against a
 * fresh stat, and a missing, corrupt or foreign file is ignored and rewritten.
 */
export const LISTING_CACHE_FILE = '.listing-cache.json';

/** Bumped whenever the layout changes, so a cache written by another version is ignored, never misread. */
const FORMAT = 'myhv-vm-listing-cache/1';

/**
 * State files whose ctime is younger than this are not cached. Any change to a file (rename over it, write, chmod,
 * utimes) sets its ctime to the current time, so once a cached ctime is older than the file system's timestamp
 * granularity (ns on ext4, xfs, btrfs and tmpfs; 1 s on some) plus the kernel's coarse-clock lag, no later change
 * can produce an equal stamp — even if the inode number is reused.
 */
export const DEFAULT_SETTLE_MS = 2_000;

/** One cached VM: its name, the stamp of the state file the record was parsed from, and that record. */
export type ListingEntry<R> = readonly [
  name: string,
  ino: number,
  size: number,
  mtimeMs: number,
  ctimeMs: number,
  record: R,
];

/**
 * The stamps (inode, size, mtime, ctime: what identifies one version of a file without reading it) of many files,
 * in one typed array: `myhv vm ls` stats thousands of files, and keeping no object per file spares the garbage
 * collector.
 */
export class FileStamps {
  readonly #values: Float64Array;

  constructor(count: number) {
    this.#values = new Float64Array(count * 4).fill(Number.NaN);
  }

  /** Records file `i`'s stamp; a file that could not be stat'ed keeps NaN, which matches nothing. */
  set(i: number, stat: Stats): void {
    const v = this.#values;
    v[i * 4] = stat.ino;
    v[i * 4 + 1] = stat.size;
    v[i * 4 + 2] = stat.mtimeMs;
    v[i * 4 + 3] = stat.ctimeMs;
  }

  /** True when the entry was made from the version of file `i` that was stat'ed. */
  matches(i: number, entry: ListingEntry<unknown>): boolean {
    const v = this.#values;
    return (
      entry[1] === v[i * 4] &&
      entry[2] === v[i * 4 + 1] &&
      entry[3] === v[i * 4 + 2] &&
      entry[4] === v[i * 4 + 3]
    );
  }

  /** True when file `i` last changed long enough before `now` (taken before the stat) to be cached safely. */
  settled(i: number, now: number, settleMs: number): boolean {
    return this.#values[i * 4 + 3]! < now - settleMs;
  }

  entry<R>(i: number, name: string, record: R): ListingEntry<R> {
    const v = this.#values;
    return [name, v[i * 4]!, v[i * 4 + 1]!, v[i * 4 + 2]!, v[i * 4 + 3]!, record];
  }
}

/**
 * The entries of the cache at `path` by VM name; empty when the file is missing, unreadable, corrupt, from
 * another version, or not safe to trust (a link, another user's, writable by others: it holds records). Entries
 * are checked for shape by `isRecord` so a damaged file can never yield a bad record.
 */
export function readListingCache<R>(
  path: string,
  isRecord: (value: unknown, name: string) => value is R,
): Map<string, ListingEntry<R>> {
  const entries = new Map<string, ListingEntry<R>>();
  let data: unknown;
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    if (unsafePermission(path, fstatSync(fd))) return entries;
    // latin1: the writer keeps the file ASCII, and one byte per character is the cheapest string to make.
    data = JSON.parse(readFileSync(fd, 'latin1'));
  } catch {
    return entries;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  if (typeof data !== 'object' || data === null) return entries;
  const { format, entries: list } = data as { format?: unknown; entries?: unknown };
  if (format !== FORMAT || !Array.isArray(list)) return entries;
  for (const entry of list as unknown[]) {
    if (
      Array.isArray(entry) &&
      entry.length === 6 &&
      typeof entry[0] === 'string' &&
      typeof entry[1] === 'number' &&
      typeof entry[2] === 'number' &&
      typeof entry[3] === 'number' &&
      typeof entry[4] === 'number' &&
      isRecord(entry[5], entry[0])
    ) {
      entries.set(entry[0], entry as unknown as ListingEntry<R>);
    }
  }
  return entries;
}

let tempCounter = 0;

// Everything outside ASCII is written as a JSON \u escape, so the reader may decode the file as latin1.
const nonAscii = /[\u007f-\uffff]/g;
const escapeChar = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * Replaces the cache at `path` with `entries`: temp file, then rename, so a reader sees a whole old or a whole new
 * cache. Concurrent writers are harmless (last rename wins; every entry is checked on use anyway). No fsync: after
 * a crash a lost or torn cache is just ignored. Failures (read-only state directory, full disk) are ignored too.
 */
export function writeListingCache(path: string, entries: readonly ListingEntry<unknown>[]): void {
  replaceQuietly(path, () => JSON.stringify({ format: FORMAT, entries }).replace(nonAscii, escapeChar));
}

/**
 * The file in `vms/` that every change of a VM record (by any myhv process) replaces with a new random token, so
 * a process that listed the VMs knows, from one small read, whether anything changed since (`StateStore.list`).
 */
export const CHANGES_FILE = '.changes';

/**
 * Writes a new changes token (see CHANGES_FILE) over the old one, in place: three calls instead of a temp file and a
 * rename on every record write. A reader racing the write may see a mix of both tokens, which is as good: any
 * token but the one it listed with sends it back to the files. Failures are ignored (readers then rely on their
 * recheck time).
 */
export function writeChangesToken(path: string, token: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    writeSync(fd, token, 0, 'latin1');
  } catch {
    // Readers fall back to LIST_RECHECK_MS.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Writes `text()` to a temp file beside `path` and renames it over `path`; any failure leaves `path` as it was. */
function replaceQuietly(path: string, text: () => string): void {
  const temp = `${path}.${process.pid}.${Date.now()}.${tempCounter++}.tmp`;
  try {
    writeFileSync(temp, text(), { mode: 0o600, flag: 'wx' });
    renameSync(temp, path);
  } catch {
    try {
      rmSync(temp, { force: true });
    } catch {}
  }
}

/** Temp files of cache writers that died between write and rename (swept by reconcile). */
export function isListingCacheTemp(fileName: string): boolean {
  return fileName.startsWith(`${LISTING_CACHE_FILE}.`) && fileName.endsWith('.tmp');
}
