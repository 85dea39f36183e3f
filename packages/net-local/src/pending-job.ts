import { abortError, throwIfAborted } from '@my-hypervisor/net-ops';
import type { WaveQueue } from './wave-queue.js';

/** A caller's request waiting in a WaveQueue, settled by the wave that runs it. */
export interface PendingJob<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

/**
 * Submits `job` (built around the promise's resolvers) to `queue`. An aborted `signal` rejects with ABORTED while the
 * job still waits in the queue; once its process has started the job runs to completion, because one process carries
 * many callers' work and killing it would leave the others half-done.
 */
export function submitJob<T, J extends PendingJob<T>>(
  queue: WaveQueue<J>,
  make: (settle: PendingJob<T>) => J,
  signal: AbortSignal | undefined,
): Promise<T> {
  throwIfAborted(signal);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      if (queue.withdraw(job)) reject(abortError(signal!));
    };
    const job = make({
      resolve: (value) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(value);
      },
      reject: (error) => {
        signal?.removeEventListener('abort', onAbort);
        reject(error);
      },
    });
    signal?.addEventListener('abort', onAbort, { once: true });
    queue.submit(job);
  });
}
