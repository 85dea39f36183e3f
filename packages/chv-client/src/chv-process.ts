import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { chmod, open, rm, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  followFile,
  isProcessAlive,
  processStartTime,
  raceSignal,
  readCmdline,
  writeFileAtomic,
} from '@my-hypervisor/host-utils';
import { ChvClient, type ChvClientOptions } from './chv-client.js';
import { abortError, ChvApiError, throwIfAborted } from './errors.js';
import { type ChvEventStream, parseEventStream } from './event-stream.js';
import { waitForApiReady } from './readiness.js';
import { type ChvServerVersion, parseServerVersion } from './server-version.js';
import { removeStaleSocket, validateSocketPath } from './socket-path.js';
import { buildVmmCommand } from './vmm-command.js';
import type { VmmConfinement } from './vmm-confine.js';
import { failStartup, launchVmm } from './vmm-launch.js';

/** How to start a cloud-hypervisor process: binary, arguments, socket, logs and readiness. */
export interface ChvProcessSpawnOptions {
  /** The VMM binary. Default `cloud-hypervisor`, resolved on PATH. */
  readonly command?: string;
  /** Arguments placed before ours, e.g. to run the simulator through node (`simulatorCommand()`). */
  readonly commandArgs?: readonly string[];
  /** `--api-socket path=…`: at most 107 bytes. A stale socket file there is removed first. */
  readonly socketPath: string;
  /** `--log-file`. Its tail is quoted when the VMM fails to start. */
  readonly logFile?: string;
  /** `-v` count. */
  readonly verbose?: number;
  /** Pass `--event-monitor`: an inherited pipe (fd 3), or `path=eventFile` when detached. Read via `events`. */
  readonly eventMonitor?: boolean;
  /** Detached mode only: where events go. Default `<socketPath>.events`. */
  readonly eventFile?: string;
  /** Run in its own session with no pipes to us, so the VMM outlives this process. */
  readonly detached?: boolean;
  /** Written (atomically) with the pid once spawned. */
  readonly pidFile?: string;
  /** Detached mode only: the VMM's stderr. Default `<logFile>.stderr` when `logFile` is set, else discarded. */
  readonly stderrFile?: string;
  /** Run inside this named network namespace (`ip netns exec`, which execs: the pid is the VMM's). */
  readonly netns?: string;
  /** Arguments placed after ours. */
  readonly extraArgs?: readonly string[];
  /**
   * Run confined (as root only): its own uid/gid, no capabilities, `no_new_privs`, in its cgroups, with a private
   * `/dev/net/tun` (vmm-confine.ts). The event file and log file made here are given to that uid/gid.
   */
  readonly confine?: VmmConfinement;
  /** Added to this process's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** Budget for the socket to appear and `vmm.ping` to answer. Default 10 s. */
  readonly readyTimeoutMs?: number;
  /** Options of the `client` (timeouts, keep-alive). */
  readonly clientOptions?: Omit<ChvClientOptions, 'socketPath'>;
  /**
   * Called with the pid as soon as the process exists, before it is ready: work that needs only the pid (recording
   * it, starting a helper that serves the VMM) is done while the VMM starts instead of after. `spawn` resolves once
   * both the VMM is ready and the promise returned has settled; if it rejects, the start fails with that error (the
   * process is killed, as for any failed start).
   */
  readonly onLaunched?: (pid: number) => Promise<void> | void;
  readonly signal?: AbortSignal;
}

/** How to adopt a VMM process started earlier (by pid and socket), for example by another process. */
export interface ChvProcessAttachOptions {
  readonly pid: number;
  readonly socketPath: string;
  /** The binary the process must be running. Default `cloud-hypervisor`; the simulator's bin also counts. */
  readonly command?: string;
  /** Follow this event-monitor file (a detached VMM's `eventFile`). */
  readonly eventFile?: string;
  /** Budget for `vmm.ping` to answer. Default 5 s. */
  readonly readyTimeoutMs?: number;
  readonly clientOptions?: Omit<ChvClientOptions, 'socketPath'>;
  readonly signal?: AbortSignal;
}

/** How the VMM process ended: exit code or signal. */
export interface ChvProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** The rung of the stop ladder that ended the process. */
export type StopRung =
  | 'already-exited'
  | 'power-button'
  | 'vm-shutdown'
  | 'vmm-shutdown'
  | 'sigterm'
  | 'sigkill';

