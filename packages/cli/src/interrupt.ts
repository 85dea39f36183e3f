import type { CliIo } from './cli-io.js';

/**
 * A signal that fires on Ctrl-C (SIGINT) or SIGTERM while a long command runs, or on `io.signal` when the caller
 * gave one. While it is held, the process does not die on those signals: the command cleans up and exits 130.
 */
export interface Interrupt extends Disposable {
  readonly signal: AbortSignal;
  /** Which signal arrived, once one did. */
  readonly received: string | undefined;
}

export function listenForInterrupt(io: CliIo, onSignal?: (name: string) => void): Interrupt {
  const controller = new AbortController();
  let received: string | undefined;
  const fire = (name: string) => {
    if (received === undefined) {
      received = name;
      controller.abort(new Error(`interrupted by ${name}`));
    }
    onSignal?.(name);
  };
  const external = io.signal;
  const onExternal = () => fire('SIGINT');
  const onInt = () => fire('SIGINT');
  const onTerm = () => fire('SIGTERM');
  if (external) {
    if (external.aborted) fire('SIGINT');
    else external.addEventListener('abort', onExternal, { once: true });
  } else {
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  }
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    [Symbol.dispose]() {
      external?.removeEventListener('abort', onExternal);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    },
  };
}
