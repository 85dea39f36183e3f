import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { type NetworkBackend, parseVmSubnet, samePortForward } from '@my-hypervisor/net-ops';
import type { StorageBackend } from '@my-hypervisor/storage';
import { invalidSpec, throwIfAborted, VmManagerError } from './errors.js';
import { type VmEvent, VmEventHub } from './events.js';
import { FileLock } from './file-lock.js';
import { assertSpecOnHost } from './host-checks.js';
import { IpAllocator } from './ip-allocator.js';
import type { OperationOptions, VmManagerOptions } from './manager-options.js';
import { type PipelineContext, type PipelineStep, runPipeline, stepError, undoSteps } from './pipeline.js';
import { bootSteps, finalStep, haltSteps, networkSteps } from './pipeline-steps.js';
import { type ReconcileReport, reconcile } from './reconcile.js';
import { parseForwardSpec, parseVmSpec, type VmSpec } from './spec.js';
import { StateStore, type VmOperation, type VmRecord, type VmStatus } from './state-store.js';
import { type VmInfo, vmInfo } from './vm-info.js';
import { forwardRule, releaseShares, removeForwards, type VmHost, vmPaths } from './vm-resources.js';
import { assertVmmBinary, loadChvClient, stopVmm, vmmAlive } from './vmm.js';

/**
 * Runs Cloud Hypervisor VMs with networking and shares. Every operation is a pipeline of idempotent steps, each
 * recorded before it runs, under a per-VM lock held across processes; a failure undoes the completed steps in
 * reverse, and a crash leaves a record that `reconcile()` finishes or rolls back.
 */
export class VmManager {
  readonly #store: StateStore;
  readonly #options: VmManagerOptions;
  readonly #hub = new VmEventHub();
  readonly #ipam?: IpAllocator;
  readonly #runDir: string;
  readonly #host: VmHost;

