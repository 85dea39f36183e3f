import { ExecaError, execa } from 'execa';
import { abortError, GuestImageError, type GuestImageErrorCode } from './errors.js';

export interface RunToolOptions {
  readonly signal?: AbortSignal | undefined;
  readonly cwd?: string;
  /** Bytes written to the tool's stdin. */
  readonly input?: Uint8Array;
  /** The most stdout bytes accepted; past it the tool is killed and TOO_LARGE thrown. */
  readonly maxOutputBytes?: number;
  /** The code for a tool that ran and failed. */
  readonly failCode: GuestImageErrorCode;
  /** What the tool was doing, for the message: `decompressing the xz payload`. */
  readonly doing: string;
}

const DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024;

/** Runs `file args` (an argv, never a shell line) and returns its stdout bytes; every failure is our error. */
export async function runTool(
  file: string,
  args: readonly string[],
  options: RunToolOptions,
): Promise<Uint8Array> {
  const command = [file, ...args];
  try {
    const result = await execa(file, args, {
      encoding: 'buffer',
      stripFinalNewline: false,
      maxBuffer: options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT,
      ...(options.input ? { input: options.input } : { stdin: 'ignore' }),
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.signal ? { cancelSignal: options.signal } : {}),
      env: { LC_ALL: 'C' },
    });
    return result.stdout;
  } catch (error) {
    if (options.signal?.aborted) throw abortError(options.signal);
    if (!(error instanceof ExecaError)) throw error;
    const raw: unknown = error.stderr;
    const stderr =
      raw instanceof Uint8Array ? new TextDecoder().decode(raw) : typeof raw === 'string' ? raw : '';
    const details = { command, exitCode: error.exitCode ?? null, signal: error.signal ?? null, stderr };
    if (error.code === 'ENOENT') {
      throw new GuestImageError(
        'TOOL_MISSING',
        `${doingCap(options.doing)} needs \`${file}\`, which is not installed`,
        {
          cause: error,
          details,
        },
      );
    }
    if (error.isMaxBuffer) {
      throw new GuestImageError(
        'TOO_LARGE',
        `${doingCap(options.doing)}: \`${file}\` wrote more than ${options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT} bytes`,
        { cause: error, details },
      );
    }
    const last = stderr.trim().split('\n').at(-1) ?? '';
    throw new GuestImageError(
      options.failCode,
      `${doingCap(options.doing)} failed: ${file} exited with ${error.exitCode ?? error.signal}${last ? `: ${last}` : ''}`,
      { cause: error, details },
    );
  }
}

function doingCap(doing: string): string {
  return doing.charAt(0).toUpperCase() + doing.slice(1);
}
