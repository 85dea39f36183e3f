/**
 * Settles like `promise`, or rejects with `abortError(signal)` as soon as `signal` aborts. The work behind
 * `promise` goes on: use it where several callers share one piece of work (a cached detection) and one caller
 * giving up must not cancel it. `abortError` turns the signal into the caller's own error (ABORTED, TIMEOUT).
 */
export function raceSignal<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  abortError: (signal: AbortSignal) => unknown,
): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.finally(() => signal.removeEventListener('abort', onAbort)).then(resolve, reject);
  });
}
