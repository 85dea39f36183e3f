import { execa } from 'execa';

/** What a finished process left: its exit code and both output streams, in full. */
export interface CommandResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Per-command options of a `CommandRunner`: stdin text and cancellation. */
export interface CommandRunOptions {
  /** Written to the process's stdin, which is then closed (a batch script for `ip -batch -`, `nft -f -`, …). */
  readonly input?: string;
  /** Kills the process when aborted. */
  readonly signal?: AbortSignal;
}

/**
 * Runs `file` with `args` as an argv array, never through a shell. Resolves for every exit code (a failed command
 * is a result, not an exception); rejects only when the program could not be started (an error whose `code` is
 * `'ENOENT'` when it is not installed) or when `signal` aborted it. Inject your own to record, fake or wrap
 * (`sudo`, a remote host) the commands `LocalOps` runs.
 */
export type CommandRunner = (
  file: string,
  args: readonly string[],
  options?: CommandRunOptions,
) => Promise<CommandResult>;

/** The default runner: execa with `reject: false`, `LC_ALL=C` so error texts are the English ones we classify. */
export const execaRunner: CommandRunner = async (file, args, options = {}) => {
  const result = await execa(file, args, {
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
    ...(options.signal ? { cancelSignal: options.signal } : {}),
    reject: false,
    stripFinalNewline: false,
    env: { LC_ALL: 'C' },
  });
  // No exit code: the process never ran (ENOENT, EACCES) or was killed; both are exceptions for our callers.
  if (result.exitCode === undefined) throw result;
  return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
};
