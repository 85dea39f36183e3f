import { closeSync, constants, fchmodSync, promises as fs, openSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChvClient, VmmConfinement } from '@my-hypervisor/chv-client';
import { hypervisorDeviceProblem, isProcessAlive, processStartTime } from '@my-hypervisor/host-utils';
import { invalidSpec, throwIfAborted, VmManagerError } from './errors.js';
import type { VmmRecord } from './state-store.js';

/** How the manager runs Cloud Hypervisor. */
export interface VmmOptions {
  /**
   * The cloud-hypervisor binary; `cloud-hypervisor` from PATH when omitted. A spec's `vmm.binary` overrides it
   * when `allowedBinaries` lists it. Checked before any work (`checkVmmBinary`): errors about it name the field
   * `options.vmm.command`.
   */
  readonly command?: string;
  /**
   * The binaries a spec's (or a stored record's) `vmm.binary` may name, as absolute paths; any other is refused
   * (INVALID_ARGUMENT, field `vmm.binary`) before it is run at all. Default none: a record is data anyone with
   * write access to the state directory could have written, and the VMM runs with this process's privileges.
   */
  readonly allowedBinaries?: readonly string[];
  /** Arguments placed before ours (e.g. to run the simulator through node). */
  readonly commandArgs?: readonly string[];
  /** Run each VMM inside this network namespace (where the TAPs are). */
  readonly netns?: string;
  /** VMMs outlive the process that started them (default true: the CLI exits after `vm create`). */
  readonly detached?: boolean;
  /** Budget for the VMM to answer `vmm.ping` after spawn. Default 10 s. */
  readonly readyTimeoutMs?: number;
  /**
   * How `restore` brings a guest's memory back. `on-demand` (userfaultfd): the VM runs at once and its pages load
   * as it touches them, and in the background (a snapshot of it waits until they have); restore time does not grow
   * with memory. `copy`: every page is read before it runs. Default: on-demand where the VMM may use userfaultfd
   * (root and unconfined, confined with `confinement.userfaultfd`, or `vm.unprivileged_userfaultfd = 1`), else
   * copy; a VMM refused userfaultfd copies.
   */
  readonly restoreMemory?: RestoreMemory;
  /**
   * Keep one idle VMM ready (a standby) beside each running VM without shares that was snapshotted or restored, so
   * its next restore skips the VMM's start (tens of ms): the standby takes the old VMM's place and `vm.restore`s at
   * once, and the next standby starts while it restores. It runs like the VM's VMM (same binary, user, cgroup) and
   * costs an idle VMM (~6 MB resident with cloud-hypervisor v53) and a held serial relay (a Node process, ~58 MB)
   * per such VM. Stop, delete and reconcile end it.
   * Default false.
   */
  readonly standby?: boolean;
  /** How long a guest gets to power off after the power button before harder rungs. Default 5 s. */
  readonly stopGracefulMs?: number;
  /** Extra environment for the VMM. */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * How to run each VM's serial relay (serial-console.ts); default: this package's `serial-relay-bin.js` under
   * `process.execPath`. A bundled application passes itself (`node myhv.js __serial-relay`).
   */
  readonly serialRelay?: { readonly command: string; readonly args?: readonly string[] };
}

/** How a restore loads the guest's memory (`VmmOptions.restoreMemory`). */
export type RestoreMemory = 'on-demand' | 'copy';

/**
 * chv-client builds its zod schemas when it is imported; commands that never talk to a VMM (`myhv vm ls`) should
 * not pay for that at start-up, so it is loaded on first use.
 */
export function loadChvClient(): Promise<typeof import('@my-hypervisor/chv-client')> {
  return import('@my-hypervisor/chv-client');
}

/** True when the VMM recorded in `vmm` still runs (same pid and start time). */
export function vmmAlive(vmm: VmmRecord | undefined): boolean {
  return vmm?.pid !== undefined && isProcessAlive(vmm.pid, vmm.startTime);
}

/** The field of an error about the manager's own VMM (`VmManagerOptions.vmm.command`), not a spec field. */
export const VMM_COMMAND_FIELD = 'options.vmm.command';

