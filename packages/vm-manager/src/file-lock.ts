import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isProcessAlive, processStartTime } from '@my-hypervisor/host-utils';
import { unsafePermission, unsafePermissionsError } from './dir-trust.js';
import { throwIfAborted, VmManagerError } from './errors.js';

/** This process's start time: with the pid, it tells a lock holder that died from one whose pid was reused. */
const selfStartTime = processStartTime(process.pid);

interface LockOwner {
  readonly pid: number;
  readonly start: number | null;
  readonly nonce: string;
}

/** A lock file whose owner just died mid-write is unreadable; after this long it is treated as stale. */
const UNREADABLE_GRACE_MS = 2_000;
/** A breaker holds the `.break` file for microseconds; one older than this belongs to a breaker that died. */
const BREAK_STALE_MS = 5_000;

async function tryCreate(path: string, content: string): Promise<boolean> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
  return true;
}

/** The lock's content and age; UNSAFE_PERMISSIONS for a lock file another user owns or could write (or a link). */
async function readOwner(
  path: string,
): Promise<{ raw: string; owner?: LockOwner; mtimeMs: number } | undefined> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') {
      const stat = await fs.lstat(path);
      throw unsafePermissionsError(
        { path, uid: stat.uid, mode: stat.mode & 0o7777, problem: 'a symbolic link', fix: `rm ${path}` },
        'the lock file',
      );
    }
    throw error;
  }
  try {
    const stat = await handle.stat();
    const problem = unsafePermission(path, stat);
    if (problem) throw unsafePermissionsError(problem, 'the lock file');
    const raw = await handle.readFile('utf8');
    try {
      return { raw, owner: JSON.parse(raw) as LockOwner, mtimeMs: stat.mtimeMs };
    } catch {
      return { raw, mtimeMs: stat.mtimeMs };
    }
  } finally {
    await handle.close();
  }
}

/**
 * An exclusive lock across processes: a file created with O_EXCL holding the owner's pid and start time. A lock
 * whose owner died (pid gone, or recycled: start time differs) is broken, under a second O_EXCL file so that two
 * breakers never both win. AsyncDisposable: `await using lock = await FileLock.acquire(path)`.
 */
export class FileLock implements AsyncDisposable {
  readonly path: string;
  readonly #content: string;
  #released = false;

  private constructor(path: string, content: string) {
    this.path = path;
    this.#content = content;
  }

  static async acquire(
    path: string,
    {
      signal,
      timeoutMs = 30_000,
      what = path,
    }: { signal?: AbortSignal; timeoutMs?: number; what?: string } = {},
  ): Promise<FileLock> {
    const owner: LockOwner = {
      pid: process.pid,
      start: selfStartTime ?? null,
      nonce: randomBytes(8).toString('hex'),
    };
    const content = JSON.stringify(owner);
    const deadline = Date.now() + timeoutMs;
    let delay = 2;
    for (;;) {
      throwIfAborted(signal);
      if (await tryCreate(path, content)) return new FileLock(path, content);
      const current = await readOwner(path);
      if (current === undefined) continue;
      const stale = current.owner
        ? !isProcessAlive(current.owner.pid, current.owner.start ?? undefined)
        : Date.now() - current.mtimeMs > UNREADABLE_GRACE_MS;
      if (stale) {
        await breakStale(path, current.raw);
        continue;
      }
      if (Date.now() >= deadline) {
        throw new VmManagerError(
          'BUSY',
          `${what} is locked by process ${current.owner?.pid ?? '?'}; try again`,
          {
            details: { lock: path, pid: current.owner?.pid },
          },
        );
      }
      await sleep(delay, undefined, { signal }).catch(() => undefined);
      delay = Math.min(delay * 2, 50);
    }
  }

  /** Releases the lock if this handle still owns it. Idempotent. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const current = await readOwner(this.path);
    if (current?.raw === this.#content) await fs.rm(this.path, { force: true });
  }

  close(): Promise<void> {
    return this.release();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

async function breakStale(path: string, staleRaw: string): Promise<void> {
  const breakPath = `${path}.break`;
  if (!(await tryCreate(breakPath, String(process.pid)))) {
    const stat = await fs.stat(breakPath).catch(() => undefined);
    if (stat && Date.now() - stat.mtimeMs > BREAK_STALE_MS) await fs.rm(breakPath, { force: true });
    await sleep(1);
    return;
  }
  try {
    const current = await readOwner(path);
    if (current?.raw === staleRaw) await fs.rm(path, { force: true });
  } finally {
    await fs.rm(breakPath, { force: true });
  }
}

/** True when a lock file exists and its owner is alive: someone is working on that VM right now. */
export async function isLockHeld(path: string): Promise<boolean> {
  const current = await readOwner(path);
  if (!current) return false;
  if (!current.owner) return Date.now() - current.mtimeMs <= UNREADABLE_GRACE_MS;
  return isProcessAlive(current.owner.pid, current.owner.start ?? undefined);
}
