import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { Socket } from 'node:net';
import { resolve } from 'node:path';
import { isOpenPolicy, type NetworkBackend, parseVmSubnet, samePortForward } from '@my-hypervisor/net-ops';
import type { StorageBackend } from '@my-hypervisor/storage';
import { Confiner } from './confinement.js';
import { assertTrustedDir, ensurePrivateDir } from './dir-trust.js';
import { invalidSpec, throwIfAborted, VmManagerError } from './errors.js';
import {
  EventJournal,
  type JournalEvent,
  type JournalReadOptions,
  type JournalStats,
} from './event-journal.js';
import { type VmEvent, VmEventHub } from './events.js';
import { FileLock } from './file-lock.js';
import { ForwardChecks } from './forward-checks.js';
import { assertSpecOnHost } from './host-checks.js';
import {
  addDisk,
  addNic,
  addShare,
  type DiskRequest,
  type HotplugContext,
  listDevices,
  type NicRequest,
  removeDisk,
  removeNic,
  removeShare,
  type ShareRequest,
  settleHotplug,
  type VmDevices,
} from './hotplug.js';
import { IpAllocator } from './ip-allocator.js';
import type { OperationOptions, VmManagerOptions } from './manager-options.js';
import { bridgeDrift, driftOf, type NetworkDrift, takeNetworkSnapshot } from './network-drift.js';
import { DEFAULT_NETWORK, NetworkStore, validateNetworkName } from './network-store.js';
import { detachNic } from './nics.js';
import { type PipelineContext, type PipelineStep, runPipeline, stepError, undoSteps } from './pipeline.js';
import {
  bootSteps,
  confinementSteps,
  finalStep,
  haltSteps,
  networkSteps,
  reassertSteps,
} from './pipeline-steps.js';
import { type ManagedNetwork, type ReconcileReport, reconcile } from './reconcile.js';
import { type ResizeRequest, resizeVm } from './resize.js';
import { openConsole } from './serial-console.js';
import {
  removeAllSnapshots,
  removeSnapshot,
  restoreSnapshot,
  type SnapshotInternals,
  takeSnapshot,
} from './snapshots.js';
import { networkName, networkPolicy, parseForwardSpec, parseVmSpec, type VmSpec } from './spec.js';
import { dropStandby, liveStandby, spawnStandby, wantsStandby } from './standby.js';
import {
  deepFreeze,
  StateStore,
  type UnreadableRecord,
  type VmOperation,
  type VmRecord,
  type VmSnapshot,
  type VmStatus,
} from './state-store.js';
import { type VmInfo, vmInfo, withProcesses } from './vm-info.js';
import {
  detachRequest,
  forwardRule,
  releaseShares,
  removeForwards,
  type VmHost,
  vmPaths,
} from './vm-resources.js';
import { takeVmStats, type VmStats } from './vm-stats.js';
import { assertVmmBinary, loadChvClient, stopVmm, vmmAlive } from './vmm.js';

/**
 * Runs Cloud Hypervisor VMs with networking and shares. Every operation is a pipeline of idempotent steps, each
 * recorded before it runs, under a per-VM lock held across processes; a failure undoes the completed steps in
 * reverse, and a crash leaves a record that `reconcile()` finishes or rolls back.
 */
export class VmManager {
  readonly #store: StateStore;
  readonly #shareResults: boolean;
  /** The VmInfo of each shared (frozen) record, while it is in use (see `#sharedInfo`). */
  readonly #listed = new WeakMap<VmRecord, VmInfo>();
  readonly #options: VmManagerOptions;
  readonly #hub: VmEventHub;
  readonly #journal: EventJournal;
  /** IP allocators by network name, made on first use. */
  readonly #ipams = new Map<string, IpAllocator>();
  /** The named networks (`options.networks`, or what `setNetworks` last gave). */
  #networks: Readonly<Record<string, NetworkBackend>>;
  readonly #networkStore: NetworkStore;
  readonly #runDir: string;
  /** Work operations left running after they returned (`idle()`). */
  readonly #background = new Set<Promise<void>>();
  readonly #host: VmHost;

  constructor(options: VmManagerOptions) {
    if (!options || typeof options.stateDir !== 'string' || typeof options.runDir !== 'string') {
      throw new TypeError('VmManager needs { stateDir, runDir }');
    }
    this.#options = options;
    this.#runDir = resolve(options.runDir);
    this.#shareResults = options.shareResults === true;
    this.#store = new StateStore(options.stateDir, { shareRecords: this.#shareResults });
    this.#journal = new EventJournal(resolve(options.stateDir, 'events'), options.journal || {});
    const journal = options.journal === false ? undefined : this.#journal;
    this.#hub = new VmEventHub(journal && ((event) => journal.append(event)));
    if (
      options.mycelium &&
      (!options.network ||
        options.mycelium.bridge !== options.network.bridge ||
        options.mycelium.subnet !== options.network.subnet)
    ) {
      throw new TypeError('VmManager: mycelium must use the same bridge and subnet as network');
    }
    this.#host = {
      store: this.#store,
      runDir: this.#runDir,
      vmm: options.vmm ?? {},
      network: (record) => this.#network(record),
      nat: (record) => this.#nat(record),
      ipam: (record) => this.#ipamOf(networkName(record.spec)),
      storage: () => this.#storage(),
      ...(journal ? { journal: { dir: journal.dir, ...(options.journal || {}) } } : {}),
      confiner: new Confiner(options.stateDir, options.runDir, options.confinement, (spec) => {
        if (!spec.network.enabled) return true;
        return (
          (spec.network.mycelium ? this.#options.mycelium : this.#networkNamed(networkName(spec)))
            ?.setsTapOwner === true
        );
      }),
    };
    this.#networkStore = new NetworkStore(options.stateDir);
    if (options.network) parseVmSubnet(options.network.subnet, 'network.subnet');
    this.#networks = checkedNetworks(options.networks ?? {});
  }