  constructor(options: VmManagerOptions) {
    if (!options || typeof options.stateDir !== 'string' || typeof options.runDir !== 'string') {
      throw new TypeError('VmManager needs { stateDir, runDir }');
    }
    this.#options = options;
    this.#runDir = resolve(options.runDir);
    this.#store = new StateStore(options.stateDir);
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
      ipam: () => this.#ipamOrThrow(),
      storage: () => this.#storage(),
    };
    if (options.network) {
      parseVmSubnet(options.network.subnet, 'network.subnet');
      this.#ipam = new IpAllocator({ dir: join(options.stateDir, 'ipam'), subnet: options.network.subnet });
    }
  }

  /** The options this manager was built with. */
  get options(): VmManagerOptions {
    return this.#options;
  }

  /** Manager events from now on (steps and status changes of every operation in this process). */
  events(options: { signal?: AbortSignal } = {}): AsyncIterable<VmEvent> {
    return this.#hub.events(options);
  }

  // ---- queries ----------------------------------------------------------------------------------------------

  async get(name: string): Promise<VmInfo> {
    const record = await this.#store.read(name);
    if (!record) throw notFound(name);
    return vmInfo(record, this.#store.vmDir(record.name));
  }

  /** Every VM, sorted by name. Unreadable state files are skipped (and reported by `reconcile`). */
  async list(): Promise<VmInfo[]> {
    return this.#store.list().records.map((r) => vmInfo(r, this.#store.vmDir(r.name)));
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

  /** Boots a stopped VM: shares are prepared afresh (virtiofsd exits when its VMM disconnects). */
  async start(name: string, options: OperationOptions = {}): Promise<VmInfo> {
    await using _lock = await this.#lock(name, options.signal);
    const record = await this.#read(name);
    if (record.status === 'running' || record.status === 'paused') {
      if (vmmAlive(record.resources.vmm)) throw wrongState(record, 'start', 'it is already running');
    } else if (record.status !== 'stopped') {
      throw wrongState(record, 'start', 'run `myhv gc` to repair it first');
    }
    await this.#checkSpec(record.spec, options.signal);
    await this.#cleanupRuntime(record);
    await this.#run(
      record,
      'start',
      [...bootSteps(this.#host, record), finalStep(this.#host, record, 'running')],
      options,
    );
    return vmInfo(record, this.#store.vmDir(record.name));
  }

  /** Stops the VM (bounded ladder) and its shares; network, forwards and IP stay reserved. */
  async stop(name: string, options: OperationOptions & { gracefulMs?: number } = {}): Promise<VmInfo> {
    await using _lock = await this.#lock(name, options.signal);
    const record = await this.#read(name);
    if (record.status === 'stopped') return vmInfo(record, this.#store.vmDir(record.name));
    if (record.status !== 'running' && record.status !== 'paused') {
      throw wrongState(record, 'stop', 'run `myhv gc` to repair it first');
    }
    const gracefulMs = options.gracefulMs ?? this.#options.vmm?.stopGracefulMs ?? 5_000;
    await this.#run(
      record,
      'stop',
      [...haltSteps(this.#host, record, gracefulMs), finalStep(this.#host, record, 'stopped')],
      options,
    );
    return vmInfo(record, this.#store.vmDir(record.name));
  }

  async restart(name: string, options: OperationOptions & { gracefulMs?: number } = {}): Promise<VmInfo> {
    await this.stop(name, options);
    return this.start(name, options);
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

  /** Adds a port forward to the VM (installed now, kept across stop/start, removed on delete). */
  async addForward(name: string, input: unknown, options: OperationOptions = {}): Promise<VmInfo> {
    await using _lock = await this.#lock(name, options.signal);
    const record = await this.#read(name);
    const forward = parseForwardSpec(input);
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
    if (!existing) {
      record.resources.forwards.push(rule);
      record.spec.network.forwards.push(forward);
      await this.#store.write(record);
    }
    try {
      await this.#network().addForward(rule, options.signal ? { signal: options.signal } : {});
    } catch (error) {
      record.resources.forwards = record.resources.forwards.filter((f) => f !== rule);
      record.spec.network.forwards = record.spec.network.forwards.filter((f) => f !== forward);
      await this.#store.write(record);
      throw stepError(error, name, 'forwards');
    }
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
    try {
      await this.#network().removeForward(rule, options.signal ? { signal: options.signal } : {});
    } catch (error) {
      throw stepError(error, name, 'forwards');
    }
    record.resources.forwards = record.resources.forwards.filter((f) => f !== rule);
    record.spec.network.forwards = record.spec.network.forwards.filter(
      (f) => !(f.protocol === protocol && f.hostPort === input.hostPort),
    );
    await this.#store.write(record);
    return { removed: true, vm: vmInfo(record, this.#store.vmDir(record.name)) };
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
        emit: (event) => this.#hub.emit(event),
        store: this.#store,
        ipam: this.#ipam,
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
          if (record.resources.tap)
            await this.#network(record).detach({ vmId: record.id, tap: record.resources.tap });
          delete record.resources.network;
          delete record.resources.tap;
          await this.#store.write(record);
        },
      },
      {
        name: 'ip-release',
        run: async () => {
          await this.#ipam?.release(record.id);
          delete record.resources.ip;
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
    const steps = [...networkSteps(this.#host, record), ...bootSteps(this.#host, record)].reverse();
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
    try {
      if (action === 'pause') await client.vmPause(options.signal ? { signal: options.signal } : {});
      else await client.vmResume(options.signal ? { signal: options.signal } : {});
    } catch (error) {
      throw stepError(error, name, action);
    }
    record.status = to;
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
      record.status = op === 'start' ? 'stopped' : before;
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
  async #checkSpec(spec: VmSpec, signal: AbortSignal | undefined): Promise<void> {
    await assertSpecOnHost(spec);
    if (spec.network.enabled) {
      const network = this.#options.network;
      if (!network) throw invalidSpec('network.enabled', 'this manager has no network configured');
      if (spec.network.mycelium && !this.#options.mycelium) {
        throw invalidSpec('network.mycelium', 'this manager has no mycelium network configured');
      }
      if (spec.network.bridge && spec.network.bridge !== network.bridge) {
        throw invalidSpec(
          'network.bridge',
          `this manager's network uses bridge ${network.bridge}, not ${spec.network.bridge}`,
        );
      }
    }
    if (spec.shares.length > 0 && !this.#options.storage)
      throw invalidSpec('shares', 'this manager has no storage configured');
    await assertVmmBinary(this.#options.vmm ?? {}, spec.vmm.binary, signal, spec.name);
  }

  async #ensureDirs(): Promise<void> {
    await this.#store.init();
    await fs.mkdir(this.#options.runDir, { recursive: true, mode: 0o700 });
  }

  #lock(name: string, signal: AbortSignal | undefined, timeoutMs = this.#options.lockTimeoutMs ?? 30_000) {
    return this.#store.init().then(() =>
      FileLock.acquire(this.#store.lockPath(name), {
        ...(signal ? { signal } : {}),
        timeoutMs,
        what: `VM ${name}`,
      }),
    );
  }

  async #read(name: string): Promise<VmRecord> {
    const record = await this.#store.read(name);
    if (!record) throw notFound(name);
    return record;
  }

  /** The backend a VM's network steps use: the mycelium one for VMs that asked for it. */
  #network(record?: VmRecord): NetworkBackend {
    if (record?.spec.network.mycelium) {
      if (!this.#options.mycelium)
        throw invalidSpec('network.mycelium', 'this manager has no mycelium network configured');
      return this.#options.mycelium;
    }
    if (!this.#options.network) throw invalidSpec('network', 'this manager has no network configured');
    return this.#options.network;
  }

  #ipamOrThrow(): IpAllocator {
    if (!this.#ipam) throw invalidSpec('network', 'this manager has no network configured');
    return this.#ipam;
  }

  #storage(): StorageBackend {
    if (!this.#options.storage) throw invalidSpec('shares', 'this manager has no storage configured');
    return this.#options.storage;
  }
}

function notFound(name: string): VmManagerError {
  return new VmManagerError('NOT_FOUND', `no VM named ${name}`, { details: { vm: name } });
}

function wrongState(record: VmRecord, op: string, hint: string): VmManagerError {
  return new VmManagerError('WRONG_STATE', `cannot ${op} ${record.name}: ${hint}`, {
    details: { vm: record.name, status: record.status },
  });
}
