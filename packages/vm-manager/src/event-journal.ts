import {
  closeSync,
  constants,
  type FSWatcher,
  fstatSync,
  openSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  watch,
  writeSync,
} from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { Wakeup } from '@my-hypervisor/host-utils';
import { assertTrustedDir, ensurePrivateDir, unsafePermission, unsafePermissionsError } from './dir-trust.js';
import type { JournalEntry } from './events.js';

/** An event as the journal keeps it: when, and which process (`seq` counts that process's events). */
export type JournalEvent = JournalEntry & {
  /** ISO time the event was written. */
  readonly time: string;
  readonly pid: number;
  /** 1, 2, 3, … per writing process: `pid` + `seq` name an event. */
  readonly seq: number;
};

/** Size and rotation of the per-host event journal (`<stateDir>/events/journal.ndjson`). */
export interface JournalOptions {
  /** Rotate once the file is larger than this. Default 4 MiB. */
  readonly maxBytes?: number;
  /** Rotated files kept (`journal.1.ndjson` newest). Default 3. */
  readonly keep?: number;
}

/** What `VmManager.journal()` reads: filters, and whether to keep following new events. */
export interface JournalReadOptions {
  /** Only this VM's events. */
  readonly vm?: string;
  /** Only events written at or after this time. */
  readonly since?: Date;
  /** Only events written at or before this time; following ends once it has passed. */
  readonly until?: Date;
  /** After the history, wait for new events (from any process) until `signal` aborts. */
  readonly follow?: boolean;
  readonly signal?: AbortSignal;
}

/** How the journal's writes went in this process: a failed write never fails the VM operation, it is counted. */
export interface JournalStats {
  readonly appended: number;
  readonly failed: number;
  readonly lastError?: Error;
}

const FILE = 'journal.ndjson';
const ROTATED = /^journal\.(\d+)\.ndjson$/;
const LOCK = 'journal.rotate.lock';
/** A rotation lock older than this was left by a crashed process. */
const STALE_LOCK_MS = 30_000;
const POLL_MS = 250;
const rotatedName = (n: number) => `journal.${n}.ndjson`;

/**
 * An append-only NDJSON journal of manager events shared by every process on the host. Each event is one line
 * written with one `write` on an O_APPEND descriptor, so lines of concurrent writers never interleave; the file is
 * rotated (under a lock file) once it grows past `maxBytes`.
 */
export class EventJournal {
  readonly dir: string;
  readonly #path: string;
  readonly #maxBytes: number;
  readonly #keep: number;
  #fd: number | undefined;
  #ino = -1;
  #seq = 0;
  #appended = 0;
  #failed = 0;
  #lastError: Error | undefined;

  constructor(dir: string, options: JournalOptions = {}) {
    this.dir = dir;
    this.#path = join(dir, FILE);
    this.#maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
    this.#keep = Math.max(1, options.keep ?? 3);
  }

