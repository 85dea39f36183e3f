/**
 * Runs tasks one at a time per key (a VM's name), in arrival order, and tasks of different keys concurrently.
 * The manager's lock would serialise them too, but across processes it waits by polling and gives up with BUSY;
 * inside the daemon, work on one VM simply queues. A task whose signal aborts while it waits never runs.
 */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  /** Keys with work queued or running. */
  get size(): number {
    return this.#tails.size;
  }

  run<T>(key: string, task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const previous = this.#tails.get(key);
    const result = previous ? previous.then(() => startUnlessAborted(task, signal)) : task();
    const tail = result.then(noop, noop);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}

function startUnlessAborted<T>(task: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return task();
}

function noop(): void {}
