/**
 * Collects jobs submitted in the same turn of the event loop into one wave and hands the wave to `runWave`, one
 * wave at a time. The flush waits for `setImmediate`, after every pending microtask, so calls made together
 * through `Promise.all` and a few `await`s still land in the same wave; jobs submitted while a wave runs form the
 * next one. `runWave` must settle every job itself and never reject.
 */
export class WaveQueue<Job> {
  readonly #runWave: (jobs: Job[]) => Promise<void>;
  #pending: Job[] = [];
  #scheduled = false;
  #running: Promise<void> | undefined;

  constructor(runWave: (jobs: Job[]) => Promise<void>) {
    this.#runWave = runWave;
  }

  submit(job: Job): void {
    this.#pending.push(job);
    this.#schedule();
  }

  /** Takes a job that has not started back out of the queue; false when it already runs (or ran). */
  withdraw(job: Job): boolean {
    const index = this.#pending.indexOf(job);
    if (index < 0) return false;
    this.#pending.splice(index, 1);
    return true;
  }

  #schedule(): void {
    if (this.#scheduled || this.#running) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    const jobs = this.#pending;
    this.#pending = [];
    if (jobs.length === 0) return;
    this.#running = this.#runWave(jobs).finally(() => {
      this.#running = undefined;
      if (this.#pending.length > 0) this.#schedule();
    });
  }
}
