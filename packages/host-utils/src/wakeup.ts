/**
 * A wake-up for a loop that checks something, then sleeps until a watcher says it changed or a safety poll
 * elapses. A wake-up that arrives while the loop is checking is remembered, so a change is never missed.
 */
export class Wakeup {
  #pending = false;
  #resolve: (() => void) | undefined;

  /** Ends the current `sleep`, or the next one if none is in progress. Safe to pass as a callback. */
  readonly wake = (): void => {
    const resolve = this.#resolve;
    this.#resolve = undefined;
    if (resolve) resolve();
    else this.#pending = true;
  };

  /** Forgets a remembered wake-up (call before checking); true when there was one. */
  take(): boolean {
    const pending = this.#pending;
    this.#pending = false;
    return pending;
  }

  /** Resolves after `ms`, at once if a wake-up is remembered, or as soon as `wake()` is called. */
  sleep(ms: number): Promise<void> {
    if (this.take()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(this.wake, ms);
      this.#resolve = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
