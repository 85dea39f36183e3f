import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { isTempFile, listPids, processStartTime, readCmdline } from '@my-hypervisor/host-utils';
import { DEFAULT_TAP_PREFIX, NetOpsError, type NetworkBackend } from '@my-hypervisor/net-ops';
import type { Confiner } from './confinement.js';
import { VmManagerError } from './errors.js';
import type { VmEvent } from './events.js';
import type { FileLock } from './file-lock.js';
import { vmIdOfForwardOwner } from './forward-owner.js';
import { isHotplugOp } from './hotplug.js';
import type { IpAllocator } from './ip-allocator.js';
import type { OperationOptions, VmManagerOptions } from './manager-options.js';
import { bridgeDrift, driftOf, type NetworkSnapshot, takeNetworkSnapshot } from './network-drift.js';
import { ownerVmId } from './nics.js';
import { settleInterruptedSnapshot } from './snapshots.js';
import { networkName } from './spec.js';
import type { StateStore, VmRecord } from './state-store.js';
import { killProcess, vmmAlive } from './vmm.js';

/** What kind of host resource a reconcile change acted on. */
export type ReconcileKind =
  | 'vm'
  | 'vmm'
  | 'serial-relay'
  | 'virtiofsd'
  | 'bridge'
  | 'tap'
  | 'netns'
  | 'forward'
  | 'ip'
  | 'run-dir'
  | 'cgroup'
  | 'uid'
  | 'temp-file';

/** One thing reconcile changed. */
export interface ReconcileChange {
  readonly kind: ReconcileKind;
  /** What it acted on: a VM name, a pid, a TAP name, a VM id (`netns`), `tcp/8080`, an address, a path. */
  readonly target: string;
  readonly action: string;
  readonly vm?: string;
}

/** What `VmManager.reconcile()` changed, left alone on purpose, and failed to repair. */
export interface ReconcileReport {
  readonly changes: ReconcileChange[];
  /** Things left alone on purpose (a VM another process is working on, an unreadable state file). */
  readonly skipped: { target: string; reason: string }[];
  /** Repairs that failed; reconcile carries on past them. Run it again once the cause is fixed. */
  readonly errors: { target: string; message: string }[];
}

/** The private parts of a `VmManager` that reconcile works with (not exported from the package). */
export interface ReconcileInternals {
  lock(name: string, signal?: AbortSignal): Promise<FileLock>;
  undoCreate(record: VmRecord, options: OperationOptions): Promise<Error[]>;
  finishDelete(record: VmRecord, options: OperationOptions): Promise<void>;
  cleanupRuntime(record: VmRecord): Promise<void>;
  /** Makes the VM's recorded network (bridge, TAP, forwards) exist again, idempotently. */
  reassertNetwork(record: VmRecord): Promise<void>;
  /** Removes one recorded forward from the host and the record (an interrupted `removeForward`). */
  finishForwardRemoval(record: VmRecord, protocol: 'tcp' | 'udp', hostPort: number): Promise<void>;
  /** Settles an interrupted disk/share add or remove (hotplug.ts); says what it did. */
  settleHotplug(record: VmRecord): Promise<string>;
  /** What the live VMM reports: running or paused (undefined when it cannot tell). */
  vmmState(record: VmRecord): Promise<'running' | 'paused' | undefined>;
  emit(event: VmEvent): void;
  readonly store: StateStore;
  /** Every network the manager drives: the default first, then the named ones. */
  readonly networks: readonly ManagedNetwork[];
  /** Confined VMs' uids and cgroups. */
  readonly confiner: Pick<Confiner, 'sweep'>;
}

/** One network a manager drives: its name, backend and IP allocator. */
export interface ManagedNetwork {
  readonly name: string;
  readonly backend: NetworkBackend;
  readonly ipam: IpAllocator;
}

