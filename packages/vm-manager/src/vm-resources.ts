import {
  NetOpsError,
  type NetworkBackend,
  type PortForwardRule,
  type VmNetworkDetachRequest,
  type VmNetworkRequest,
} from '@my-hypervisor/net-ops';
import type { ShareRecord, StorageBackend } from '@my-hypervisor/storage';
import type { Confiner } from './confinement.js';
import type { JournalOptions } from './event-journal.js';
import { forwardOwner } from './forward-owner.js';
import type { IpAllocator } from './ip-allocator.js';
import { type ForwardSpec, networkPolicy } from './spec.js';
import type { StateStore, VmRecord } from './state-store.js';
import { SERIAL_LOG, VMM_LOG } from './vm-info.js';
import type { VmmOptions } from './vmm.js';
import { VMM_EVENTS_FILE } from './vmm-events.js';

/** What the pipeline steps and resource helpers need from the manager that owns them. */
export interface VmHost {
  readonly store: StateStore;
  /** The manager's run directory, resolved: each VM's sockets live in `<runDir>/<id>`. */
  readonly runDir: string;
  readonly vmm: VmmOptions;
  /**
   * The network backend a VM attaches through: its named network, or the default one (the mycelium one for VMs
   * that asked for it); throws INVALID_ARGUMENT when absent.
   */
  network(record: VmRecord): NetworkBackend;
  /** The backend a VM's port forwards go through: its network's (mycelium VMs share the default's forwards). */
  nat(record: VmRecord): NetworkBackend;
  /** The IP allocator of the VM's network; throws INVALID_ARGUMENT when the manager has no such network. */
  ipam(record: VmRecord): IpAllocator;
  /** The storage backend; throws INVALID_ARGUMENT when the manager has none. */
  storage(): StorageBackend;
  /** Decides and prepares each VMM's confinement (uid, cgroup). */
  readonly confiner: Confiner;
  /** The event journal VMM events are copied into (by each VM's serial relay); absent when it is off. */
  readonly journal?: { readonly dir: string } & JournalOptions;
}

/** Where a VM's files are: its state directory (logs, pid file) and its run directory (API socket). */
export interface VmPaths {
  readonly dir: string;
  readonly runDir: string;
  readonly socket: string;
  readonly pidFile: string;
  readonly vmmLog: string;
  readonly serialLog: string;
  /** The VMM's serial socket (its one client is the relay) and the relay's console socket. */
  readonly serialSocket: string;
  readonly consoleSocket: string;
  /** The VMM's event-monitor file (its serial relay copies it into the journal). */
  readonly vmmEvents: string;
}

export async function removeForwards(host: VmHost, record: VmRecord): Promise<void> {
  const rules = record.resources.forwards;
  for (const [i, rule] of rules.entries()) {
    try {
      await host.nat(record).removeForward(rule);
    } catch (error) {
      // CONFLICT: the host port now forwards somewhere else, so it is not ours to remove.
      if (NetOpsError.isInstance(error) && error.code === 'CONFLICT') continue;
      record.resources.forwards = rules.slice(i);
      throw error;
    }
  }
  record.resources.forwards = [];
}

export async function releaseShares(host: VmHost, record: VmRecord): Promise<void> {
  if (record.resources.shares.length === 0) return;
  const storage = host.storage();
  let known: ShareRecord[] | undefined;
  for (const share of record.resources.shares) {
    let shareRecord = share.record as ShareRecord | undefined;
    if (!shareRecord) {
      // Recorded before prepare finished: find what the backend left under that id.
      known ??= await storage.list();
      shareRecord = known?.find((r) => r.id === share.id);
    }
    if (shareRecord) await storage.release(shareRecord);
  }
  record.resources.shares = [];
}

/** What `attach` gets for the VM: its address, TAP, queues and the policy its spec asks for. */
export function attachRequest(record: VmRecord): VmNetworkRequest {
  const policy = networkPolicy(record.spec);
  return {
    vmId: record.id,
    ipv4: record.resources.ip!,
    ...(record.resources.tap ? { tap: record.resources.tap } : {}),
    multiQueue: record.spec.network.queues > 1,
    // A confined VMM (its own uid, no capabilities) can open only a TAP made for it.
    ...(record.resources.confinement
      ? { tapOwner: { uid: record.resources.confinement.uid, gid: record.resources.confinement.gid } }
      : {}),
    hostname: record.name,
    ...(policy ? { policy } : {}),
  };
}

/** What `detach` gets for the VM: with its address, by which backends find per-VM state (a namespace). */
export function detachRequest(record: VmRecord): VmNetworkDetachRequest {
  return {
    vmId: record.id,
    ...(record.resources.tap ? { tap: record.resources.tap } : {}),
    ...(record.resources.ip ? { ipv4: record.resources.ip } : {}),
  };
}

/** How the VM's VMM runs: inside its attachment's network namespace when it has one, else the manager's. */
export function vmmOptionsFor(host: Pick<VmHost, 'vmm'>, record: VmRecord): VmmOptions {
  const netns = record.resources.network?.netns ?? host.vmm.netns;
  return netns === host.vmm.netns ? host.vmm : { ...host.vmm, netns };
}

export function forwardRule(record: VmRecord, f: ForwardSpec): PortForwardRule {
  return {
    protocol: f.protocol,
    hostPort: f.hostPort,
    guestIp: record.resources.ip!,
    guestPort: f.guestPort,
    ...(f.hostIp ? { hostIp: f.hostIp } : {}),
    owner: forwardOwner(record.id),
  };
}

export function vmPaths(host: VmHost, record: VmRecord): VmPaths {
  // Plain concatenation: names and ids are validated, and path.join's normalising shows up when listing
  // thousands of VMs.
  const dir = host.store.vmDir(record.name);
  const runDir = `${host.runDir}/${record.id}`;
  return {
    dir,
    runDir,
    socket: `${runDir}/api.sock`,
    pidFile: `${dir}/vmm.pid`,
    vmmLog: `${dir}/${VMM_LOG}`,
    serialLog: `${dir}/${SERIAL_LOG}`,
    serialSocket: `${runDir}/serial.sock`,
    consoleSocket: `${runDir}/console.sock`,
    vmmEvents: `${runDir}/${VMM_EVENTS_FILE}`,
  };
}