/** How `ChvProcess.stop()` climbs its ladder: how long each rung may take, and cancellation. */
export interface StopOptions {
  /** How long the guest gets to power off after the power button. 0 skips that rung. Default 5 s. */
  readonly gracefulMs?: number;
  /** Budget of each later rung (an API call, or the wait after a signal). Default 2 s. */
  readonly stepMs?: number;
  /** Aborting rejects with ABORTED and leaves the process as far down the ladder as it got. */
  readonly signal?: AbortSignal;
}

/** How a stop ended: the rung that ended the process, and its exit. */
export interface StopResult {
  readonly rung: StopRung;
  readonly exit: ChvProcessExit;
  readonly elapsedMs: number;
}

/** After the guest powered off, how long the VMM's own exit may lag before the ladder goes on. */
const GUEST_EXIT_GRACE_MS = 1_000;
const KILL_WAIT_MS = 5_000;
const SIMULATOR_ENTRIES = /^(simulator-bin\.(cjs|js|ts)|chv-simulator|__chv-simulator)$/;

interface ProcessParts {
  readonly pid: number;
  readonly socketPath: string;
  readonly client: ChvClient;
  readonly events: ChvEventStream;
  readonly exited: Promise<ChvProcessExit>;
  readonly serverVersion: ChvServerVersion;
  readonly child?: ChildProcess;
  readonly startTime?: number;
  readonly pidFile?: string;
  /** Stops whatever feeds `events` and `exited` (file follower, polling). */
  readonly release: () => void;
  /** An attached process: settles `exited` now if the process is gone (instead of at the next poll). */
  readonly checkExit?: () => void;
}

/**
 * A supervised Cloud Hypervisor process (or the simulator): spawned and awaited until its API answers, or
 * re-adopted after a restart. `stop()` walks a bounded ladder and resolves only once the process is gone.
 * `close()` (and `await using`) stops it unless it was `disown()`ed.
 */
export class ChvProcess implements AsyncDisposable {
  readonly pid: number;
  readonly socketPath: string;
  /** A client for this VMM's socket, closed with the process handle. */
  readonly client: ChvClient;
  /** The event monitor feed (ends with the process); empty without `eventMonitor`/`eventFile`. */
  readonly events: ChvEventStream;
  /**
   * Resolves with the exit status when the process ends (code and signal are null for an attached one). An
   * attached one is polled without holding the event loop open, and no longer once disowned or closed.
   */
  readonly exited: Promise<ChvProcessExit>;
  /** The VMM's release, from the readiness ping. */
  readonly serverVersion: ChvServerVersion;
  readonly #child: ChildProcess | undefined;
  readonly #startTime: number | undefined;
  readonly #pidFile: string | undefined;
  readonly #release: () => void;
  readonly #checkExit: (() => void) | undefined;
  #gone = false;
  #disowned = false;
  #stopping: Promise<StopResult> | undefined;
  #closing: Promise<void> | undefined;

  private constructor(parts: ProcessParts) {
    this.pid = parts.pid;
    this.socketPath = parts.socketPath;
    this.client = parts.client;
    this.events = parts.events;
    this.exited = parts.exited;
    this.serverVersion = parts.serverVersion;
    this.#child = parts.child;
    this.#startTime = parts.startTime;
    this.#pidFile = parts.pidFile;
    this.#release = parts.release;
    this.#checkExit = parts.checkExit;
    void this.exited.then(() => {
      this.#gone = true;
    });
  }