export async function reconcile(
  managerOptions: VmManagerOptions,
  options: OperationOptions & { internals: ReconcileInternals },
): Promise<ReconcileReport> {
  const { internals, signal } = options;
  const report: ReconcileReport = { changes: [], skipped: [], errors: [] };
  const { store, networks } = internals;
  const runDir = managerOptions.runDir;
  const inner: OperationOptions = options.onProgress ? { onProgress: options.onProgress } : {};
  const fail = (target: string, error: unknown) =>
    report.errors.push({ target, message: error instanceof Error ? error.message : String(error) });

  // What the host has (bridge ports, forwards), listed once per network and compared with each record below.
  const snapshots = new Map<string, NetworkSnapshot>();
  for (const network of networks) {
    try {
      snapshots.set(
        network.name,
        await takeNetworkSnapshot(network.backend, managerOptions.inventory ?? {}, signal),
      );
    } catch (error) {
      fail(`network ${network.name}`, error);
    }
  }

  for (const path of await store.sweepTempFiles())
    report.changes.push({ kind: 'temp-file', target: path, action: 'removed' });

  // 1. Every VM directory: finish or roll back interrupted work, notice dead VMMs.
  const live = new Map<string, VmRecord>();
  /** VMs whose record could not be read: what they own cannot be told from leftovers. */
  const unattributed: string[] = [];
  for (const name of store.names()) {
    if (signal?.aborted) break;
    let lock: FileLock;
    try {
      lock = await internals.lock(name, signal);
    } catch (error) {
      if (VmManagerError.isInstance(error) && error.code === 'BUSY') {
        report.skipped.push({ target: name, reason: 'another process is working on it' });
        const record = await store.read(name).catch(() => undefined);
        if (record) live.set(record.id, record);
        // Claimed but not yet recorded: it may be allocating right now.
        else unattributed.push(name);
        continue;
      }
      throw error;
    }
    try {
      let record: VmRecord | undefined;
      try {
        record = await store.read(name);
      } catch (error) {
        report.skipped.push({
          target: name,
          reason: `state file unreadable (${(error as Error).message}); left for you`,
        });
        unattributed.push(name);
        continue;
      }
      if (!record) {
        await store.remove(name);
        report.changes.push({
          kind: 'vm',
          target: name,
          vm: name,
          action: 'removed a create that died before its first record',
        });
        continue;
      }
      try {
        if (record.status === 'creating') {
          const errors = await internals.undoCreate(record, inner);
          if (errors.length > 0) throw errors[0];
          report.changes.push({
            kind: 'vm',
            target: name,
            vm: name,
            action: `rolled back an interrupted create (at ${record.pending?.step ?? 'start'})`,
          });
          continue;
        }
        if (record.status === 'deleting') {
          await internals.finishDelete(record, inner);
          report.changes.push({
            kind: 'vm',
            target: name,
            vm: name,
            action: `finished an interrupted delete (at ${record.pending?.step ?? 'start'})`,
          });
          continue;
        }
        const pendingOp = record.pending?.op;
        // An interrupted restore had already stopped the VM: it ends stopped, like an interrupted start.
        const interrupted =
          pendingOp === 'start' || pendingOp === 'stop' || pendingOp === 'restart' || pendingOp === 'restore';
        // First, so the half-written snapshot directory goes even when the VMM is gone too.
        if (pendingOp === 'snapshot') await settlePending(record, internals, report);
        const dead =
          (record.status === 'running' || record.status === 'paused') && !vmmAlive(record.resources.vmm);
        if (interrupted || dead) {
          const why = interrupted
            ? `an interrupted ${record.pending!.op} (at ${record.pending!.step})`
            : 'its VMM is gone';
          if (interrupted && vmmAlive(record.resources.vmm)) {
            await killProcess(record.resources.vmm!.pid!, record.resources.vmm!.startTime);
            report.changes.push({
              kind: 'vmm',
              target: String(record.resources.vmm!.pid),
              vm: name,
              action: 'stopped',
            });
          }
          await internals.cleanupRuntime(record);
          report.changes.push({ kind: 'vm', target: name, vm: name, action: `marked stopped: ${why}` });
          internals.emit({ type: 'status', vm: name, status: 'stopped' });
        }
        await settlePending(record, internals, report);
        const snapshot = snapshots.get(networkName(record.spec));
        if (snapshot) {
          const drift = [...bridgeDrift([record], snapshot), ...driftOf(record, snapshot)];
          if (drift.length > 0) {
            await internals.reassertNetwork(record);
            const running = record.status !== 'stopped';
            // The first VM's repair made the bridge again; later VMs compare against the rest of the snapshot.
            if (snapshot.ports === undefined)
              snapshots.set(networkName(record.spec), { ...snapshot, ports: new Set() });
            for (const d of drift) {
              report.changes.push({
                kind: d.kind,
                target: d.target,
                ...(d.vm ? { vm: d.vm } : {}),
                action: `restored (${d.problem})${running && (d.kind === 'tap' || d.kind === 'netns') ? '; restart the VM to reconnect it' : ''}`,
              });
            }
          }
        }
        live.set(record.id, record);
      } catch (error) {
        fail(name, error);
        live.set(record.id, record);
      }
    } finally {
      await lock.release();
    }
  }

  const ids = new Set(live.keys());
  const ownedShares = new Set([...live.values()].flatMap((r) => r.resources.shares.map((s) => s.id)));
  const ownedTaps = new Set(
    [...live.values()]
      .flatMap((r) => [r.resources.tap, ...(r.resources.nics ?? []).map((n) => n.tap)])
      .filter(Boolean),
  );
  const ownedPids = new Set(
    [...live.values()]
      .flatMap((r) => [
        r.resources.vmm?.pid,
        r.resources.vmm?.serialRelay?.pid,
        r.resources.standby?.pid,
        r.resources.standby?.serialRelay?.pid,
      ])
      .filter((p) => p !== undefined),
  );

  if (unattributed.length > 0) {
    // Their addresses, TAPs, forwards and processes would look like nobody's: sweeping now could take them away.
    report.skipped.push({
      target: 'leftovers no VM owns',
      reason: `not swept while the record of ${unattributed.join(', ')} cannot be read`,
    });
    return report;
  }

  // 2. IP reservations nobody owns, in every network.
  for (const { ipam } of networks) {
    for (const r of await ipam.list()) {
      // A VM's own address, or one of its NICs' (`<vm id>.<nic id>`).
      if (ids.has(ownerVmId(r.owner))) continue;
      await fs.rm(join(ipam.dir, r.address), { force: true });
      report.changes.push({
        kind: 'ip',
        target: r.address,
        action: `released (owner ${r.owner || '?'} is gone)`,
      });
    }
    for (const entry of await fs.readdir(ipam.dir).catch(() => [] as string[])) {
      if (!isTempFile(entry)) continue;
      await fs.rm(join(ipam.dir, entry), { force: true });
      report.changes.push({ kind: 'temp-file', target: join(ipam.dir, entry), action: 'removed' });
    }
  }

  // 3. virtiofsd daemons nobody owns.
  const storage = managerOptions.storage;
  if (storage) {
    try {
      for (const share of await storage.list()) {
        if (ownedShares.has(share.id)) continue;
        try {
          const result = await storage.release(share);
          report.changes.push({
            kind: 'virtiofsd',
            target: share.id,
            action: result.stopped ? 'stopped and removed' : 'removed leftovers',
          });
        } catch (error) {
          fail(share.id, error);
        }
      }
    } catch (error) {
      fail('storage', error);
    }
  }

  // 4. VMM processes, their serial relays (a crash between a relay's start and its record) and run directories
  // nobody owns.
  const prefix = `${runDir.replace(/\/+$/, '')}/`;
  for (const pid of listPids()) {
    if (ownedPids.has(pid) || pid === process.pid) continue;
    const argv = readCmdline(pid);
    if (!argv) continue;
    const apiSocket = argv.includes('--api-socket')
      ? argv.find((a) => a.startsWith('path=') && a.slice(5).startsWith(prefix))?.slice(5)
      : undefined;
    const at = argv.indexOf('--vmm-socket');
    const serialSocket = at >= 0 && argv[at + 1]?.startsWith(prefix) ? argv[at + 1] : undefined;
    const socket = apiSocket ?? serialSocket;
    if (!socket) continue;
    const startTime = processStartTime(pid);
    if (await killProcess(pid, startTime)) {
      report.changes.push({
        kind: apiSocket ? 'vmm' : 'serial-relay',
        target: String(pid),
        action: `stopped (socket ${socket} belongs to no VM)`,
      });
    }
  }
  for (const entry of await fs.readdir(runDir).catch(() => [] as string[])) {
    // `<id>.next`: a standby's (standby.ts), kept while its VM records one.
    const standby = /^([0-9a-f]{12})\.next$/.exec(entry);
    if (standby ? live.get(standby[1]!)?.resources.standby : !/^[0-9a-f]{12}$/.test(entry) || ids.has(entry))
      continue;
    await fs.rm(join(runDir, entry), { recursive: true, force: true });
    report.changes.push({ kind: 'run-dir', target: join(runDir, entry), action: 'removed' });
  }

  // 5. Per-VM state a backend keeps beyond bridge ports (a namespace, with its TAP and rules) that no VM owns;
  // first, so what the backend put on the bridge for it goes with it.
  const backends = new Set([
    ...networks.map((n) => n.backend),
    ...(managerOptions.mycelium ? [managerOptions.mycelium] : []),
  ]);
  for (const backend of backends) {
    if (!backend.listAttached) continue;
    let attached: string[];
    try {
      attached = await backend.listAttached(signal ? { signal } : {});
    } catch (error) {
      fail(`network on bridge ${backend.bridge}`, error);
      continue;
    }
    for (const vmId of attached) {
      // Only what looks like one of our VM ids: a namespace that merely shares the prefix (`myhv-demo-<pid>`, a
      // user's own) is not ours to delete.
      if (ids.has(vmId) || !/^[0-9a-f]{12}$/.test(vmId)) continue;
      try {
        await backend.detach({ vmId });
        report.changes.push({ kind: 'netns', target: vmId, action: 'deleted (no VM owns it)' });
      } catch (error) {
        fail(vmId, error);
      }
    }
  }

  // 5b. Cgroups and uid reservations of confined VMs that no longer exist (a crash between release and remove).
  try {
    const swept = await internals.confiner.sweep(ids);
    for (const name of swept.cgroups)
      report.changes.push({ kind: 'cgroup', target: name, action: 'removed (no VM owns it)' });
    for (const uid of swept.uids)
      report.changes.push({ kind: 'uid', target: String(uid), action: 'released (no VM owns it)' });
  } catch (error) {
    fail('confinement', error);
  }

  // 6. TAPs on our bridges and forwards with our owner tag that no VM owns.
  const { bridge, nat } = managerOptions.inventory ?? {};
  if (bridge?.capabilities.listBridgePorts) {
    for (const { backend: network } of networks) {
      try {
        for (const port of await bridge.listBridgePorts(network.bridge)) {
          if (!port.name.startsWith(DEFAULT_TAP_PREFIX) || ownedTaps.has(port.name)) continue;
          await network.detach({ vmId: 'orphan', tap: port.name });
          report.changes.push({ kind: 'tap', target: port.name, action: 'deleted (no VM owns it)' });
        }
      } catch (error) {
        if (!(NetOpsError.isInstance(error) && error.code === 'NOT_FOUND'))
          fail(`bridge ${network.bridge}`, error);
      }
    }
  }
  if (networks.length > 0 && nat?.capabilities.listPortForwards) {
    try {
      for (const rule of await nat.listPortForwards()) {
        const vmId = vmIdOfForwardOwner(rule.owner);
        if (vmId === undefined || ids.has(vmId)) continue;
        // Removed through the ops themselves: the rule may point into a network this manager no longer has.
        await nat.removePortForward(rule);
        report.changes.push({
          kind: 'forward',
          target: `${rule.protocol}/${rule.hostPort}`,
          action: `removed (owner ${rule.owner} is gone)`,
        });
      }
    } catch (error) {
      fail('forwards', error);
    }
  }
  return report;
}

