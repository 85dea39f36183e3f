import { setTimeout as sleep } from 'node:timers/promises';
import { isProcessAlive } from '@my-hypervisor/host-utils';
import { StorageError } from '@my-hypervisor/storage';

const pollIntervalMs = 10;

/**
 * Resolves true once `pid` is gone (or a zombie), false after `timeoutMs` or when `signal` aborts. `exited`, when
 * we own the ChildProcess, settles as soon as it exits; otherwise /proc/<pid> is polled (Node has no pidfd).
 */
export async function waitForExit(
  pid: number,
  timeoutMs: number,
  { exited, signal }: { exited?: Promise<unknown>; signal?: AbortSignal } = {},
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  let exitedNow = false;
  void exited?.then(() => {
    exitedNow = true;
  });
  while (true) {
    // With the ChildProcess in hand only its exit (reaped: every thread gone, locks released) counts.
    if (exitedNow || (!exited && !isProcessAlive(pid))) return true;
    if (signal?.aborted) return false;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    const wait = Math.min(pollIntervalMs, left);
    if (exited) await Promise.race([sleep(wait), exited]);
    else await sleep(wait);
  }
}

function send(pid: number, sig: NodeJS.Signals, group: boolean): boolean {
  try {
    process.kill(group ? -pid : pid, sig);
    return true;
  } catch (error) {
    // The group may be gone while the leader lingers as a zombie, or the pid never led one.
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return group ? send(pid, sig, false) : false;
    throw new StorageError('STOP_FAILED', `cannot send ${sig} to pid ${pid}`, {
      cause: error,
      details: { pid },
    });
  }
}

export interface StopOptions {
  /** How long SIGTERM gets before SIGKILL. */
  readonly graceMs: number;
  /** How long to wait after SIGKILL before giving up with STOP_FAILED. */
  readonly killWaitMs?: number;
  /** Signal the process group `-pid` (a detached daemon leads its own), so forked sandbox children go too. */
  readonly group?: boolean;
  readonly exited?: Promise<unknown>;
  /** Aborting skips the rest of the grace period and goes straight to SIGKILL. */
  readonly signal?: AbortSignal;
}

export interface StopResult {
  /** The process was alive and a signal reached it. */
  readonly stopped: boolean;
  /** SIGKILL was needed. */
  readonly killed: boolean;
}

/** SIGTERM, a bounded wait, then SIGKILL. STOP_FAILED if it survives SIGKILL too (stuck in the kernel). */
export async function stopProcess(pid: number, options: StopOptions): Promise<StopResult> {
  const { graceMs, killWaitMs = 2_000, exited, signal, group = false } = options;
  if (!send(pid, 'SIGTERM', group)) return { stopped: false, killed: false };
  if (await waitForExit(pid, graceMs, { ...(exited ? { exited } : {}), ...(signal ? { signal } : {}) })) {
    return { stopped: true, killed: false };
  }
  if (!send(pid, 'SIGKILL', group)) return { stopped: true, killed: false };
  if (await waitForExit(pid, killWaitMs, exited ? { exited } : {})) return { stopped: true, killed: true };
  throw new StorageError('STOP_FAILED', `pid ${pid} survived SIGKILL for ${killWaitMs} ms`, {
    details: { pid },
  });
}