  /** True until the process has exited. */
  get running(): boolean {
    if (this.#gone) return false;
    if (this.#child) return this.#child.exitCode === null && this.#child.signalCode === null;
    if (isProcessAlive(this.pid, this.#startTime)) return true;
    // Seen gone here: `exited` must settle now. The poll's timer does not hold the event loop open, so code that
    // awaits `exited` after this (stop() does) would otherwise let the process end mid-await.
    this.#checkExit?.();
    return false;
  }

  /**
   * Spawns the VMM in API mode and resolves once its socket exists and `vmm.ping` answers. On any failure the
   * process is killed and nothing is left behind; EXITED errors carry the log and stderr tails.
   */
  static async spawn(options: ChvProcessSpawnOptions): Promise<ChvProcess> {
    const { signal } = options;
    const command = buildVmmCommand(options);
    throwIfAborted(signal, 'spawning the VMM');
    await removeStaleSocket(command.socketPath);
    // Made here, private, rather than by the VMM under its umask (an event stream and a log say what the guest does).
    const owner = options.confine;
    if (command.eventFile) await createPrivateFile(command.eventFile, owner);
    if (options.logFile) await createPrivateFile(options.logFile, owner);
    const launched = await launchVmm(command, options);
    const { child, pid, exited } = launched;
    // Started right away and waited for together with readiness: moving a process between cgroups can wait for an
    // RCU grace period (15 ms on a host measured), and the VMM starts meanwhile. Writing the pid moves the whole
    // process, its threads included; it is in its cgroups before this resolves, before any guest runs.
    const joined = (async () => {
      for (const procs of command.joinAfterSpawn) {
        await writeFile(procs, `${pid}\n`).catch((error: unknown) => {
          throw new ChvApiError(
            'INVALID_ARGUMENT',
            `cannot put the VMM into its cgroup (${procs}): ${String(error)}`,
            { cause: error, details: { field: 'confine.cgroupProcs' } },
          );
        });
      }
    })();
    // What the caller does with the pid runs while the VMM starts, like the join.
    const launchedWork = (async () => options.onLaunched?.(pid))();
    // A failed join (or launch work) ends the wait for readiness at once (and is the error reported).
    const joinFailed = new AbortController();
    joined.catch(() => joinFailed.abort());
    launchedWork.catch(() => joinFailed.abort());
    const readySignal = signal ? AbortSignal.any([signal, joinFailed.signal]) : joinFailed.signal;
    const stopFollowing = new AbortController();
    const events = options.eventMonitor
      ? parseEventStream(
          command.eventFile
            ? followFile(command.eventFile, { until: exited, signal: stopFollowing.signal })
            : (child.stdio[3] as Readable),
        )
      : emptyEvents();
    const client = new ChvClient({ ...options.clientOptions, socketPath: command.socketPath });
    const release = () => stopFollowing.abort();
    try {
      if (options.pidFile) await writeFileAtomic(options.pidFile, `${pid}\n`, 0o600);
      const ping = await waitForApiReady(command.socketPath, {
        client,
        exited,
        timeoutMs: options.readyTimeoutMs ?? 10_000,
        signal: readySignal,
      }).catch(async (error: unknown) => {
        if (joinFailed.signal.aborted) await Promise.all([joined, launchedWork]);
        throw error;
      });
      await Promise.all([joined, launchedWork]);
      // Whoever can connect to the API socket controls the VM: only its owner.
      await chmod(command.socketPath, 0o600);
      if (command.detached) child.unref();
      return new ChvProcess({
        pid,
        socketPath: command.socketPath,
        client,
        events,
        exited,
        serverVersion: parseServerVersion(ping),
        child,
        ...(options.pidFile ? { pidFile: options.pidFile } : {}),
        release,
      });
    } catch (error) {
      // The caller's launch work is over before the start fails: nothing of it runs on after the error.
      await launchedWork.catch(() => undefined);
      // Nothing half-made: the process, its pid file and its socket go; then the error says why.
      return failStartup(error, launched, command, {
        ...(options.logFile ? { logFile: options.logFile } : {}),
        ...(options.pidFile ? { pidFile: options.pidFile } : {}),
        async release() {
          release();
          await events.close();
          await client.close();
        },
      });
    }
  }

  /**
   * Re-adopts a running VMM (after the manager restarted). `/proc/<pid>/cmdline` must name the binary and
   * this socket, so a recycled pid is never mistaken for ours (NOT_OURS); then `vmm.ping` must answer.
   */
  static async attach(options: ChvProcessAttachOptions): Promise<ChvProcess> {
    const { pid, signal } = options;
    if (!Number.isInteger(pid) || pid <= 0)
      throw new TypeError('ChvProcess.attach: pid must be a positive integer');
    const socketPath = validateSocketPath(options.socketPath);
    throwIfAborted(signal, 'attaching to the VMM');
    const startTime = processStartTime(pid);
    const cmdline = readCmdline(pid);
    if (!cmdline || startTime === undefined || !isProcessAlive(pid, startTime)) {
      throw new ChvApiError('EXITED', `no running process with pid ${pid}`, { details: { pid } });
    }
    const binary = basename(options.command ?? 'cloud-hypervisor');
    // The simulator stands in for cloud-hypervisor (and is what `node …simulator-bin.cjs` runs).
    const simulatorCounts = binary === 'cloud-hypervisor' || binary === basename(process.execPath);
    const namesBinary = cmdline.some((arg) => {
      const name = basename(arg);
      return name === binary || (simulatorCounts && SIMULATOR_ENTRIES.test(name));
    });
    const namesSocket = cmdline.some(
      (arg) =>
        arg === socketPath ||
        arg.split(',').some((part) => part.replace(/^--api-socket=/, '') === `path=${socketPath}`),
    );
    if (!namesBinary || !namesSocket) {
      throw new ChvApiError(
        'NOT_OURS',
        `pid ${pid} is not the VMM of ${socketPath} (${namesBinary ? 'another socket' : `not ${binary}`})`,
        { details: { pid, command: cmdline } },
      );
    }
    const stopFollowing = new AbortController();
    const { exited, check: checkExit } = pollExit(pid, startTime, stopFollowing.signal);
    const client = new ChvClient({ ...options.clientOptions, socketPath });
    const events = options.eventFile
      ? parseEventStream(followFile(options.eventFile, { until: exited, signal: stopFollowing.signal }))
      : emptyEvents();
    const release = () => stopFollowing.abort();
    try {
      const ping = await client.vmmPing({
        timeoutMs: options.readyTimeoutMs ?? 5_000,
        ...(signal ? { signal } : {}),
      });
      return new ChvProcess({
        pid,
        socketPath,
        client,
        events,
        exited,
        serverVersion: parseServerVersion(ping),
        startTime,
        release,
        checkExit,
      });
    } catch (error) {
      release();
      await events.close();
      await client.close();
      throw error;
    }
  }

  /**
   * Ends the VMM through a bounded ladder: power button → wait `gracefulMs` for the guest → `vm.shutdown` →
   * `vmm.shutdown` → SIGTERM → SIGKILL. Resolves only when the process is gone, naming the rung that ended it.
   */
  stop(options: StopOptions = {}): Promise<StopResult> {
    this.#stopping ??= this.#stop(options).finally(() => {
      this.#stopping = undefined;
    });
    return this.#stopping;
  }

  /**
   * Lets go of the VMM without stopping it (a detached VM that outlives us): releases the pipes, the event
   * reader and the client. `close()` then does nothing more.
   */
  disown(): void {
    if (this.#disowned) return;
    this.#disowned = true;
    this.#child?.unref();
    this.#child?.stderr?.destroy();
    this.#release();
    void this.events.close();
    void this.client.close();
  }

  /** Stops the VMM if it runs (unless disowned) and releases everything. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        if (!this.#disowned && this.running) await this.stop();
      } finally {
        this.#release();
        this.#child?.stderr?.destroy();
        await this.events.close();
        await this.client.close();
      }
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #stop({ gracefulMs = 5_000, stepMs = 2_000, signal }: StopOptions): Promise<StopResult> {
    const started = performance.now();
    const done = async (rung: StopRung): Promise<StopResult> => {
      const exit = await this.exited;
      await this.#cleanupAfterExit();
      return { rung, exit, elapsedMs: performance.now() - started };
    };
    throwIfAborted(signal, 'stopping the VMM');
    if (!this.running) return done('already-exited');
    const call = { timeoutMs: stepMs, ...(signal ? { signal } : {}) };
    const attempt = async (fn: () => Promise<unknown>): Promise<boolean> => {
      try {
        await fn();
        return true;
      } catch (error) {
        if (ChvApiError.isInstance(error) && error.code === 'ABORTED') throw error;
        return false;
      }
    };

    if (gracefulMs > 0) {
      const info = await this.client.vmInfo(call).catch(rethrowAbort);
      if (info?.state === 'Running' && (await attempt(() => this.client.vmPowerButton(call)))) {
        if (await this.#waitForGuest(gracefulMs, stepMs, signal)) {
          // The guest powered off: the VMM is on its way out (unless --no-shutdown), and on a loaded host its
          // exit can lag the moment vm.info stops saying Running. Give it a moment before the next rung.
          await this.#waitForExit(Math.min(stepMs, GUEST_EXIT_GRACE_MS), signal);
        }
        if (!this.running) return done('power-button');
      }
    }
    await attempt(() => this.client.vmShutdown(call));
    if (!this.running) return done('vm-shutdown');
    if (await attempt(() => this.client.vmmShutdown(call))) {
      if (await this.#waitForExit(stepMs, signal)) return done('vmm-shutdown');
    }
    if (!this.running) return done('vmm-shutdown');
    this.#kill('SIGTERM');
    if (await this.#waitForExit(stepMs, signal)) return done('sigterm');
    this.#kill('SIGKILL');
    if (await this.#waitForExit(KILL_WAIT_MS, signal)) return done('sigkill');
    throw new ChvApiError(
      'TIMEOUT',
      `the VMM (pid ${this.pid}) did not exit ${KILL_WAIT_MS} ms after SIGKILL`,
      {
        details: { pid: this.pid },
      },
    );
  }

  /**
   * Waits until the process exits or the VM leaves Running (guest powered off under --no-shutdown). True when the
   * guest went away (process gone, VM not Running, or the API no longer answering); false when time ran out.
   */
  async #waitForGuest(gracefulMs: number, stepMs: number, signal: AbortSignal | undefined): Promise<boolean> {
    const until = performance.now() + gracefulMs;
    while (performance.now() < until) {
      if (await this.#waitForExit(Math.min(100, until - performance.now()), signal)) return true;
      const info = await this.client
        .vmInfo({ timeoutMs: stepMs, ...(signal ? { signal } : {}) })
        .catch(rethrowAbort);
      if (!this.running || info?.state !== 'Running') return true;
    }
    return false;
  }

  async #waitForExit(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
    if (!this.running) return true;
    const timer = new AbortController();
    const wait = sleep(Math.max(0, ms), undefined, { signal: timer.signal }).catch(() => {});
    try {
      // Called dozens of times with one caller signal: raceSignal removes its listener each time.
      await raceSignal(Promise.race([this.exited, wait]), signal, (aborted) =>
        abortError(aborted, 'stopping the VMM'),
      );
    } finally {
      timer.abort();
    }
    return !this.running;
  }

  #kill(signalName: NodeJS.Signals) {
    if (this.#child) {
      this.#child.kill(signalName);
      return;
    }
    // Only the exact process we attached to: a recycled pid belongs to someone else.
    if (!isProcessAlive(this.pid, this.#startTime)) return;
    try {
      process.kill(this.pid, signalName);
    } catch {
      // Gone in between.
    }
  }

  async #cleanupAfterExit() {
    // A killed VMM leaves its socket and pid file behind.
    await removeStaleSocket(this.socketPath).catch(() => {});
    if (this.#pidFile) await rm(this.#pidFile, { force: true });
  }
}

function rethrowAbort(error: unknown): undefined {
  if (ChvApiError.isInstance(error) && error.code === 'ABORTED') throw error;
  return undefined;
}

/**
 * Exit of a process that is not our child: poll /proc (there is no pidfd in Node). Like a detached child, it
 * does not hold the event loop open. The poll ends at exit or on `stop`, after which it settles only if the
 * process is already gone. `check()` polls once now: whoever sees the process gone settles `exited` at once.
 */
function pollExit(
  pid: number,
  startTime: number,
  stop: AbortSignal,
): { exited: Promise<ChvProcessExit>; check: () => void } {
  let check = () => {};
  const exited = new Promise<ChvProcessExit>((resolve) => {
    const poll = () => {
      if (isProcessAlive(pid, startTime)) return;
      end();
      resolve({ code: null, signal: null });
    };
    const end = () => {
      clearInterval(timer);
      stop.removeEventListener('abort', onStop);
    };
    const onStop = () => {
      end();
      poll();
    };
    const timer = setInterval(poll, 50).unref();
    stop.addEventListener('abort', onStop, { once: true });
    check = poll;
  });
  return { exited, check };
}

function emptyEvents(): ChvEventStream {
  return parseEventStream((async function* () {})());
}

/** Creates (or empties) `path` as a private regular file: never through a symlink, mode 0600 whatever the umask. */
async function createPrivateFile(path: string, owner?: { uid: number; gid: number }): Promise<void> {
  await rm(path, { force: true });
  const handle = await open(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    await handle.chmod(0o600);
    if (owner) await handle.chown(owner.uid, owner.gid);
  } finally {
    await handle.close();
  }
}