/**
 * What a VM's VMM runs: the spec's `vmm.binary` (alone), else the manager's `command` and `commandArgs`
 * (default `cloud-hypervisor` from PATH). `field` says which of the two an error should name.
 */
export function vmmCommand(
  options: VmmOptions,
  binary: string | undefined,
): { command: string; commandArgs: readonly string[]; field: string } {
  if (binary) return { command: binary, commandArgs: [], field: 'vmm.binary' };
  return {
    command: options.command ?? 'cloud-hypervisor',
    commandArgs: options.commandArgs ?? [],
    field: VMM_COMMAND_FIELD,
  };
}

/** A spec's `vmm.binary` must be one of `allowedBinaries` (compared as normalised absolute paths). */
export function assertAllowedBinary(options: VmmOptions, binary: string | undefined): void {
  if (binary === undefined) return;
  const wanted = resolve(binary);
  if ((options.allowedBinaries ?? []).some((allowed) => resolve(allowed) === wanted)) return;
  throw invalidSpec(
    'vmm.binary',
    `${binary} is not in allowedVmmBinaries of the config (the manager's vmm.allowedBinaries); ` +
      'only binaries root allowed may run as a VMM',
  );
}

/**
 * Before any work: the VMM a VM would run is an executable that answers `--version` like cloud-hypervisor (or
 * the simulator). Otherwise INVALID_ARGUMENT naming `vmm.binary` or `options.vmm.command`. Cached per file.
 */
export async function assertVmmBinary(
  options: VmmOptions,
  binary: string | undefined,
  signal: AbortSignal | undefined,
  vm?: string,
): Promise<void> {
  assertAllowedBinary(options, binary);
  const { command, commandArgs, field } = vmmCommand(options, binary);
  const { ChvApiError, checkVmmBinary } = await loadChvClient();
  let kind: 'cloud-hypervisor' | 'simulator';
  try {
    ({ kind } = await checkVmmBinary(command, {
      args: commandArgs,
      field,
      // The budget the VMM has to come up: a loaded host must not turn a slow answer into "bad input".
      timeoutMs: options.readyTimeoutMs ?? 10_000,
      ...(options.env ? { env: options.env } : {}),
      ...(signal ? { signal } : {}),
    }));
  } catch (error) {
    if (ChvApiError.isInstance(error) && error.code === 'INVALID_ARGUMENT') {
      throw new VmManagerError('INVALID_ARGUMENT', error.message, { cause: error, details: { field } });
    }
    throwIfAborted(signal);
    // Too slow to answer on a loaded host: go on; the spawn's own readiness check still refuses a foreign binary.
    if (ChvApiError.isInstance(error) && error.code === 'TIMEOUT') return;
    throw error;
  }
  // A real VMM on a host without a hypervisor device would only fail after the TAP and forwards exist.
  if (kind === 'cloud-hypervisor') {
    const missing = hypervisorDeviceProblem();
    if (missing) throw kvmUnavailable(missing, { ...(vm ? { vm } : {}), step: 'check' });
  }
}

function kvmUnavailable(
  why: string,
  details: { vm?: string; step: string },
  cause?: unknown,
): VmManagerError {
  return new VmManagerError(
    'VMM_FAILED',
    `${details.vm ? `${details.vm}: ` : ''}the VMM cannot run guests on this host: KVM is unavailable (${why}). ` +
      'Run it on a host with KVM: load kvm_intel or kvm_amd, enable hardware (or nested) virtualization, ' +
      'and give this user read-write access to /dev/kvm',
    { ...(cause ? { cause } : {}), details: { ...details, reason: 'KVM_UNAVAILABLE' } },
  );
}

const KVM_MISSING = /no supported hypervisor|Failed to open hypervisor interface/i;

/**
 * A VMM that exited at start-up because the host has no usable KVM (cloud-hypervisor's "no supported
 * hypervisor") becomes a VMM_FAILED that says so and what to do; the VMM's own error stays as `cause`. Anything
 * else is returned unchanged.
 */
