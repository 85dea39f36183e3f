import { type FSWatcher, statSync, watch } from 'node:fs';
import { open } from 'node:fs/promises';
import { Wakeup } from './wakeup.js';

/** Options of `followFile`: when the feed ends, and where it starts. */
export interface FollowFileOptions {
  /** Settles when the writer is done: one last read, then the feed ends. */
  readonly until?: Promise<unknown>;
  /** Ends the feed (without an error). */
  readonly signal?: AbortSignal;
  /** Safety poll while the file watch is silent (some filesystems send no events). Default 200 ms. */
  readonly pollMs?: number;
  /** Byte offset to start from (e.g. what was already shown). Default 0. */
  readonly start?: number;
}

/**
 * Follows a growing file (`tail -F`): yields what is there from `start`, then what is appended, until `until`
 * settles (after a last read) or `signal` aborts. A file that does not exist yet is waited for; one that is
 * truncated or replaced (another inode at the path) is read again from its beginning.
 */
export async function* followFile(
  path: string,
  { until, signal, pollMs = 200, start = 0 }: FollowFileOptions = {},
): AsyncGenerator<Buffer> {
  let done = false;
  const wakeup = new Wakeup();
  const finish = () => {
    done = true;
    wakeup.wake();
  };
  until?.then(finish, finish);
  signal?.addEventListener('abort', finish, { once: true });
  let watcher: FSWatcher | undefined;
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  let inode: number | undefined;
  let offset = start;
  const buffer = Buffer.alloc(64 * 1024);
  async function* drain(from: Awaited<ReturnType<typeof open>>): AsyncGenerator<Buffer> {
    for (;;) {
      const { bytesRead } = await from.read(buffer, 0, buffer.length, offset);
      if (bytesRead === 0) return;
      offset += bytesRead;
      yield Buffer.from(buffer.subarray(0, bytesRead));
    }
  }
  try {
    for (;;) {
      const last = done;
      wakeup.take();
      if (handle && statSync(path, { throwIfNoEntry: false })?.ino !== inode) {
        // Replaced (or removed): finish what the old file held, then start on the new one.
        yield* drain(handle);
        await handle.close();
        handle = undefined;
        watcher?.close();
        watcher = undefined;
        offset = 0;
      }
      if (!handle) {
        handle = await open(path, 'r').catch(() => undefined);
        if (handle) inode = (await handle.stat()).ino;
        if (handle && !watcher) {
          try {
            watcher = watch(path, { persistent: false }, wakeup.wake);
            watcher.on('error', () => {});
          } catch {
            // Polling alone.
          }
        }
      }
      if (handle) {
        if ((await handle.stat()).size < offset) offset = 0; // truncated: start over
        yield* drain(handle);
      }
      if (last || signal?.aborted) return;
      await wakeup.sleep(pollMs);
    }
  } finally {
    signal?.removeEventListener('abort', finish);
    watcher?.close();
    await handle?.close();
  }
}
