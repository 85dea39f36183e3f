import { spawn } from 'node:child_process';
import { constants, promises as fs, type Stats } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { raceSignal } from '@my-hypervisor/host-utils';
import { ChvApiError, invalidArgument, throwIfAborted } from './errors.js';

/** What `<binary> --version` said. */
export interface VmmBinaryInfo {
  /** `simulator` for the simulator of `@my-hypervisor/chv-client/testing`, which answers like the real VMM. */
  readonly kind: 'cloud-hypervisor' | 'simulator';
  /** As printed, without the `v`: `53.0.0` (the simulator prints `53.0`). */
  readonly version: string;
  /** The executable that was checked (resolved on PATH when `command` had no slash). */
  readonly path: string;
}

/** Options of `checkVmmBinary`: arguments before `--version`, environment, time budget and cancellation. */
export interface CheckVmmBinaryOptions {
  /** Arguments before `--version`, as for `ChvProcess.spawn`'s `commandArgs` (e.g. the simulator's script). */
  readonly args?: readonly string[];
  /** Named in the INVALID_ARGUMENT error (`details.field`). Default `command`. */
  readonly field?: string;
  /** Budget for `--version` to answer. Default 5 s. */
  readonly timeoutMs?: number;
  /** Added to this process's environment (PATH here also decides where a bare name is looked up). */
  readonly env?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
}

const DEFAULT_TIMEOUT_MS = 5_000;
const MAX_OUTPUT_BYTES = 16 * 1024;
const VERSION_LINE = /^cloud-hypervisor v(\d+\.\d+(?:\.\d+)?)(?:[-+.\w]*)(.*)$/;

/** Answers per binary file (path, inode, mtime, size) and arguments: a VMM that is replaced is asked again. */
const answers = new Map<string, Promise<VmmBinaryInfo>>();

/**
 * Checks that `command` is an executable file that answers `--version` with `cloud-hypervisor vX.Y.Z` (or the
 * simulator's `cloud-hypervisor vX.Y (simulator, …)`) within the budget. Throws INVALID_ARGUMENT naming `field`
 * otherwise; nothing is started beyond that one short-lived `--version` run. Repeated checks of an unchanged file
 * cost one `stat`.
 */
export async function checkVmmBinary(
  command: string,
  options: CheckVmmBinaryOptions = {},
): Promise<VmmBinaryInfo> {
  if (typeof command !== 'string' || command === '') {
    throw new TypeError('checkVmmBinary: command must be a non-empty string');
  }
  const field = options.field ?? 'command';
  const { signal } = options;
  throwIfAborted(signal, 'checking the VMM binary');
  const path = await locate(command, field, options.env?.PATH ?? process.env.PATH);
  const stat = await fs.stat(path).catch((error: NodeJS.ErrnoException) => {
    throw invalidArgument(
      field,
      `${path} ${error.code === 'ENOENT' ? 'does not exist' : `cannot be read (${error.code})`}`,
      error,
    );
  });
  if (!stat.isFile()) throw invalidArgument(field, `${path} is not a file`);
  await fs.access(path, constants.X_OK).catch((error: unknown) => {
    throw invalidArgument(
      field,
      `${path} is not executable (mode ${(stat.mode & 0o777).toString(8)})`,
      error,
    );
  });
  const args = options.args ?? [];
  const key = cacheKey(path, stat, args);
  let answer = answers.get(key);
  if (!answer) {
    answer = askVersion(path, args, field, options);
    answers.set(key, answer);
    // A failure is not remembered: a timeout on a loaded host should not stick.
    answer.catch(() => answers.delete(key));
  }
  return raceSignal(answer, signal, abortedError);
}

function abortedError(signal: AbortSignal): ChvApiError {
  return new ChvApiError('ABORTED', 'checking the VMM binary aborted', { cause: signal.reason });
}

function cacheKey(path: string, stat: Stats, args: readonly string[]): string {
  return [path, stat.dev, stat.ino, stat.mtimeMs, stat.size, ...args].join('\0');
}

async function locate(command: string, field: string, pathEnv: string | undefined): Promise<string> {
  if (command.includes('/')) return resolve(command);
  for (const dir of (pathEnv ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, command);
    const stat = await fs.stat(candidate).catch(() => undefined);
    if (!stat?.isFile()) continue;
    if (
      await fs.access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return candidate;
  }
  throw invalidArgument(field, `${command} was not found on PATH`);
}

function askVersion(
  path: string,
  args: readonly string[],
  field: string,
  options: CheckVmmBinaryOptions,
): Promise<VmmBinaryInfo> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const argv = [...args, '--version'];
  const command = [path, ...argv];
  return new Promise((resolvePromise, reject) => {
    let output = '';
    let stderr = '';
    const child = spawn(path, argv, {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      // Slow is not foreign: a loaded host is no proof of bad input, so this is TIMEOUT, not INVALID_ARGUMENT.
      reject(
        new ChvApiError('TIMEOUT', `${field}: ${path} did not answer --version within ${timeoutMs} ms`, {
          details: { field, command },
        }),
      );
    }, timeoutMs);
    const keep = (text: string, chunk: Buffer) =>
      text.length < MAX_OUTPUT_BYTES ? text + chunk.toString('utf8') : text;
    child.stdout.on('data', (chunk: Buffer) => {
      output = keep(output, chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = keep(stderr, chunk);
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(invalidArgument(field, `${path} cannot be run: ${error.message}`, error));
    });
    child.once('close', (exitCode, exitSignal) => {
      clearTimeout(timer);
      const line = output
        .split('\n')
        .map((l) => l.trim())
        .find((l) => l !== '');
      const match = line === undefined ? null : VERSION_LINE.exec(line);
      if (exitCode === 0 && match) {
        const simulator = /\(simulator\b/.test(match[2] ?? '');
        resolvePromise({ kind: simulator ? 'simulator' : 'cloud-hypervisor', version: match[1]!, path });
        return;
      }
      const said =
        line === undefined
          ? 'printed nothing'
          : `printed ${JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line)}`;
      const how = exitSignal
        ? ` and was killed by ${exitSignal}`
        : exitCode === 0
          ? ''
          : ` and exited with code ${exitCode}`;
      reject(
        new ChvApiError(
          'INVALID_ARGUMENT',
          `${field}: ${path} is not cloud-hypervisor: \`--version\` ${said}${how} (expected "cloud-hypervisor vX.Y.Z")`,
          { details: { field, command, exitCode, exitSignal, stderrTail: stderr.slice(-2048) } },
        ),
      );
    });
  });
}