export function explainVmmExit(error: unknown, vm: string): unknown {
  if (typeof error !== 'object' || error === null || (error as { code?: unknown }).code !== 'EXITED')
    return error;
  const { details } = error as { details?: { stderrTail?: unknown; logTail?: unknown } };
  const said = [details?.stderrTail, details?.logTail, (error as Error).message]
    .filter((text): text is string => typeof text === 'string')
    .join('\n');
  const words = KVM_MISSING.exec(said)?.[0];
  if (!words) return error;
  return kvmUnavailable(`cloud-hypervisor said "${words}"`, { vm, step: 'vmm' }, error);
}

/** Spawns the VMM and waits until it answers; returns its identity for the record. */
export async function spawnVmm(
  options: VmmOptions,
  paths: { socketPath: string; pidFile: string; logFile: string },
  extra: {
    binary?: string;
    extraArgs?: readonly string[];
    privateFiles?: readonly string[];
    /** Run it confined (confinement.ts). Its log then goes to its stderr, a file opened here: it owns no file of ours. */
    confine?: VmmConfinement;
    /** `--event-monitor path=`: the VMM writes its events here (created 0600, the VMM's own when confined). */
    eventFile?: string;
    /**
     * Work on the VMM's identity while it starts (`ChvProcessSpawnOptions.onLaunched`): recording it, starting its
     * serial relay. A failure fails the start.
     */
    onLaunched?: (vmm: VmmRecord) => Promise<void> | void;
  },
  signal: AbortSignal | undefined,
): Promise<{ record: VmmRecord; client: ChvClient }> {
  // Checked again right before spawning: the record may have changed since the check before any work.
  assertAllowedBinary(options, extra.binary);
  const { command, commandArgs } = vmmCommand(options, extra.binary);
  const { ChvClient, ChvProcess } = await loadChvClient();
  const detached = options.detached ?? true;
  // The VMM would create its logs (and the serial log, `serial file=`) under its umask: they are made 0600 first.
  const confine = extra.confine;
  const logs = [
    paths.logFile,
    ...(detached && !confine ? [`${paths.logFile}.stderr`] : []),
    ...(extra.privateFiles ?? []),
  ];
  for (const file of logs) createPrivateFile(file);
  // The start time is fixed when the process is made: the same before and after its exec chain reaches the VMM.
  const identity = (pid: number): VmmRecord => {
    const startTime = processStartTime(pid);
    return { ...paths, pid, ...(startTime !== undefined ? { startTime } : {}) };
  };
  const onLaunched = extra.onLaunched;
  const vmm = await ChvProcess.spawn({
    command,
    ...(commandArgs.length > 0 ? { commandArgs: [...commandArgs] } : {}),
    socketPath: paths.socketPath,
    ...(confine ? { confine, stderrFile: paths.logFile } : { logFile: paths.logFile }),
    pidFile: paths.pidFile,
    detached,
    ...(options.netns ? { netns: options.netns } : {}),
    ...(extra.eventFile ? { eventMonitor: true, eventFile: extra.eventFile } : {}),
    ...(extra.extraArgs?.length ? { extraArgs: [...extra.extraArgs] } : {}),
    ...(options.env ? { env: { ...options.env } } : {}),
    readyTimeoutMs: options.readyTimeoutMs ?? 10_000,
    ...(onLaunched ? { onLaunched: (pid: number) => onLaunched(identity(pid)) } : {}),
    ...(signal ? { signal } : {}),
  });
  // ChvProcess made the API socket 0600 before it resolved (the VMM binds it under its umask, in a 0700 directory)
  // and wrote the pid file 0600. The process is detached and owned by the record from now on; this handle only
  // talks to it.
  vmm.disown();
  return { record: identity(vmm.pid), client: new ChvClient({ socketPath: paths.socketPath }) };
}

/**
 * Creates `path` 0600 if missing, or makes an existing one 0600, without following a link or truncating it. In
 * this thread: three metadata calls on a local file, on the way to every VMM start, cost less than three round trips
 * through the thread pool.
 */
