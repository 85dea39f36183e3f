import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, constants, fchmodSync, openSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { OutputTail, readFileTail } from '@my-hypervisor/host-utils';
import { ChvApiError, type ChvErrorDetails } from './errors.js';
import { removeStaleSocket } from './socket-path.js';
import type { VmmCommand } from './vmm-command.js';

/** A VMM process that has been spawned but is not yet known to be ready. */
export interface LaunchedVmm {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Attached mode: the last stderr output (detached mode writes it to `command.stderrFile`). */
  readonly stderrTail: OutputTail;
  /** Resolves when the stderr pipe has closed (attached mode), so its tail is complete. */
  readonly stderrClosed: Promise<void> | undefined;
}

/** Spawns the VMM: detached (own session, stderr to a file) or attached (pipes, events on fd 3). SPAWN_FAILED. */
export async function launchVmm(
  command: VmmCommand,
  options: { readonly env?: Readonly<Record<string, string>>; readonly eventMonitor?: boolean },
): Promise<LaunchedVmm> {
  const { file, argv, detached } = command;
  // 0600: a VMM's stderr may quote its configuration; no file of ours is readable by others, whatever the umask.
  const stderrFd = command.stderrFile ? openPrivate(command.stderrFile) : undefined;
  let child: ChildProcess;
  try {
    child = spawn(file, argv, {
      detached,
      env: { ...process.env, ...options.env },
      stdio: detached
        ? ['ignore', 'ignore', stderrFd ?? 'ignore']
        : ['ignore', 'ignore', 'pipe', ...(options.eventMonitor ? (['pipe'] as const) : [])],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
  } catch (cause) {
    throw new ChvApiError('SPAWN_FAILED', `cannot start ${file}: ${(cause as Error).message}`, {
      cause,
      details: { command: [file, ...argv] },
    });
  } finally {
    if (stderrFd !== undefined) closeSync(stderrFd);
  }
  const stderrTail = new OutputTail();
  child.stderr?.on('data', (chunk: Buffer) => stderrTail.push(chunk));
  const stderrClosed = child.stderr
    ? new Promise<void>((resolve) => child.stderr!.once('close', resolve))
    : undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, exitSignal) => resolve({ code, signal: exitSignal }));
  });
  return { child, pid: child.pid!, exited, stderrTail, stderrClosed };
}

/** Opens `path` for appending, created 0600 (or made 0600 if it exists), without following a link. */
function openPrivate(path: string): number {
  const fd = openSync(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    fchmodSync(fd, 0o600);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  return fd;
}

/**
 * A start that failed after the spawn: kills the process, removes its pid file and socket, releases what the
 * caller opened, and throws the error with the pid, command, exit status and the log and stderr tails. An exit
 * during readiness becomes EXITED quoting the VMM's last words.
 */
export async function failStartup(
  error: unknown,
  launched: LaunchedVmm,
  command: VmmCommand,
  extra: { readonly logFile?: string; readonly pidFile?: string; release(): Promise<void> },
): Promise<never> {
  const { child } = launched;
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  const exit = await launched.exited;
  await Promise.race([launched.stderrClosed, sleep(200)]);
  await extra.release();
  if (extra.pidFile) await rm(extra.pidFile, { force: true });
  await removeStaleSocket(command.socketPath).catch(() => {});
  const details: ChvErrorDetails = {
    pid: launched.pid,
    command: [command.file, ...command.argv],
    exitCode: exit.code,
    exitSignal: exit.signal,
    logTail: extra.logFile ? await readFileTail(extra.logFile) : undefined,
    stderrTail: command.stderrFile ? await readFileTail(command.stderrFile) : launched.stderrTail.text(),
  };
  if (ChvApiError.isInstance(error) && error.code === 'EXITED') {
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
    const last = lastLine(details.stderrTail) ?? lastLine(details.logTail);
    throw new ChvApiError(
      'EXITED',
      `the VMM exited (${how}) before its API was ready${last ? `: ${last}` : ''}`,
      {
        details,
      },
    );
  }
  if (ChvApiError.isInstance(error))
    throw new ChvApiError(error.code, error.message, {
      cause: error,
      details: { ...error.details, ...details },
    });
  throw error;
}

function lastLine(text: string | undefined): string | undefined {
  return text
    ?.trim()
    .split('\n')
    .filter((line) => line.trim() !== '')
    .at(-1);
}
