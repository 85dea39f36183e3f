import { type FSWatcher, lstatSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Wakeup } from '@my-hypervisor/host-utils';
import type { ChvClient } from './chv-client.js';
import { abortError, ChvApiError } from './errors.js';
import type { VmmPingResponse } from './schemas/responses.js';

/** What `waitForApiReady` pings, its time budget, and the process whose exit ends the wait early. */
export interface WaitForApiReadyOptions {
  /** The client that pings (its socket is the one waited for). */
  readonly client: ChvClient;
  /** Total budget. Default 10 s. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Settles when the VMM process ends: waiting stops at once with EXITED. */
  readonly exited?: Promise<unknown>;
  /**
   * Watch the socket's directory (default). With false, only poll every `pollIntervalMs` (the baseline the
   * benchmark compares against).
   */
  readonly watch?: boolean;
  /** Poll interval without watching; with watching, the safety poll for a missed event. Default 50 / 100 ms. */
  readonly pollIntervalMs?: number;
}

/**
 * Waits until the VMM's API socket exists AND `vmm.ping` answers, and returns the ping. The socket's directory
 * is watched (inotify), so readiness is seen within a millisecond or two of the bind instead of a polling
 * interval later; a slow safety poll covers filesystems without change events. A connection refused between
 * bind and listen (a Node server leaves milliseconds there; Rust's does not) is retried every millisecond for
 * the first 100 ms, then every 10 ms.
 */
export async function waitForApiReady(
  socketPath: string,
  options: WaitForApiReadyOptions,
): Promise<VmmPingResponse> {
  const { client, exited, signal } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = signal
    ? AbortSignal.any([signal, AbortSignal.timeout(Math.ceil(timeoutMs))])
    : AbortSignal.timeout(Math.ceil(timeoutMs));
  const started = performance.now();
  let exitedNow = false;
  // A wake-up that arrives while we are checking is remembered, so a change is never missed.
  const wakeup = new Wakeup();
  const onExit = () => {
    exitedNow = true;
    wakeup.wake();
  };
  exited?.then(onExit, onExit);
  const name = basename(socketPath);
  let watcher: FSWatcher | undefined;
  if (options.watch ?? true) {
    try {
      watcher = watch(dirname(socketPath), { persistent: false }, (_event, filename) => {
        if (!filename || filename === name) wakeup.wake();
      });
      watcher.on('error', () => {
        watcher?.close();
        watcher = undefined;
      });
    } catch {
      // No inotify here (or no directory yet): polling alone will do.
      watcher = undefined;
    }
  }
  const pollMs = options.pollIntervalMs ?? (watcher ? 100 : 50);
  const onAbort = wakeup.wake;
  deadline.addEventListener('abort', onAbort, { once: true });
  const exitedError = () => new ChvApiError('EXITED', 'the VMM exited before its API was ready');
  try {
    let refusals = 0;
    for (;;) {
      if (exitedNow) throw exitedError();
      if (deadline.aborted) throw readinessAborted(signal, timeoutMs);
      wakeup.take();
      if (isSocket(socketPath)) {
        try {
          const remaining = Math.max(1, timeoutMs - (performance.now() - started));
          return await client.vmmPing({ signal: deadline, timeoutMs: remaining });
        } catch (error) {
          if (exitedNow) throw exitedError();
          if (deadline.aborted) throw readinessAborted(signal, timeoutMs);
          if (!(ChvApiError.isInstance(error) && error.code === 'UNAVAILABLE')) throw error;
          // Bound but not yet listening, or a stale file: try again very soon.
          await sleep(++refusals <= 100 ? 1 : 10);
          continue;
        }
      }
      await wakeup.sleep(pollMs);
    }
  } finally {
    deadline.removeEventListener('abort', onAbort);
    watcher?.close();
  }
}

function readinessAborted(signal: AbortSignal | undefined, timeoutMs: number): ChvApiError {
  if (signal?.aborted) return abortError(signal, 'waiting for the VMM API');
  return new ChvApiError('TIMEOUT', `the VMM API did not answer vmm.ping within ${timeoutMs} ms`);
}

// Synchronous on purpose: one lstat is microseconds, a thread-pool round trip is not.
function isSocket(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false })?.isSocket() ?? false;
}
