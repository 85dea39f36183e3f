import { type ChildProcess, spawn } from 'node:child_process';

/** How a spawned daemon ended, or why it never started (`error`, e.g. ENOENT). */
export interface DaemonExit {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly error?: NodeJS.ErrnoException;
}

export interface SpawnedDaemon {
  readonly child: ChildProcess;
  /** Undefined when the spawn itself failed (see `exited` for the error). */
  readonly pid: number | undefined;
  /** Settles once, when the process has exited or failed to spawn. Never rejects. */
  readonly exited: Promise<DaemonExit>;
}

const attached = new Set<number>();
let exitHookInstalled = false;

/** Attached daemons die with this process; the exit hook can only do synchronous work, so it signals them. */
function killAttachedOnExit(pid: number): void {
  attached.add(pid);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const p of attached) {
      try {
        process.kill(p, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
  });
}

/**
 * Spawns `binary` with stdout and stderr on `logFd` (argv array, never a shell). A detached daemon gets its own
 * session, so it outlives us and no terminal signal reaches it; an attached one shares our process group and is
 * sent SIGTERM when this process exits.
 */
export function spawnDaemon(
  binary: string,
  args: readonly string[],
  { detached, logFd }: { detached: boolean; logFd: number },
): SpawnedDaemon {
  const child = spawn(binary, args, { detached, stdio: ['ignore', logFd, logFd] });
  const exited = new Promise<DaemonExit>((resolve) => {
    child.once('exit', (exitCode, signal) => resolve({ exitCode, signal }));
    child.once('error', (error: NodeJS.ErrnoException) => {
      // 'error' also reports failed kill() calls; only a spawn failure (no pid) means it never ran.
      if (child.pid === undefined) resolve({ exitCode: null, signal: null, error });
    });
  });
  const pid = child.pid;
  if (pid !== undefined && !detached) {
    killAttachedOnExit(pid);
    void exited.then(() => attached.delete(pid));
  }
  return { child, pid, exited };
}