function createPrivateFile(path: string): void {
  const fd = openSync(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}

/**
 * Stops the VMM recorded in `vmm` through the bounded ladder (power button, vm.shutdown, vmm.shutdown, SIGTERM,
 * SIGKILL). `gracefulMs: 0` skips the guest's grace period (rollback). `kill` skips the ladder: the VMM gets
 * SIGKILL at once, for when its guest's state is being thrown away anyway (a restore replaces it). Returns false
 * when it was not running.
 */
export async function stopVmm(
  vmm: VmmRecord | undefined,
  { gracefulMs, kill = false, signal }: { gracefulMs: number; kill?: boolean; signal?: AbortSignal },
): Promise<boolean> {
  if (!vmm) return false;
  // The relay ends by itself when the VMM's serial socket closes; this covers one that did not.
  const relay = vmm.serialRelay;
  const stopRelay = (signal?: NodeJS.Signals) =>
    relay ? killProcess(relay.pid, relay.startTime, signal ? { signal } : {}) : Promise.resolve(false);
  let stopped = false;
  if (kill && vmm.pid !== undefined) {
    // Killed together: the relay has nothing more to relay from a killed VMM (which writes no more events), and a
    // Node process winding down gracefully takes tens of milliseconds more on a busy host (100+ ms measured here).
    [stopped] = await Promise.all([
      killProcess(vmm.pid, vmm.startTime, { signal: 'SIGKILL' }),
      stopRelay('SIGKILL'),
    ]);
  } else {
    if (vmm.pid !== undefined && isProcessAlive(vmm.pid, vmm.startTime)) {
      try {
        const { ChvProcess } = await loadChvClient();
        const handle = await ChvProcess.attach({
          pid: vmm.pid,
          socketPath: vmm.socketPath,
          ...(signal ? { signal } : {}),
        });
        await handle.stop({ gracefulMs, ...(signal ? { signal } : {}) });
        stopped = true;
      } catch {
        // Attach refuses a process that is not our VMM (or not answering): fall back to signals on the exact pid.
        stopped = await killProcess(vmm.pid, vmm.startTime);
      }
    }
    await stopRelay();
  }
  await fs.rm(vmm.socketPath, { force: true });
  await fs.rm(vmm.pidFile, { force: true });
  return stopped;
}

/**
 * Ends a process: SIGTERM (or the given signal), up to 2 s, then SIGKILL; only while (pid, start time) is still
 * the process we recorded. Its exit is polled every 2 ms at first (most processes are gone within milliseconds),
 * then every 20 ms. True when it was running.
 */
export async function killProcess(
  pid: number,
  startTime: number | undefined,
  { signal = 'SIGTERM' }: { signal?: NodeJS.Signals } = {},
): Promise<boolean> {
  if (!signalProcess(pid, startTime, signal)) return false;
  if (await waitForExit(pid, startTime, 2_000)) return true;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {}
  await waitForExit(pid, startTime, 2_000);
  return true;
}

/** Sends `signal` to (pid, start time) while that is still the process recorded; true when it was sent. */
export function signalProcess(pid: number, startTime: number | undefined, signal: NodeJS.Signals): boolean {
  if (!isProcessAlive(pid, startTime)) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * SIGKILL for the VMM recorded in `vmm` and its serial relay, without waiting for them to go (`vmmGone` waits):
 * what a restore does to the VMM it replaces, while the next one starts. Its files are left to the caller.
 */
export function killVmmNow(vmm: VmmRecord): void {
  if (vmm.pid !== undefined) signalProcess(vmm.pid, vmm.startTime, 'SIGKILL');
  const relay = vmm.serialRelay;
  if (relay) signalProcess(relay.pid, relay.startTime, 'SIGKILL');
}

/** Resolves once the VMM of `vmm` and its relay are gone (after `killVmmNow`; SIGKILL again if they linger). */
export async function vmmGone(vmm: VmmRecord): Promise<void> {
  const relay = vmm.serialRelay;
  await Promise.all([
    vmm.pid !== undefined ? killProcess(vmm.pid, vmm.startTime, { signal: 'SIGKILL' }) : undefined,
    relay ? killProcess(relay.pid, relay.startTime, { signal: 'SIGKILL' }) : undefined,
  ]);
}

/** Waits up to `ms` for (pid, start time) to be gone; true when it is. */
async function waitForExit(pid: number, startTime: number | undefined, ms: number): Promise<boolean> {
  const started = performance.now();
  for (;;) {
    if (!isProcessAlive(pid, startTime)) return true;
    const waited = performance.now() - started;
    if (waited >= ms) return false;
    await sleep(waited < 100 ? 2 : 20);
  }
}
