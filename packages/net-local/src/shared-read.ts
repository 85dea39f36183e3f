import { type PendingJob, submitJob } from './pending-job.js';
import { WaveQueue } from './wave-queue.js';

/**
 * One read (a listing) shared by every caller that asks for it in the same tick: 20 concurrent conflict checks cost
 * one `nft -j list` process, not 20. A caller asking after a read started gets the next one, so it never sees
 * state older than its own request.
 */
export class SharedRead<T> {
  readonly #queue: WaveQueue<PendingJob<T>>;

  constructor(read: () => Promise<T>) {
    this.#queue = new WaveQueue(async (jobs) => {
      try {
        const value = await read();
        for (const job of jobs) job.resolve(value);
      } catch (error) {
        for (const job of jobs) job.reject(error);
      }
    });
  }

  get(signal?: AbortSignal): Promise<T> {
    return submitJob<T, PendingJob<T>>(this.#queue, (settle) => settle, signal);
  }
}