/** Finishes what a crash interrupted outside the pipelines: a forward add or removal, a pause or resume. */
async function settlePending(
  record: VmRecord,
  internals: ReconcileInternals,
  report: ReconcileReport,
): Promise<void> {
  const pending = record.pending;
  if (!pending) return;
  const name = record.name;
  /** Clears the pending op, writes the record and reports what was done (a VM change unless said otherwise). */
  const settled = async (
    action: string,
    change: { kind: ReconcileKind; target: string } = { kind: 'vm', target: name },
  ) => {
    delete record.pending;
    await internals.store.write(record);
    report.changes.push({ ...change, vm: name, action });
  };
  if (pending.op === 'forward-rm') {
    const match = /^forward-rm (tcp|udp)\/(\d+)$/.exec(pending.step);
    if (match) await internals.finishForwardRemoval(record, match[1] as 'tcp' | 'udp', Number(match[2]));
    await settled('finished an interrupted forward removal', {
      kind: 'forward',
      target: match ? `${match[1]}/${match[2]}` : pending.step,
    });
  } else if (pending.op === 'forward-add') {
    // The rule is recorded; the drift check that follows installs it if it is missing.
    await settled('finished an interrupted forward add');
  } else if (pending.op === 'pause' || pending.op === 'resume') {
    const state = vmmAlive(record.resources.vmm) ? await internals.vmmState(record) : undefined;
    if (state) record.status = state;
    await settled(`settled an interrupted ${pending.op}: ${record.status}`);
  } else if (pending.op === 'resize') {
    // The VMM may or may not have applied it; the record keeps the sizes it had, which the next boot uses.
    await settled('cleared an interrupted resize (the record keeps the old sizes; resize again to be sure)');
  } else if (isHotplugOp(pending.op)) {
    const done = await internals.settleHotplug(record);
    report.changes.push({ kind: 'vm', target: name, vm: name, action: done });
  } else if (pending.op === 'snapshot') {
    const done = await settleInterruptedSnapshot(record, internals.vmmState);
    await settled(`settled an interrupted snapshot: ${done}`);
  }
}
