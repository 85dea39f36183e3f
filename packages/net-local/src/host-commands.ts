import { abortError, NetOpsError } from '@my-hypervisor/net-ops';
import { type FailureText, notInstalledError, type Program } from './command-error.js';
import type { CommandResult, CommandRunner } from './command-runner.js';

/** One finished command: the argv that ran and what it left. */
export interface CommandOutcome extends CommandResult {
  readonly program: Program;
  readonly command: readonly string[];
}

/**
 * Runs the host's tools, inside a named network namespace when one is configured: `ip -n NS …` for ip, and
 * `ip netns exec NS <tool> …` for the others. Every process gets the configured timeout; a process that cannot
 * start becomes BACKEND_UNAVAILABLE naming the Debian package to install.
 */
export class HostCommands {
  readonly netns: string | undefined;
  readonly #runner: CommandRunner;
  readonly #timeoutMs: number;

  constructor({ netns, runner, timeoutMs }: { netns?: string; runner: CommandRunner; timeoutMs: number }) {
    this.netns = netns;
    this.#runner = runner;
    this.#timeoutMs = timeoutMs;
  }

  /** The argv (file first) that runs `program args` in the configured namespace. */
  argv(program: Program, args: readonly string[]): string[] {
    if (this.netns === undefined) return [program, ...args];
    if (program === 'ip') return ['ip', '-n', this.netns, ...args];
    return ['ip', 'netns', 'exec', this.netns, program, ...args];
  }

  /**
   * Runs `program args` to completion. Callers' signals are deliberately not passed to shared batch processes (one
   * caller's abort must not kill the others' work); `signal` is for single-caller reads.
   */
  async run(
    program: Program,
    args: readonly string[],
    options: { input?: string; signal?: AbortSignal } = {},
  ): Promise<CommandOutcome> {
    const [file, ...rest] = this.argv(program, args);
    const command = [file!, ...rest];
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    try {
      const result = await this.#runner(file!, rest, {
        ...(options.input === undefined ? {} : { input: options.input }),
        signal,
      });
      return { ...result, program, command };
    } catch (error) {
      if (signal.aborted) {
        const failure = abortError(signal);
        throw new NetOpsError(failure.code, `${program} ${failure.message}`, {
          cause: signal.reason,
          details: { command },
        });
      }
      if ((error as { code?: unknown }).code === 'ENOENT') throw notInstalledError(program, command, error);
      throw new NetOpsError('BACKEND_FAILURE', `${program} could not run: ${(error as Error).message}`, {
        cause: error,
        details: { command },
      });
    }
  }

  /** The failure description of `outcome` (optionally narrowed to one batch line's `text`). */
  failure(outcome: CommandOutcome, text?: string, line?: number): FailureText {
    return {
      program: outcome.program,
      command: outcome.command,
      exitCode: outcome.exitCode,
      stderr: outcome.stderr,
      ...(text === undefined ? {} : { text }),
      ...(line === undefined ? {} : { line }),
      ...(this.netns === undefined ? {} : { netns: this.netns }),
    };
  }
}