  /**
   * Replaces the named networks: what a long-running holder of a manager (myhvd) calls when network records were
   * added or removed since it was built. VMs on a network no longer given keep running; operations that need it
   * then fail with INVALID_ARGUMENT naming it, as for a manager built without it.
   */
  setNetworks(networks: Readonly<Record<string, NetworkBackend>>): void {
    const checked = checkedNetworks(networks);
    for (const name of Object.keys(this.#networks)) {
      if (checked[name]?.subnet !== this.#networks[name]!.subnet) this.#ipams.delete(name);
    }
    this.#networks = checked;
  }

  /** The options this manager was built with. */
  get options(): VmManagerOptions {
    return this.#options;
  }

  /** Manager events from now on (steps and status changes of every operation in this process). */
  events(options: { signal?: AbortSignal } = {}): AsyncIterable<VmEvent> {
    return this.#hub.events(options);
  }

  /**
   * Events of every process on this host from the journal (`<stateDir>/events/`), oldest first, filtered; with
   * `follow`, then new ones as they are written, until `signal` aborts (or `until` passes).
   */
  journal(options: JournalReadOptions = {}): AsyncIterable<JournalEvent> {
    return this.#journal.read(options);
  }

  /** How this manager's journal writes went: a write that failed did not fail its operation, it is counted here. */
  get journalStats(): JournalStats {
    return this.#journal.stats;
  }

  // ---- queries ----------------------------------------------------------------------------------------------

  /**
   * The VM. NOT_FOUND; CORRUPT_STATE or UNSAFE_PERMISSIONS when its record (or the state directory) cannot be used.
   * With `shareResults` the answer is frozen, and while the VM is unchanged the object earlier calls returned.
   */
  async get(name: string): Promise<VmInfo> {
    this.#store.assertTrustedToRead();
    const record = this.#shareResults ? this.#store.readShared(name) : await this.#store.read(name);
    if (!record) throw notFound(name);
    return withProcesses(this.#sharedInfo(record), record);
  }

  /**
   * Every VM whose record can be read, sorted by name. Records that cannot be read are left out: `listAll()`
   * names them. UNSAFE_PERMISSIONS when the state directory is not safe to read from. With `shareResults` each
   * VmInfo is frozen and, while its VM is unchanged, the same object every call returns (the array is the caller's).
   */
  async list(): Promise<VmInfo[]> {
    return (await this.listAll()).vms;
  }

  /**
   * Every VM, sorted by name, and every VM directory whose record cannot be used (`unreadable`: missing, not a
   * record, or owned by another user or writable by others), with the path at fault and why. UNSAFE_PERMISSIONS
   * when the state directory itself is not safe to read from.
   */
  async listAll(): Promise<{ vms: VmInfo[]; unreadable: UnreadableRecord[] }> {
    const { records, unreadable } = this.#store.list();
    return { vms: records.map((r) => this.#sharedInfo(r)), unreadable };
  }

  /**
   * The VmInfo of a shared record (`list()`, `readShared()`: frozen, the same object while its file is unchanged):
   * the same frozen object while the record and the liveness of its VMM stay the same, so a caller that serializes
   * them (myhvd) can keep each VM's JSON.
   */
  #sharedInfo(record: VmRecord): VmInfo {
    const alive = vmmAlive(record.resources.vmm);
    const kept = this.#listed.get(record);
    if (kept?.vmmAlive === alive) return kept;
    const info = vmInfo(record, this.#store.vmDir(record.name), alive);
    if (!Object.isFrozen(record)) return info;
    deepFreeze(info);
    this.#listed.set(record, info);
    return info;
  }

  /**
   * How the host differs from the records: a missing bridge, TAPs, forwards (after a reboot, or someone deleting
   * them). Read-only; `reconcile()` and `start()` put them back. Empty without a network or an `inventory`.
   */
  async drift(options: { signal?: AbortSignal } = {}): Promise<NetworkDrift[]> {
    const records = this.#store.list().records;
    const drift: NetworkDrift[] = [];
    for (const { name, backend } of this.#networkList()) {
      const snapshot = await takeNetworkSnapshot(backend, this.#options.inventory ?? {}, options.signal);
      const members = records.filter((r) => networkName(r.spec) === name);
      drift.push(...bridgeDrift(members, snapshot), ...members.flatMap((r) => driftOf(r, snapshot)));
    }
    return drift;
  }

  // ---- lifecycle --------------------------------------------------------------------------------------------

  /** Validates `input`, then creates and boots the VM. Nothing is left behind on failure. */
  async create(input: unknown, options: OperationOptions = {}): Promise<VmInfo> {
    const spec = parseVmSpec(input);
    await this.#checkSpec(spec, options.signal);
    throwIfAborted(options.signal);
    await this.#ensureDirs();
    const name = spec.name;
    await using _lock = await this.#lock(name, options.signal);
    await this.#store.claim(name);
    const now = new Date().toISOString();
    const record: VmRecord = {
      schema: 1,
      id: randomBytes(6).toString('hex'),
      name,
      spec,
      status: 'creating',
      createdAt: now,
      updatedAt: now,
      resources: { forwards: [], shares: [] },
    };
    const ctx = this.#context(record, 'create', options);
    const steps = [
      ...confinementSteps(this.#host, record, true),
      ...networkSteps(this.#host, record),
      ...bootSteps(this.#host, record),
      finalStep(this.#host, record, 'running'),
    ];
    try {
      await this.#store.write(record);
      await runPipeline(ctx, steps);
    } catch (error) {
      // The steps undid themselves; drop the record only if every undo succeeded, else keep it for reconcile.
      const undoErrors = VmManagerError.isInstance(error) ? error.details.undoErrors : undefined;
      if (!undoErrors) await this.#store.remove(name);
      else await this.#recordError(record, error);
      throw error;
    }
    this.#hub.emit({ type: 'status', vm: name, status: 'running' });
    return vmInfo(record, this.#store.vmDir(record.name));
  }

  /**
   * Boots a stopped VM. Its network (bridge, TAP) and recorded forwards are re-asserted first, so a VM comes back
   * after a host reboot; shares are prepared afresh (virtiofsd exits when its VMM disconnects).
   */
  async start(name: string, options: OperationOptions = {}): Promise<VmInfo> {
    return this.#thenStandby(name, async () => {
      await using _lock = await this.#lock(name, options.signal);
      // `return await`: a bare `return` would release the lock before the operation ends.
      return await this.#start(await this.#read(name), 'start', options);
    });
  }

  /** Stops the VM (bounded ladder) and its shares; network, forwards and IP stay reserved. */
  async stop(name: string, options: OperationOptions & { gracefulMs?: number } = {}): Promise<VmInfo> {
    await using _lock = await this.#lock(name, options.signal);
    return await this.#stop(await this.#read(name), 'stop', options);
  }

  /** Stop then start under one lock, so no other process can act on the VM in between. */
  async restart(name: string, options: OperationOptions & { gracefulMs?: number } = {}): Promise<VmInfo> {
    return this.#thenStandby(name, async () => {
      await using _lock = await this.#lock(name, options.signal);
      const record = await this.#read(name);
      await this.#stop(record, 'restart', options);
      return await this.#start(record, 'restart', options);
    });
  }

  async #start(record: VmRecord, op: VmOperation, options: OperationOptions): Promise<VmInfo> {
    if (record.status === 'running' || record.status === 'paused') {
      if (vmmAlive(record.resources.vmm)) throw wrongState(record, 'start', 'it is already running');
    } else if (record.status !== 'stopped') {
      throw wrongState(record, 'start', 'run `myhv gc` to repair it first');
    }
    await this.#checkSpec(record.spec, options.signal, record);
    await this.#cleanupRuntime(record);
    await this.#run(
      record,
      op,
      [
        ...confinementSteps(this.#host, record, false),
        ...reassertSteps(this.#host, record),
        ...bootSteps(this.#host, record),
        finalStep(this.#host, record, 'running'),
      ],
      options,
    );
    return vmInfo(record, this.#store.vmDir(record.name));
  }

  async #stop(
    record: VmRecord,
    op: VmOperation,
    options: OperationOptions & { gracefulMs?: number },
  ): Promise<VmInfo> {
    if (record.status === 'stopped') return vmInfo(record, this.#store.vmDir(record.name));
    if (record.status !== 'running' && record.status !== 'paused') {
      throw wrongState(record, 'stop', 'run `myhv gc` to repair it first');
    }
    const gracefulMs = options.gracefulMs ?? this.#options.vmm?.stopGracefulMs ?? 5_000;
    await this.#run(
      record,
      op,
      [...haltSteps(this.#host, record, gracefulMs), finalStep(this.#host, record, 'stopped')],
      options,
    );
    return vmInfo(record, this.#store.vmDir(record.name));
  }

  /**
   * Deletes the VM and everything it owns. A running VM is refused unless `force` (then it is stopped first).
   * Delete rolls forward: after a failure or crash, running it again (or reconcile) finishes the job.
   */
  async delete(
    name: string,
    options: OperationOptions & { force?: boolean } = {},
  ): Promise<{ name: string; id: string }> {
    await using _lock = await this.#lock(name, options.signal);
    const record = await this.#read(name);
    if (
      (record.status === 'running' || record.status === 'paused') &&
      vmmAlive(record.resources.vmm) &&
      !options.force
    ) {
      throw wrongState(record, 'delete', 'stop it first, or use force');
    }
    await this.#delete(record, options);
    return { name, id: record.id };
  }

  async pause(name: string, options: OperationOptions = {}): Promise<VmInfo> {
    return this.#toggle(name, 'pause', options);
  }

  async resume(name: string, options: OperationOptions = {}): Promise<VmInfo> {
    return this.#toggle(name, 'resume', options);
  }

  /**
   * Changes a running or paused VM's vCPUs and/or memory (`resize.ts`): up to `cpusMax` and memory +
   * `memoryHotplug`, memory only up in 128 MiB steps. The new sizes are kept as the spec's boot values.
   * Fewer vCPUs take effect once the guest ejects them (ACPI). WRONG_STATE when the VM does not run.
   */
  async resize(name: string, request: ResizeRequest, options: OperationOptions = {}): Promise<VmInfo> {
    await using _lock = await this.#lock(name, options.signal);
    const record = await this.#read(name);
    await resizeVm(this.#store, record, request, options.signal);
    return vmInfo(record, this.#store.vmDir(record.name));
  }

  /**
   * The VM's device counters (`vm.counters`) and the CPU time and RSS of its VMM and virtiofsd processes, now
   * (`vm-stats.ts`). Takes no lock: it only reads. WRONG_STATE when the VM does not run.
   */
  async stats(name: string, options: { signal?: AbortSignal } = {}): Promise<VmStats> {
    this.#store.assertTrusted();
    const record = await this.#read(name);
    return takeVmStats(
      record,
      options.signal,
      this.#attachedBackend(record),
      this.#host.confiner.cgroupOf(record),
    );
  }

  /**
   * Attaches to the running VM's serial console (serial-console.ts): a socket carrying the guest's serial bytes
   * both ways; closing it detaches. WRONG_STATE when the VM is not running, BUSY when another console is attached.
   */
  async console(name: string, options: { signal?: AbortSignal } = {}): Promise<Socket> {
    this.#store.assertTrusted();
    const record = await this.#read(name);
    return openConsole(record.name, record.resources.vmm, vmPaths(this.#host, record).consoleSocket, options);
  }

  /** The VM's disks, shares and extra NICs with their VMM device ids (what the `remove…` methods take). */
  async devices(name: string): Promise<VmDevices> {
    this.#store.assertTrusted();
    return listDevices(await this.#read(name));
  }

  /**
   * Adds a disk (`hotplug.ts`): hot-plugged when the VM runs, and kept in the spec so every boot has it.
   * INVALID_ARGUMENT (`disks[i].path`) when the path is no file or the VM has that disk already.
   */
  async addDisk(name: string, request: DiskRequest, options: OperationOptions = {}): Promise<VmDevices> {
    await using _lock = await this.#lock(name, options.signal);
    return await addDisk(this.#hotplug(options), await this.#read(name), request);
  }

  /** Removes a disk by device id or path, from the running VM and the spec. NOT_FOUND when it has none such. */
  async removeDisk(name: string, id: string, options: OperationOptions = {}): Promise<VmDevices> {
    await using _lock = await this.#lock(name, options.signal);
    return await removeDisk(this.#hotplug(options), await this.#read(name), id);
  }

  /**
   * Shares a folder (`hotplug.ts`): a running VM gets a virtiofsd and `vm.add-fs` now (WRONG_STATE when it was
   * booted without shares: its memory is not shared), and every boot has it. INVALID_ARGUMENT names the field.
   */
  async addShare(name: string, request: ShareRequest, options: OperationOptions = {}): Promise<VmDevices> {
    await using _lock = await this.#lock(name, options.signal);
    return await addShare(this.#hotplug(options), await this.#read(name), request);
  }

  /** Removes a share by tag: detached from the running VM, its virtiofsd stopped, gone from the spec. */
  async removeShare(name: string, tag: string, options: OperationOptions = {}): Promise<VmDevices> {
    await using _lock = await this.#lock(name, options.signal);
    return await removeShare(this.#hotplug(options), await this.#read(name), tag);
  }

  /**
   * Adds a NIC on the VM's network (`nics.ts`): its own TAP and address, hot-plugged when the VM runs and kept in the
   * spec. INVALID_ARGUMENT before any change: no network, the namespace backend, eight extra NICs, a MAC in use.
   */
  async addNic(name: string, request: NicRequest = {}, options: OperationOptions = {}): Promise<VmDevices> {
    await using _lock = await this.#lock(name, options.signal);
    return await addNic(this.#hotplug(options), await this.#read(name), request);
  }

  /** Removes an extra NIC by id (`nic1`…): from the running VM, then its TAP and address. NOT_FOUND without it. */
  async removeNic(name: string, id: string, options: OperationOptions = {}): Promise<VmDevices> {
    await using _lock = await this.#lock(name, options.signal);
    return await removeNic(this.#hotplug(options), await this.#read(name), id);
  }

  #hotplug(options: OperationOptions): HotplugContext {
    return { host: this.#host, signal: options.signal };
  }

  /** Adds a port forward to the VM (installed now, kept across stop/start, removed on delete). */
  async addForward(name: string, input: unknown, options: OperationOptions = {}): Promise<VmInfo> {
    // Bad input is refused before the lock file (or anything else) is written.
    const forward = parseForwardSpec(input);
    await new ForwardChecks(this.#options).assertAddable(name, forward, options.signal);
    await using _lock = await this.#lock(name, options.signal);
    const record = await this.#read(name);
    if (!record.spec.network.enabled || !record.resources.ip) {
      throw invalidSpec('network.enabled', `${name} has no network to forward to`);
    }
    const rule = forwardRule(record, forward);
    const existing = record.resources.forwards.find(
      (f) => f.protocol === rule.protocol && f.hostPort === rule.hostPort,
    );
    if (existing && !samePortForward(existing, rule)) {
      throw new VmManagerError('CONFLICT', `${name} already forwards ${rule.protocol}/${rule.hostPort}`, {
        details: { vm: name, field: 'hostPort' },
      });
    }
    if (existing) {
      // Already recorded: make sure it is installed too (it may not be, after a reboot).
      try {
        await this.#nat(record).addForward(existing, options.signal ? { signal: options.signal } : {});
      } catch (error) {
        throw stepError(error, name, 'forward-add');
      }
      return vmInfo(record, this.#store.vmDir(record.name));
    }
    // Recorded (with the operation pending) before it is installed: a crash in between leaves a record that
    // reconcile finishes by installing the rule, never a rule no record names.
    record.resources.forwards.push(rule);
    record.spec.network.forwards.push(forward);
    record.pending = { op: 'forward-add', step: 'forward-add', since: now() };
    await this.#store.write(record);
    try {
      await this.#nat(record).addForward(rule, options.signal ? { signal: options.signal } : {});
    } catch (error) {
      record.resources.forwards = record.resources.forwards.filter((f) => f !== rule);
      record.spec.network.forwards = record.spec.network.forwards.filter((f) => f !== forward);
      delete record.pending;
      await this.#store.write(record);
      throw stepError(error, name, 'forward-add');
    }
    delete record.pending;
    await this.#store.write(record);
    return vmInfo(record, this.#store.vmDir(record.name));
  }

  async removeForward(
    name: string,
    input: { protocol?: 'tcp' | 'udp'; hostPort: number },
    options: OperationOptions = {},
  ): Promise<{ removed: boolean; vm: VmInfo }> {
    await using _lock = await this.#lock(name, options.signal);
    const record = await this.#read(name);
    const protocol = input.protocol ?? 'tcp';
    const rule = record.resources.forwards.find(
      (f) => f.protocol === protocol && f.hostPort === input.hostPort,
    );
    if (!rule) return { removed: false, vm: vmInfo(record, this.#store.vmDir(record.name)) };
    record.pending = { op: 'forward-rm', step: `forward-rm ${protocol}/${input.hostPort}`, since: now() };
    await this.#store.write(record);
    try {
      await this.#nat(record).removeForward(rule, options.signal ? { signal: options.signal } : {});
    } catch (error) {
      delete record.pending;
      await this.#store.write(record);
      throw stepError(error, name, 'forwards');
    }
    record.resources.forwards = record.resources.forwards.filter((f) => f !== rule);
    record.spec.network.forwards = record.spec.network.forwards.filter(
      (f) => !(f.protocol === protocol && f.hostPort === input.hostPort),
    );
    delete record.pending;
    await this.#store.write(record);
    return { removed: true, vm: vmInfo(record, this.#store.vmDir(record.name)) };
  }

  // ---- snapshots (snapshots.ts) ------------------------------------------------------------------------------

  /**
   * Pauses the VM, snapshots it into `<stateDir>/vms/<name>/snapshots/<id>/` (or a new directory in `to`, an
   * absolute existing directory only root or this user can write), resumes it unless `leavePaused`, and records
   * the snapshot. WRONG_STATE when not running; NO_SPACE when the file system cannot hold the guest's memory.
   */
  async snapshot(
    name: string,
    options: OperationOptions & { to?: string; leavePaused?: boolean } = {},
  ): Promise<VmSnapshot> {
    return this.#thenStandby(name, async () => {
      await using _lock = await this.#lock(name, options.signal);
      return await takeSnapshot(this.#snapshotInternals(), await this.#read(name), options);
    });
  }

  /** The VM's snapshots, oldest first. */
  async listSnapshots(name: string): Promise<VmSnapshot[]> {
    this.#store.assertTrusted();
    return (await this.#read(name)).snapshots ?? [];
  }

  /** Forgets a snapshot and deletes its files. NOT_FOUND when the VM has no such snapshot. */
  async removeSnapshot(name: string, id: string, options: OperationOptions = {}): Promise<VmSnapshot> {
    await using _lock = await this.#lock(name, options.signal);
    return await removeSnapshot(this.#snapshotInternals(), await this.#read(name), id);
  }

  /**
   * Restores the VM from snapshot `from` (default: the latest) and resumes it. Refused up front, the VM left as
   * it was: NOT_FOUND (no such snapshot), CORRUPT_STATE (files missing or changed), CONFLICT (taken with other
   * cpus, memory, disks, shares or network). A failure after the VM was stopped leaves it stopped.
   */
  async restore(name: string, options: OperationOptions & { from?: string } = {}): Promise<VmInfo> {
    return this.#thenStandby(name, async () => {
      await using _lock = await this.#lock(name, options.signal);
      const record = await this.#read(name);
      await restoreSnapshot(this.#snapshotInternals(), record, options);
      return vmInfo(record, this.#store.vmDir(record.name));
    });
  }

  /**
   * Resolves once the work operations leave running after they return is done: with `vmm.standby`, the standby VMM
   * that a start, restart, snapshot or restore starts afterwards for the VM's next restore (recorded under the VM's
   * lock, which an operation asked for meanwhile waits for).
   */
  async idle(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  /**
   * Runs `work`, then, with `vmm.standby`, sees to the VM's standby: after an operation returned, a running VM with a
   * snapshot and no live standby gets one (standby.ts), in the background, off the operation's time. A failure leaves
   * it without: its next restore starts a VMM as before.
   */
  async #thenStandby<T>(name: string, work: () => Promise<T>): Promise<T> {
    // `work` holds the VM's lock while it runs; the standby takes it after.
    const result = await work();
    this.#standbyLater(name);
    return result;
  }

  #standbyLater(name: string): void {
    if (this.#host.vmm.standby !== true) return;
    const task: Promise<void> = this.#refreshStandby(name)
      .catch(() => undefined)
      .finally(() => this.#background.delete(task));
    this.#background.add(task);
  }

  async #refreshStandby(name: string): Promise<void> {
    await using _lock = await this.#lock(name, undefined);
    const record = await this.#store.read(name);
    if (!record || (record.status !== 'running' && record.status !== 'paused')) return;
    if (!vmmAlive(record.resources.vmm) || !wantsStandby(this.#host, record)) return;
    if ((record.snapshots?.length ?? 0) === 0 || liveStandby(record)) return;
    const next = await spawnStandby(this.#host, record);
    if (!next) return;
    record.resources.standby = next;
    try {
      await this.#store.write(record);
    } catch (error) {
      await stopVmm(next, { gracefulMs: 0, kill: true });
      throw error;
    }
  }

  #snapshotInternals(): SnapshotInternals {
    return {
      host: this.#host,
      run: (record, op, steps, options) => this.#run(record, op, steps, options),
      checkSpec: (record, signal) => this.#checkSpec(record.spec, signal, record),
      cleanupRuntime: (record) => this.#cleanupRuntime(record),
      emit: (event) => this.#hub.emit(event),
    };
  }

  /**
   * Repairs drift after a crash or reboot: finishes or rolls back interrupted operations, marks VMs whose VMM died
   * as stopped, and removes what no VM owns (VMM and virtiofsd processes, TAPs, forwards, IP reservations,
   * sockets, temp files). Reports every change.
   */
  async reconcile(options: OperationOptions = {}): Promise<ReconcileReport> {
    await this.#ensureDirs();
    return reconcile(this.#options, {
      ...options,
      internals: {
        lock: (name, signal) => this.#lock(name, signal, 0),
        undoCreate: (record, ctxOptions) => this.#undoCreate(record, ctxOptions),
        finishDelete: (record, ctxOptions) => this.#delete(record, ctxOptions),
        cleanupRuntime: (record) => this.#cleanupRuntime(record),
        reassertNetwork: async (record) => {
          for (const step of reassertSteps(this.#host, record)) await step.run(options.signal);
          await this.#store.write(record);
        },
        finishForwardRemoval: async (record, protocol, hostPort) => {
          const rule = record.resources.forwards.find(
            (f) => f.protocol === protocol && f.hostPort === hostPort,
          );
          if (rule) await this.#nat(record).removeForward(rule);
          record.resources.forwards = record.resources.forwards.filter((f) => f !== rule);
          record.spec.network.forwards = record.spec.network.forwards.filter(
            (f) => !(f.protocol === protocol && f.hostPort === hostPort),
          );
        },
        vmmState: async (record) => {
          const { ChvClient } = await loadChvClient();
          await using client = new ChvClient({ socketPath: record.resources.vmm!.socketPath });
          const info = await client.vmInfo({ signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
          return info?.state === 'Paused' ? 'paused' : info?.state === 'Running' ? 'running' : undefined;
        },
        settleHotplug: (record) => settleHotplug(this.#host, record),
        emit: (event) => this.#hub.emit(event),
        store: this.#store,
        networks: this.#networkList(),
        confiner: this.#host.confiner,
      },
    });
  }

  async #delete(record: VmRecord, options: OperationOptions): Promise<void> {
    record.status = 'deleting';
    await this.#store.write(record);
    this.#hub.emit({ type: 'status', vm: record.name, status: 'deleting' });
    const steps: PipelineStep[] = [
      ...haltSteps(this.#host, record, 0),
      { name: 'forwards-remove', run: () => removeForwards(this.#host, record) },
      {
        name: 'network-detach',
        run: async () => {
          // The extra NICs first (each frees its address), then the VM's own TAP.
          for (const nic of [...(record.resources.nics ?? [])]) {
            await detachNic(this.#host, record, nic.id);
            await this.#store.write(record);
          }
          if (record.resources.tap) await this.#network(record).detach(detachRequest(record));
          delete record.resources.network;
          delete record.resources.tap;
          await this.#store.write(record);
        },
      },
      {
        name: 'ip-release',
        run: async () => {
          if (record.spec.network.enabled) await this.#ipamOf(networkName(record.spec)).release(record.id);
          delete record.resources.ip;
          await this.#store.write(record);
        },
      },
      { name: 'snapshots-remove', run: () => removeAllSnapshots(record) },
      {
        // After the VMM and the snapshots: the cgroup must be empty, the uid owns nothing of ours any more.
        name: 'confinement-release',
        run: async () => {
          await this.#host.confiner.release(record);
          await this.#store.write(record);
        },
      },
      // Nothing to record before the record itself goes.
      { name: 'remove', recordBefore: false, run: () => this.#store.remove(record.name) },
    ];
    // Deleting never undoes itself: a failure keeps the record in `deleting` for the next rm or reconcile.
    try {
      await runPipeline(this.#context(record, 'delete', options), steps);
    } catch (error) {
      await this.#recordError(record, error).catch(() => undefined);
      throw error;
    }
    this.#hub.emit({ type: 'status', vm: record.name, status: 'deleted' });
  }

  /** Rolls back a create that never finished: every recorded resource, then the record itself. */
  async #undoCreate(record: VmRecord, options: OperationOptions): Promise<Error[]> {
    const ctx = this.#context(record, 'create', options);
    const steps = [
      ...confinementSteps(this.#host, record, true),
      ...networkSteps(this.#host, record),
      ...bootSteps(this.#host, record),
    ].reverse();
    const errors = await undoSteps(ctx, steps);
    if (errors.length === 0) await this.#store.remove(record.name);
    return errors;
  }

  /** Before start (and in reconcile): whatever a dead VMM left — socket, virtiofsd, run dir. */
  async #cleanupRuntime(record: VmRecord): Promise<void> {
    if (record.resources.vmm && !vmmAlive(record.resources.vmm)) {
      await stopVmm(record.resources.vmm, { gracefulMs: 0 });
      delete record.resources.vmm;
    }
    if (record.resources.shares.length > 0) await releaseShares(this.#host, record);
    await fs.rm(vmPaths(this.#host, record).runDir, { recursive: true, force: true });
    await dropStandby(this.#host, record);
    if (record.status === 'running' || record.status === 'paused') record.status = 'stopped';
    delete record.pending;
    await this.#store.write(record);
  }

  async #toggle(name: string, action: 'pause' | 'resume', options: OperationOptions): Promise<VmInfo> {
    await using _lock = await this.#lock(name, options.signal);
    const record = await this.#read(name);
    const from: VmStatus = action === 'pause' ? 'running' : 'paused';
    const to: VmStatus = action === 'pause' ? 'paused' : 'running';
    if (record.status === to) return vmInfo(record, this.#store.vmDir(record.name));
    if (record.status !== from || !vmmAlive(record.resources.vmm)) {
      throw wrongState(
        record,
        action,
        `it is ${vmmAlive(record.resources.vmm) ? record.status : 'not running'}`,
      );
    }
    const { ChvClient } = await loadChvClient();
    await using client = new ChvClient({ socketPath: record.resources.vmm!.socketPath });
    // Recorded first: after a crash in between, reconcile asks the VMM which state it is really in.
    record.pending = { op: action, step: `vm.${action}`, since: now() };
    await this.#store.write(record);
    try {
      if (action === 'pause') await client.vmPause(options.signal ? { signal: options.signal } : {});
      else await client.vmResume(options.signal ? { signal: options.signal } : {});
    } catch (error) {
      delete record.pending;
      await this.#recordError(record, error).catch(() => undefined);
      throw stepError(error, name, action);
    }
    record.status = to;
    delete record.pending;
    await this.#store.write(record);
    this.#hub.emit({ type: 'status', vm: name, status: to });
    return vmInfo(record, this.#store.vmDir(record.name));
  }

  // ---- helpers ------------------------------------------------------------------------------------------------

  async #run(
    record: VmRecord,
    op: VmOperation,
    steps: PipelineStep[],
    options: OperationOptions,
  ): Promise<void> {
    const before = record.status;
    try {
      await runPipeline(this.#context(record, op, options), steps);
    } catch (error) {
      // A failed start ends stopped; so does a restore once its VMM is gone (it stops the VM as its first step).
      record.status = op === 'start' || (op === 'restore' && !record.resources.vmm) ? 'stopped' : before;
      // A VM that ends stopped keeps no standby.
      if (record.status === 'stopped') await dropStandby(this.#host, record).catch(() => undefined);
      delete record.pending;
      await this.#recordError(record, error).catch(() => undefined);
      throw error;
    }
    this.#hub.emit({ type: 'status', vm: record.name, status: record.status });
  }

  #context(record: VmRecord, op: VmOperation, options: OperationOptions): PipelineContext {
    return {
      vm: record.name,
      op,
      ...(options.signal ? { signal: options.signal } : {}),
      beforeStep: async (step) => {
        record.pending = { op, step, since: new Date().toISOString() };
        await this.#store.write(record);
      },
      emit: (event) => {
        options.onProgress?.(event);
        this.#hub.emit(event);
      },
    };
  }

  async #recordError(record: VmRecord, error: unknown): Promise<void> {
    if (!(await this.#store.read(record.name).catch(() => undefined))) return;
    record.lastError = {
      code: VmManagerError.isInstance(error) ? error.code : 'UNKNOWN',
      message: error instanceof Error ? error.message : String(error),
      ...(VmManagerError.isInstance(error) && error.details.step ? { step: error.details.step } : {}),
      at: new Date().toISOString(),
    };
    await this.#store.write(record);
  }

  /**
   * Host checks that need no lock: files exist (the kernel bootable), the VMM binary answers like
   * cloud-hypervisor, the network and storage the spec needs are configured.
   */
  async #checkSpec(spec: VmSpec, signal: AbortSignal | undefined, self?: VmRecord): Promise<void> {
    await assertSpecOnHost(spec);
    if (spec.network.enabled) {
      const name = networkName(spec);
      if (name === DEFAULT_NETWORK && !this.#options.network)
        throw invalidSpec('network.enabled', 'this manager has no network configured');
      const network = this.#networkNamed(name);
      if (spec.network.mycelium && (name !== DEFAULT_NETWORK || !this.#options.mycelium)) {
        throw invalidSpec('network.mycelium', `the ${name} network has no mycelium configured`);
      }
      if (spec.network.bridge && spec.network.bridge !== network.bridge) {
        throw invalidSpec(
          'network.bridge',
          `the ${name} network uses bridge ${network.bridge}, not ${spec.network.bridge}`,
        );
      }
      const backend = spec.network.mycelium ? this.#options.mycelium! : network;
      const policy = networkPolicy(spec);
      // A backend that cannot enforce a policy would leave the VM believed isolated when it is not.
      if (!isOpenPolicy(policy) && !backend.enforcesPolicy) {
        throw invalidSpec(
          policy?.isolation === 'vm' ? 'network.isolation' : 'network.egress',
          `the ${name} network cannot isolate VMs or restrict their egress (its backend enforces no policy)`,
        );
      }
    }
    if (spec.shares.length > 0 && !this.#options.storage)
      throw invalidSpec('shares', 'this manager has no storage configured');
    // Create only: a VM being started already owns its forwards.
    if (!self)
      await new ForwardChecks(this.#options).assertCreatable(spec.name, spec.network.forwards, signal);
    await this.#host.confiner.checkSpec(spec);
    await assertVmmBinary(this.#options.vmm ?? {}, spec.vmm.binary, signal, spec.name);
  }

  /** Creates the state and run directories (0700); UNSAFE_PERMISSIONS when others own or could write them. */
  async #ensureDirs(): Promise<void> {
    await this.#store.init();
    ensurePrivateDir(this.#runDir, 'the run directory');
  }

  /** Every operation on a VM starts here, so none reads a record or runs a VMM from a directory others can write. */
  #lock(name: string, signal: AbortSignal | undefined, timeoutMs = this.#options.lockTimeoutMs ?? 30_000) {
    return this.#store.init().then(() => {
      assertTrustedDir(this.#runDir, 'the run directory');
      return FileLock.acquire(this.#store.lockPath(name), {
        ...(signal ? { signal } : {}),
        timeoutMs,
        what: `VM ${name}`,
      });
    });
  }

  async #read(name: string): Promise<VmRecord> {
    const record = await this.#store.read(name);
    if (!record) throw notFound(name);
    return record;
  }

  /** The backend a VM attaches through: its named network's, or the default (the mycelium one if it asked). */
  #network(record: VmRecord): NetworkBackend {
    if (record.spec.network.mycelium) {
      if (!this.#options.mycelium)
        throw invalidSpec('network.mycelium', 'this manager has no mycelium network configured');
      return this.#options.mycelium;
    }
    return this.#nat(record);
  }

  /** The backend the VM is attached through, or undefined when it has no network (or the manager no longer has it). */
  #attachedBackend(record: VmRecord): NetworkBackend | undefined {
    if (!record.spec.network.enabled || !record.resources.network) return undefined;
    try {
      return this.#network(record);
    } catch {
      return undefined;
    }
  }

  /** The backend a VM's forwards go through: its network's (mycelium VMs share the default's forwards). */
  #nat(record: VmRecord): NetworkBackend {
    return this.#networkNamed(networkName(record.spec));
  }

  #networkNamed(name: string): NetworkBackend {
    const network = name === DEFAULT_NETWORK ? this.#options.network : this.#networks[name];
    if (network) return network;
    if (name === DEFAULT_NETWORK) throw invalidSpec('network', 'this manager has no network configured');
    const known = [DEFAULT_NETWORK, ...Object.keys(this.#networks)].join(', ');
    throw invalidSpec('network.name', `there is no network named ${name} (networks: ${known})`);
  }

  #ipamOf(name: string): IpAllocator {
    let ipam = this.#ipams.get(name);
    if (!ipam) {
      const network = this.#networkNamed(name);
      ipam = new IpAllocator({ dir: this.#networkStore.ipamDir(), subnet: network.subnet });
      this.#ipams.set(name, ipam);
    }
    return ipam;
  }

  /** Every network this manager drives, with its allocator: what reconcile sweeps. */
  #networkList(): ManagedNetwork[] {
    const names = [...(this.#options.network ? [DEFAULT_NETWORK] : []), ...Object.keys(this.#networks)];
    return names.map((name) => ({ name, backend: this.#networkNamed(name), ipam: this.#ipamOf(name) }));
  }

  #storage(): StorageBackend {
    if (!this.#options.storage) throw invalidSpec('shares', 'this manager has no storage configured');
    return this.#options.storage;
  }
}

const now = (): string => new Date().toISOString();

function notFound(name: string): VmManagerError {
  return new VmManagerError('NOT_FOUND', `no VM named ${name}`, { details: { vm: name } });
}

function wrongState(record: VmRecord, op: string, hint: string): VmManagerError {
  return new VmManagerError('WRONG_STATE', `cannot ${op} ${record.name}: ${hint}`, {
    details: { vm: record.name, status: record.status },
  });
}

/** `networks` as given, each name and subnet checked (TypeError or INVALID_ARGUMENT naming it). */
function checkedNetworks(
  networks: Readonly<Record<string, NetworkBackend>>,
): Readonly<Record<string, NetworkBackend>> {
  if (typeof networks !== 'object' || networks === null) throw new TypeError('networks must be an object');
  for (const [name, network] of Object.entries(networks)) {
    validateNetworkName(name, 'networks');
    if (name === DEFAULT_NETWORK)
      throw new TypeError(`VmManager: networks.${name}: pass the default as network`);
    parseVmSubnet(network.subnet, `networks.${name}.subnet`);
  }
  return { ...networks };
}