  get stats(): JournalStats {
    return {
      appended: this.#appended,
      failed: this.#failed,
      ...(this.#lastError ? { lastError: this.#lastError } : {}),
    };
  }

  /** Appends the event; never throws (a failure is counted in `stats`). Synchronous: one stat and one write. */
  append(event: JournalEntry): void {
    try {
      const line = Buffer.from(
        `${JSON.stringify({ time: new Date().toISOString(), pid: process.pid, seq: ++this.#seq, ...event })}\n`,
      );
      const size = this.#open();
      const written = writeSync(this.#fd!, line);
      if (written !== line.length)
        throw new Error(`short write to ${this.#path} (${written} of ${line.length})`);
      this.#appended++;
      if (size + written > this.#maxBytes) this.#rotate();
    } catch (error) {
      this.#failed++;
      this.#lastError = error instanceof Error ? error : new Error(String(error));
    }
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  /** The journal's events in the order they were written, filtered; then, with `follow`, new ones as they come. */
  read(options: JournalReadOptions = {}): AsyncGenerator<JournalEvent> {
    return readJournal(this.dir, options);
  }

  /** Opens (or reopens, after a rotation) the current file; returns its size before this write. */
  #open(): number {
    const st = statSync(this.#path, { throwIfNoEntry: false });
    if (this.#fd !== undefined && st && st.ino === this.#ino) return st.size;
    this.close();
    if (!st) ensurePrivateDir(this.dir, 'the event journal directory');
    const fd = openSync(
      this.#path,
      constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
      0o600,
    );
    const opened = fstatSync(fd);
    // Others able to write it could make up events.
    const problem = unsafePermission(this.#path, opened);
    if (problem) {
      closeSync(fd);
      throw unsafePermissionsError(problem, 'the event journal', this.#path);
    }
    this.#fd = fd;
    this.#ino = opened.ino;
    return opened.size;
  }

  /** One writer rotates (whoever takes the lock file); the others reopen when they see a new file at the path. */
  #rotate(): void {
    const lockPath = join(this.dir, LOCK);
    let lock: number;
    try {
      lock = openSync(lockPath, 'wx', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const st = statSync(lockPath, { throwIfNoEntry: false });
      if (st && Date.now() - st.mtimeMs > STALE_LOCK_MS) unlinkSync(lockPath);
      return;
    }
    try {
      // Another writer may have rotated between our write and the lock.
      const st = statSync(this.#path, { throwIfNoEntry: false });
      if (!st || st.size <= this.#maxBytes) return;
      for (let n = this.#keep; n >= 1; n--) {
        const from = n === 1 ? this.#path : join(this.dir, rotatedName(n - 1));
        try {
          renameSync(from, join(this.dir, rotatedName(n)));
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
      }
    } finally {
      closeSync(lock);
      unlinkSync(lockPath);
    }
  }
}

function parseLine(line: string): JournalEvent | undefined {
  if (line === '') return undefined;
  try {
    const event = JSON.parse(line) as JournalEvent;
    if (typeof event?.time !== 'string' || typeof event.vm !== 'string' || typeof event.type !== 'string')
      return undefined;
    return event;
  } catch {
    return undefined; // a torn line from a crash or a full disk: skipped, the next line is whole
  }
}

/** Reads a file handle from an offset to its end, line by line; keeps what follows the last newline for later. */
class LineReader {
  readonly #handle: FileHandle;
  readonly #decoder = new StringDecoder('utf8');
  readonly #buffer = Buffer.alloc(64 * 1024);
  #offset = 0;
  #partial = '';

  constructor(handle: FileHandle) {
    this.#handle = handle;
  }

  async *lines(): AsyncGenerator<string> {
    for (;;) {
      const { bytesRead } = await this.#handle.read(this.#buffer, 0, this.#buffer.length, this.#offset);
      if (bytesRead === 0) return;
      this.#offset += bytesRead;
      const parts = (this.#partial + this.#decoder.write(this.#buffer.subarray(0, bytesRead))).split('\n');
      this.#partial = parts.pop() ?? '';
      yield* parts;
    }
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

async function openIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * The rotated files oldest first, then the current one, each opened, in a pass no rotation interleaved (the
 * current file kept its inode throughout): handles stay readable whatever is renamed or deleted afterwards.
 */
async function openChain(
  dir: string,
  path: string,
): Promise<{ name: string; handle: FileHandle; ino: number }[]> {
  for (;;) {
    const before = statSync(path, { throwIfNoEntry: false })?.ino;
    const names = listDir(dir)
      .map((name) => ({ name, n: Number(ROTATED.exec(name)?.[1]) }))
      .filter((f) => Number.isInteger(f.n))
      .sort((a, b) => b.n - a.n)
      .map((f) => f.name);
    const opened: { name: string; handle: FileHandle; ino: number }[] = [];
    for (const name of [...names, FILE]) {
      const handle = await openIfExists(join(dir, name));
      if (handle) opened.push({ name, handle, ino: (await handle.stat()).ino });
    }
    if (statSync(path, { throwIfNoEntry: false })?.ino === before) return opened;
    await Promise.all(opened.map((file) => file.handle.close()));
  }
}

/**
 * Reads the journal in `dir`: rotated files oldest first, then the current one, then (with `follow`) whatever is
 * appended, moving on to the new file when the current one is rotated away. UNSAFE_PERMISSIONS when the directory
 * could have been written by others.
 */
export async function* readJournal(
  dir: string,
  { vm, since, until, follow = false, signal }: JournalReadOptions = {},
): AsyncGenerator<JournalEvent> {
  assertTrustedDir(dir, 'the event journal directory');
  const path = join(dir, FILE);
  const sinceIso = since?.toISOString();
  const untilIso = until?.toISOString();
  const wanted = (e: JournalEvent | undefined): e is JournalEvent =>
    e !== undefined &&
    (vm === undefined || e.vm === vm) &&
    (sinceIso === undefined || e.time >= sinceIso) &&
    (untilIso === undefined || e.time <= untilIso);
  /** The wanted events of what `reader` has left. */
  async function* wantedFrom(reader: LineReader): AsyncGenerator<JournalEvent> {
    for await (const line of reader.lines()) {
      const event = parseLine(line);
      if (wanted(event)) yield event;
    }
  }

  const wakeup = new Wakeup();
  let watcher: FSWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  let ended = signal?.aborted === true;
  const end = () => {
    ended = true;
    wakeup.wake();
  };
  signal?.addEventListener('abort', end, { once: true });
  // Opened first: if it is rotated while older files are read, it is still read (once) through this handle.
  let current = await openIfExists(path);
  try {
    const currentIno = current ? (await current.stat()).ino : undefined;
    const rotated = listDir(dir)
      .map((name) => ({ name, n: Number(ROTATED.exec(name)?.[1]) }))
      .filter((f) => Number.isInteger(f.n))
      .sort((a, b) => b.n - a.n);
    for (const { name } of rotated) {
      const handle = await openIfExists(join(dir, name));
      if (!handle) continue;
      try {
        if ((await handle.stat()).ino === currentIno) continue;
        yield* wantedFrom(new LineReader(handle));
      } finally {
        await handle.close();
      }
    }
    if (follow && !ended) {
      if (until) timer = setTimeout(end, Math.max(0, until.getTime() - Date.now()));
      try {
        watcher = watch(dir, { persistent: false }, wakeup.wake);
        watcher.on('error', () => {});
      } catch {
        // Polling alone.
      }
    }
    let reader = current ? new LineReader(current) : undefined;
    let ino = currentIno;
    /** The file read last (the current one, or the one finished before it was replaced), to resume after it. */
    let lastIno = currentIno;
    for (;;) {
      const last = ended;
      wakeup.take();
      if (reader) yield* wantedFrom(reader);
      if (!follow || last) return;
      const st = statSync(path, { throwIfNoEntry: false });
      if (st && st.ino !== ino) {
        // Rotated (or first created): finish what the old file got before the rename, then on to the new one.
        if (reader) yield* wantedFrom(reader);
        await current?.close();
        // Several rotations may have come since the last look: every file newer than the one just finished is
        // read, oldest first, before the current one (a file already rotated past `keep` is gone: a gap).
        const chain = await openChain(dir, path);
        const start = chain.findIndex((file) => file.ino === lastIno) + 1;
        for (const file of chain.slice(0, start)) await file.handle.close();
        const newer = chain.slice(start);
        const newest = newer.at(-1);
        const isCurrent = newest?.name === FILE;
        for (const file of isCurrent ? newer.slice(0, -1) : newer) {
          try {
            yield* wantedFrom(new LineReader(file.handle));
          } finally {
            await file.handle.close();
          }
          lastIno = file.ino;
        }
        current = isCurrent ? newest.handle : undefined;
        ino = isCurrent ? newest.ino : undefined;
        if (ino !== undefined) lastIno = ino;
        reader = current ? new LineReader(current) : undefined;
        continue;
      }
      await wakeup.sleep(POLL_MS);
    }
  } finally {
    signal?.removeEventListener('abort', end);
    if (timer) clearTimeout(timer);
    watcher?.close();
    await current?.close();
  }
}
