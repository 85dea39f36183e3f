import type { CommandContext } from './context.js';
import { CliError } from './errors.js';
import { listenForInterrupt } from './interrupt.js';

/**
 * Runs a manager operation that Ctrl-C (or SIGTERM) aborts instead of killing the process: the manager undoes the
 * completed steps, then the command exits 130. Nothing is left half-made.
 */
export async function interruptible<T>(
  ctx: CommandContext,
  operation: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  using interrupt = listenForInterrupt(ctx.io, (name) =>
    ctx.out.note(`${name}: stopping, undoing the steps done so far…`),
  );
  try {
    return await operation(interrupt.signal);
  } catch (error) {
    if (interrupt.received) {
      throw new CliError(
        'INTERRUPTED',
        `interrupted by ${interrupt.received}; the steps done so far were undone`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
}
