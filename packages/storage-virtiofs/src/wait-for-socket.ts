import { type FSWatcher, watch } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { isUnixSocketListening } from './proc.js';

export interface WaitForSocketOptions {
  readonly signal: AbortSignal;
  /** Re-check interval once the socket file exists but is not listening yet (bind() before listen()). */
  readonly settleIntervalMs?: number;
  /** Safety re-check while the directory watch is silent; also the poll interval when fs.watch is unavailable. */
  readonly fallbackIntervalMs?: number;
}

/**
 * Resolves once a socket bound to `socketPath` is listening. Watches the directory for the socket file, then
 * confirms in /proc/net/unix; never connects, because virtiofsd serves one front-end and exits when it leaves.
 * Call it before spawning the daemon so no event is missed. Rejects with `signal.reason` when aborted.
 */
export function waitForListeningSocket(socketPath: string, options: WaitForSocketOptions): Promise<void> {
  const { signal, settleIntervalMs = 2, fallbackIntervalMs } = options;
  const name = basename(socketPath);
  return new Promise<void>((resolve, reject) => {
    let watcher: FSWatcher | undefined;
    let settleTimer: NodeJS.Timeout | undefined;
    let fallbackTimer: NodeJS.Timeout | undefined;
    let checking = false;
    let again = false;
    let done = false;

    const finish = (error?: unknown) => {
      if (done) return;
      done = true;
      watcher?.close();
      clearTimeout(settleTimer);
      clearInterval(fallbackTimer);
      signal.removeEventListener('abort', onAbort);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onAbort = () => finish(signal.reason ?? new Error('aborted'));

    const check = async () => {
      if (done) return;
      if (checking) {
        again = true;
        return;
      }
      checking = true;
      try {
        if (await isUnixSocketListening(socketPath)) return finish();
        // The file appears at bind(); listen() follows without another directory event, so poll briefly.
        const info = await lstat(socketPath).catch(() => undefined);
        if (info?.isSocket() && !done) {
          clearTimeout(settleTimer);
          settleTimer = setTimeout(() => void check(), settleIntervalMs);
        }
      } catch (error) {
        finish(error);
      } finally {
        checking = false;
        if (again && !done) {
          again = false;
          void check();
        }
      }
    };

    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      watcher = watch(dirname(socketPath), { persistent: false }, (_event, filename) => {
        if (filename === null || filename === name) void check();
      });
      watcher.on('error', () => {
        // The watch broke (e.g. the directory vanished): keep going on the poll alone.
        watcher?.close();
        watcher = undefined;
        clearInterval(fallbackTimer);
        fallbackTimer = setInterval(() => void check(), fallbackIntervalMs ?? 10);
      });
    } catch {
      watcher = undefined;
    }
    fallbackTimer = setInterval(() => void check(), fallbackIntervalMs ?? (watcher ? 250 : 10));
    void check();
  });
}
