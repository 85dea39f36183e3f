import { renameSync, rmSync } from 'node:fs';
import { ensurePrivateDir } from './dir-trust.js';
import { VmManagerError } from './errors.js';
import type { PipelineStep } from './pipeline.js';
import { relayFor, spawnHeldSerialRelay, withSerialRelay } from './serial-console.js';
import type { VmmRecord, VmRecord } from './state-store.js';
import { type VmHost, type VmPaths, vmmOptionsFor, vmPaths } from './vm-resources.js';
import { signalProcess, spawnVmm, stopVmm, vmmAlive } from './vmm.js';
import { VMM_EVENTS_FILE } from './vmm-events.js';

// Standby VMMs (`VmmOptions.standby`): a VMM started ahead, idle, for a running VM's next restore. Starting a VMM
// (its exec chain, confinement, API socket) and its serial relay (a Node process) is most of a restore's time
// otherwise. After a start, restart, snapshot or restore returns, the manager starts one in the background for a
// running VM with a snapshot (`VmManager.idle()` waits for that), exactly as the VM's next VMM would run (binary,
// arguments, user, cgroup, event monitor), with its files beside the VM's:
//
//   <runDir>/<id>.next/{api.sock, vmm-events}   renamed to <runDir>/<id>/ when it takes over
//   <stateDir>/vms/<name>/standby.{pid,log}     renamed to vmm.pid and vmm.log then
//
// A Unix socket and an open event file keep working through a rename of their directory, so after the takeover the
// VMM answers where the VM's VMM always does, and the snapshot's config (which names <runDir>/<id>/serial.sock) binds
// its serial socket there. Its serial relay starts with it, with the VM's own paths, and holds (`--hold`) until the
// restore is done and releases it (SIGUSR2): then it connects to the serial socket and copies the VMM's events.
// Recorded in `resources.standby` (VMM and relay); a standby or relay no record names (a crash between their start
// and the write that records them) lies under the run directory, where reconcile stops it.

/** Where a VM's standby keeps its files. */
export function standbyPaths(paths: Pick<VmPaths, 'dir' | 'runDir'>): {
  runDir: string;
  socket: string;
  events: string;
  pidFile: string;
  logFile: string;
} {
  const runDir = `${paths.runDir}.next`;
  return {
    runDir,
    socket: `${runDir}/api.sock`,
    events: `${runDir}/${VMM_EVENTS_FILE}`,
    pidFile: `${paths.dir}/standby.pid`,
    logFile: `${paths.dir}/standby.log`,
  };
}

/** Whether the VM keeps a standby: asked for, and no shares (their virtiofsd must restart before a restore). */
export function wantsStandby(host: VmHost, record: VmRecord): boolean {
  return host.vmm.standby === true && record.spec.shares.length === 0 && record.resources.shares.length === 0;
}

/** The VM's recorded standby when it still runs. */
export function liveStandby(record: VmRecord): VmmRecord | undefined {
  const standby = record.resources.standby;
  return standby && vmmAlive(standby) ? standby : undefined;
}

/**
 * Starts a standby for `record` and returns its identity, for the caller to record; undefined when it could not
 * start (nothing is left then: a restore without one starts its VMM as before). Never throws.
 */
export async function spawnStandby(
  host: VmHost,
  record: VmRecord,
  signal?: AbortSignal,
): Promise<VmmRecord | undefined> {
  const paths = vmPaths(host, record);
  const at = standbyPaths(paths);
  let launched: VmmRecord | undefined;
  try {
    rmSync(at.runDir, { recursive: true, force: true });
    ensurePrivateDir(at.runDir, 'the standby directory');
    const confine = host.confiner.standby(record, at.runDir);
    const { record: started, client } = await spawnVmm(
      vmmOptionsFor(host, record),
      { socketPath: at.socket, pidFile: at.pidFile, logFile: at.logFile },
      {
        ...(record.spec.vmm.binary ? { binary: record.spec.vmm.binary } : {}),
        extraArgs: record.spec.vmm.extraArgs,
        ...(confine ? { confine } : {}),
        ...(host.journal ? { eventFile: at.events } : {}),
        onLaunched: (identity) => {
          launched = identity;
        },
      },
      signal,
    );
    client.close();
    // Its relay too, held until the takeover: the VM's paths, this VMM's events.
    const { paths: relayPaths, events, self } = relayFor(host, record, started);
    const serialRelay = await spawnHeldSerialRelay(
      host.vmm,
      relayPaths,
      events,
      self!,
      host.vmm.readyTimeoutMs ?? 10_000,
    );
    return { ...started, serialRelay };
  } catch {
    if (launched) await stopVmm(launched, { gracefulMs: 0, kill: true }).catch(() => undefined);
    rmSync(at.runDir, { recursive: true, force: true });
    return undefined;
  }
}

/** Ends the VM's standby (if any) and forgets it; the caller writes the record. */
export async function dropStandby(host: VmHost, record: VmRecord): Promise<void> {
  const standby = record.resources.standby;
  if (standby) await stopVmm(standby, { gracefulMs: 0, kill: true });
  rmSync(standbyPaths(vmPaths(host, record)).runDir, { recursive: true, force: true });
  delete record.resources.standby;
}

/**
 * For a restore's vmm-stop, once the old VMM is killed and its run directory removed: the standby's directory and
 * files take the VM's VMM's names, and it becomes `resources.vmm` (without a serial relay yet: `adoptStep`).
 */
export function takeOverStandby(host: VmHost, record: VmRecord, standby: VmmRecord): void {
  const paths = vmPaths(host, record);
  const at = standbyPaths(paths);
  renameSync(at.runDir, paths.runDir);
  renameSync(at.pidFile, paths.pidFile);
  renameSync(at.logFile, paths.vmmLog);
  delete record.resources.standby;
  // Its held relay is released after vm.restore (`relayStep`).
  record.resources.vmm = {
    ...standby,
    socketPath: paths.socket,
    pidFile: paths.pidFile,
    logFile: paths.vmmLog,
  };
}

/**
 * In place of the `vmm` step, for a restore whose vmm-stop took over the standby: nothing to start, the VMM is
 * there (a standby that died since is a failure: the VM ends stopped). Its undo ends the VMM and its serial relay.
 */
export function adoptStep(host: VmHost, record: VmRecord): PipelineStep {
  return {
    name: 'vmm',
    recordBefore: false,
    run: async () => {
      if (!vmmAlive(record.resources.vmm)) {
        throw new VmManagerError('VMM_FAILED', `${record.name}: its standby VMM exited before the restore`, {
          details: { vm: record.name, step: 'vmm' },
        });
      }
    },
    undo: async () => {
      await stopVmm(record.resources.vmm, { gracefulMs: 0, kill: true });
      rmSync(vmPaths(host, record).runDir, { recursive: true, force: true });
      delete record.resources.vmm;
    },
  };
}

/**
 * After `vm.restore` on an adopted standby whose held relay was gone: a relay starts, recorded by the final write
 * (`adoptStep`'s undo ends it with the VMM). Nothing to do otherwise.
 */
export function relayStep(host: VmHost, record: VmRecord): PipelineStep & { recordBefore: false } {
  return {
    name: 'serial-relay',
    recordBefore: false,
    run: async () => {
      const { serialRelay, ...vmm } = record.resources.vmm!;
      const released = serialRelay && signalProcess(serialRelay.pid, serialRelay.startTime, 'SIGUSR2');
      record.resources.vmm = released ? { ...vmm, serialRelay } : withSerialRelay(host, record, vmm);
    },
  };
}
