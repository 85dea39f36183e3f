import { type FSWatcher, watch } from 'node:fs';
import { open } from 'node:fs/promises';

/**
 * Follows a growing file (`tail -f`): yields what is there, then what is appended, until `until` settles (after a
 * last read) or `signal` aborts. Used for the event monitor of a detached VMM, which writes to a file because
 * no pipe can outlive the process that started it.
 */
export async function* followFile(
  path: string,
  { until, signal, pollMs = 200 }: { until?: Promise<unknown>; signal?: AbortSignal; pollMs?: number },
): AsyncGenerator<Buffer> {
  let done = false;
  let woken = false;
  let wakeUp: (() => void) | undefined;
  const wake = () => {
    const resolve = wakeUp;
    wakeUp = undefined;
    if (resolve) resolve();
    else woken = true;
  };
  const finish = () => {
    done = true;
    wake();
  };
  until?.then(finish, finish);
  signal?.addEventListener('abort', finish, { once: true });
  let watcher: FSWatcher | undefined;
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  let offset = 0;
  const buffer = Buffer.alloc(64 * 1024);
  try {
    for (;;) {
      const last = done;
      woken = false;
      if (!handle) {
        handle = await open(path, 'r').catch(() => undefined);
        if (handle && !watcher) {
          try {
            watcher = watch(path, { persistent: false }, wake);
            watcher.on('error', () => {});
          } catch {
            // Polling alone.
          }
        }
      }
      if (handle) {
        for (;;) {
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
          if (bytesRead === 0) break;
          offset += bytesRead;
          yield Buffer.from(buffer.subarray(0, bytesRead));
        }
      }
      if (last || signal?.aborted) return;
      if (woken) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, pollMs);
        wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    signal?.removeEventListener('abort', finish);
    watcher?.close();
    await handle?.close();
  }
}
