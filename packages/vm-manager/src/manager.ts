import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ChvClient } from '@my-hypervisor/chv-client';
import {
  type BridgeOps,
  deriveTapName,
  type NatOps,
  NetOpsError,
  type NetworkBackend,
  type PortForwardRule,
  parseVmSubnet,
  samePortForward,
} from '@my-hypervisor/net-ops';
import type { ShareRecord, StorageBackend } from '@my-hypervisor/storage';
import { invalidSpec, throwIfAborted, VmManagerError } from './errors.js';
import { type StepEvent, type VmEvent, VmEventHub } from './events.js';
import { FileLock } from './file-lock.js';
import { forwardOwner } from './forward-owner.js';
import { assertSpecOnHost } from './host-checks.js';
import { IpAllocator } from './ip-allocator.js';
import { type PipelineContext, type PipelineStep, runPipeline, stepError, undoSteps } from './pipeline.js';
import { type ReconcileReport, reconcile } from './reconcile.js';
import { type ForwardSpec, parseForwardSpec, parseVmSpec, type VmSpec } from './spec.js';
import { StateStore, type VmOperation, type VmRecord, type VmStatus } from './state-store.js';
import { buildVmConfig } from './vm-config.js';
import {
  assertVmmBinary,
  explainVmmExit,
  loadChvClient,
  spawnVmm,
  stopVmm,
  type VmmOptions,
  vmmAlive,
} from './vmm.js';

/** Where a `VmManager` keeps its state and which network, storage and VMM it drives. */
export interface VmManagerOptions {
  /** Where VM state lives (one directory per VM, IP reservations). Created 0700. */
  readonly stateDir: string;
  /** Where sockets live: keep it short (socket paths are limited to 108 bytes), e.g. /run/myhv. */
  readonly runDir: string;
  /** The network VMs join; required for VMs with `network.enabled`. */
  readonly network?: NetworkBackend;
  /**
   * The network for VMs whose spec asks for `network.mycelium`: a `MyceliumNetwork` over the same bridge and
   * subnet as `network`, so both kinds of VM share addresses and forwards.
   */
  readonly mycelium?: NetworkBackend;
  /** Shared folders; required for VMs with shares. */
  readonly storage?: StorageBackend;
  readonly vmm?: VmmOptions;
  /**
   * Ops `reconcile` uses to find leftovers no VM owns (ports on the bridge, forwards). Optional: without them
   * reconcile repairs what the records name and skips the sweep.
   */
  readonly inventory?: { readonly bridge?: BridgeOps; readonly nat?: NatOps };
  /** How long an operation waits for another process's lock on the same VM. Default 30 s. */
  readonly lockTimeoutMs?: number;
}

/** Options every `VmManager` operation takes: cancellation and progress. */
export interface OperationOptions {
  readonly signal?: AbortSignal;
  /** Called for each pipeline step (start, done with timing, failed, undo). */
  readonly onProgress?: (event: StepEvent) => void;
}

/** A VM as callers see it: the record plus whether its VMM process is alive right now. */
export interface VmInfo {
  readonly id: string;
  readonly name: string;
  readonly status: VmStatus;
  /** False when the record says running/paused but the VMM is gone (crashed, killed, host rebooted). */
  readonly vmmAlive: boolean;
  readonly pid?: number;
  readonly ip?: string;
  readonly tap?: string;
  readonly mac?: string;
  readonly bridge?: string;
  readonly ipv6?: string;
  readonly forwards: readonly PortForwardRule[];
  readonly shares: readonly { tag: string; hostPath: string; readOnly: boolean; socketPath?: string }[];
  readonly spec: VmSpec;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly pending?: VmRecord['pending'];
  readonly lastError?: VmRecord['lastError'];
  readonly paths: {
    readonly dir: string;
    readonly serialLog: string;
    readonly vmmLog: string;
    readonly socket?: string;
  };
}

const SERIAL_LOG = 'serial.log';
const VMM_LOG = 'vmm.log';

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
    return this.#info(record);
  }

  /** Every VM, sorted by name. Unreadable state files are skipped (and reported by `reconcile`). */
  async list(): Promise<VmInfo[]> {
    return this.#store.list().records.map((r) => this.#info(r));
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
      ...this.#networkSteps(record),
      ...this.#bootSteps(record),
      this.#finalStep(record, 'running'),
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
    return this.#info(record);
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
      [...this.#bootSteps(record), this.#finalStep(record, 'running')],
      options,
    );
    return this.#info(record);
  }

  /** Stops the VM (bounded ladder) and its shares; network, forwards and IP stay reserved. */
  async stop(name: string, options: OperationOptions & { gracefulMs?: number } = {}): Promise<VmInfo> {
    await using _lock = await this.#lock(name, options.signal);
    const record = await this.#read(name);
    if (record.status === 'stopped') return this.#info(record);
    if (record.status !== 'running' && record.status !== 'paused') {
      throw wrongState(record, 'stop', 'run `myhv gc` to repair it first');
    }
    const gracefulMs = options.gracefulMs ?? this.#options.vmm?.stopGracefulMs ?? 5_000;
    await this.#run(
      record,
      'stop',
      [...this.#haltSteps(record, gracefulMs), this.#finalStep(record, 'stopped')],
      options,
    );
    return this.#info(record);
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
    const rule = this.#rule(record, forward);
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
    return this.#info(record);
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
    if (!rule) return { removed: false, vm: this.#info(record) };
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
    return { removed: true, vm: this.#info(record) };
  }

  /**
   * Repairs drift after a crash or reboot: finishes or rolls back interrupted operations, marks VMs whose VMM died
   * as stopped, and removes what no VM owns (VMM and virtiofsd processes, TAPs, forwards, IP reservations,
   * sockets, temp files). Reports every change.
   */
  async reconcile(options: OperationOptions = {}): Promise<ReconcileReport> {
    await this.#ensureDirs();
    return reconcile(this, {
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

  // ---- steps --------------------------------------------------------------------------------------------------

  /** ip → network → forwards: what `create` does before the VMM exists. */
  #networkSteps(record: VmRecord): PipelineStep[] {
    if (!record.spec.network.enabled) return [];
    return [
      {
        name: 'ip',
        // Reservations are keyed by the VM id, which the record already holds: nothing more to write first.
        recordBefore: false,
        run: async (signal) => {
          record.resources.ip = await this.#ipamOrThrow().allocate(record.id, signal ? { signal } : {});
        },
        undo: async () => {
          await this.#ipamOrThrow().release(record.id);
          delete record.resources.ip;
        },
      },
      {
        name: 'network',
        intent: () => {
          record.resources.tap = deriveTapName(record.id);
        },
        run: async (signal) => {
          const attachment = await this.#network(record).attach(
            {
              vmId: record.id,
              ipv4: record.resources.ip!,
              tap: record.resources.tap,
              multiQueue: record.spec.network.queues > 1,
              hostname: record.name,
            },
            signal ? { signal } : {},
          );
          record.resources.network = attachment;
          if (record.spec.network.mycelium && !attachment.ipv6) {
            throw new VmManagerError(
              'NETWORK_FAILED',
              `${record.name}: the mycelium network gave no IPv6 address`,
              {
                details: { vm: record.name, step: 'network' },
              },
            );
          }
        },
        undo: async () => {
          if (!record.resources.tap) return;
          await this.#network(record).detach({ vmId: record.id, tap: record.resources.tap });
          delete record.resources.network;
          delete record.resources.tap;
        },
      },
      {
        name: 'forwards',
        intent: () => {
          record.resources.forwards = record.spec.network.forwards.map((f) => this.#rule(record, f));
        },
        run: async (signal) => {
          if (record.resources.forwards.length === 0) return;
          const results = await Promise.allSettled(
            record.resources.forwards.map((rule) =>
              this.#network().addForward(rule, signal ? { signal } : {}),
            ),
          );
          const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
          if (failed) throw failed.reason;
        },
        undo: async () => {
          await this.#removeForwards(record);
        },
      },
    ];
  }

  /** shares → vmm → vm.create → vm.boot → confirm: what `create` and `start` do. */
  #bootSteps(record: VmRecord): PipelineStep[] {
    const paths = this.#paths(record);
    let client: ChvClient | undefined;
    const steps: PipelineStep[] = [];
    if (record.spec.shares.length > 0) {
      steps.push({
        name: 'shares',
        intent: () => {
          record.resources.shares = record.spec.shares.map((s) => ({
            id: `${record.id}-${s.tag}`,
            tag: s.tag,
          }));
        },
        run: async (signal) => {
          const storage = this.#storage();
          const prepared = await Promise.allSettled(
            record.spec.shares.map((s) =>
              storage.prepare(
                { id: `${record.id}-${s.tag}`, hostPath: s.hostPath, tag: s.tag, readOnly: s.readOnly },
                signal ? { signal } : {},
              ),
            ),
          );
          record.resources.shares = record.resources.shares.map((s, i) => {
            const p = prepared[i];
            return p?.status === 'fulfilled' ? { ...s, record: p.value.record } : s;
          });
          const failed = prepared.find((r): r is PromiseRejectedResult => r.status === 'rejected');
          if (failed) throw failed.reason;
        },
        undo: () => this.#releaseShares(record),
      });
    }
    steps.push(
      {
        name: 'vmm',
        intent: () => {
          record.resources.vmm = { socketPath: paths.socket, pidFile: paths.pidFile, logFile: paths.vmmLog };
        },
        run: async (signal) => {
          await fs.mkdir(paths.runDir, { recursive: true, mode: 0o700 });
          const spawned = await spawnVmm(
            this.#options.vmm ?? {},
            { socketPath: paths.socket, pidFile: paths.pidFile, logFile: paths.vmmLog },
            {
              ...(record.spec.vmm.binary ? { binary: record.spec.vmm.binary } : {}),
              extraArgs: record.spec.vmm.extraArgs,
            },
            signal,
          ).catch((error: unknown) => {
            throw explainVmmExit(error, record.name);
          });
          client = spawned.client;
          record.resources.vmm = spawned.record;
          await this.#store.write(record);
        },
        undo: async () => {
          client?.close();
          await stopVmm(record.resources.vmm, { gracefulMs: 0 });
          await fs.rm(paths.runDir, { recursive: true, force: true });
          delete record.resources.vmm;
        },
      },
      {
        name: 'vm.create',
        recordBefore: false,
        run: async (signal) => {
          const config = buildVmConfig({
            spec: record.spec,
            ...(record.resources.network ? { network: record.resources.network } : {}),
            shares: record.resources.shares.map((s) => ({ tag: s.tag, socketPath: shareSocket(s) })),
            serialLog: paths.serialLog,
          });
          await client!.vmCreate(config, signal ? { signal } : {});
        },
      },
      {
        name: 'vm.boot',
        recordBefore: false,
        run: async (signal) => {
          await client!.vmBoot(signal ? { signal } : {});
        },
      },
      {
        name: 'confirm',
        recordBefore: false,
        run: async (signal) => {
          const info = await client!.vmInfo(signal ? { signal } : {});
          client!.close();
          if (info.state !== 'Running') {
            throw new VmManagerError(
              'VMM_FAILED',
              `${record.name}: the VMM reports ${info.state} after boot`,
              {
                details: { vm: record.name, step: 'confirm' },
              },
            );
          }
        },
      },
    );
    return steps;
  }

  /** vmm stop → shares release: what `stop` and `delete` do. */
  #haltSteps(record: VmRecord, gracefulMs: number): PipelineStep[] {
    return [
      {
        name: 'vmm-stop',
        run: async (signal) => {
          await stopVmm(record.resources.vmm, { gracefulMs, ...(signal ? { signal } : {}) });
          await fs.rm(this.#paths(record).runDir, { recursive: true, force: true });
          delete record.resources.vmm;
          await this.#store.write(record);
        },
      },
      {
        name: 'shares-release',
        run: async () => {
          await this.#releaseShares(record);
          await this.#store.write(record);
        },
      },
    ];
  }

  #finalStep(record: VmRecord, status: VmStatus): PipelineStep {
    return {
      name: 'record',
      recordBefore: false,
      run: async () => {
        record.status = status;
        delete record.pending;
        delete record.lastError;
        await this.#store.write(record);
      },
    };
  }

  async #delete(record: VmRecord, options: OperationOptions): Promise<void> {
    record.status = 'deleting';
    await this.#store.write(record);
    this.#hub.emit({ type: 'status', vm: record.name, status: 'deleting' });
    const steps: PipelineStep[] = [
      ...this.#haltSteps(record, 0),
      { name: 'forwards-remove', run: () => this.#removeForwards(record) },
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
    const steps = [...this.#networkSteps(record), ...this.#bootSteps(record)].reverse();
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
    if (record.resources.shares.length > 0) await this.#releaseShares(record);
    await fs.rm(this.#paths(record).runDir, { recursive: true, force: true });
    if (record.status === 'running' || record.status === 'paused') record.status = 'stopped';
    delete record.pending;
    await this.#store.write(record);
  }

  async #toggle(name: string, action: 'pause' | 'resume', options: OperationOptions): Promise<VmInfo> {
    await using _lock = await this.#lock(name, options.signal);
    const record = await this.#read(name);
    const from: VmStatus = action === 'pause' ? 'running' : 'paused';
    const to: VmStatus = action === 'pause' ? 'paused' : 'running';
    if (record.status === to) return this.#info(record);
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
    return this.#info(record);
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

  async #removeForwards(record: VmRecord): Promise<void> {
    const rules = record.resources.forwards;
    for (const [i, rule] of rules.entries()) {
      try {
        await this.#network().removeForward(rule);
      } catch (error) {
        // CONFLICT: the host port now forwards somewhere else, so it is not ours to remove.
        if (NetOpsError.isInstance(error) && error.code === 'CONFLICT') continue;
        record.resources.forwards = rules.slice(i);
        throw error;
      }
    }
    record.resources.forwards = [];
  }

  async #releaseShares(record: VmRecord): Promise<void> {
    if (record.resources.shares.length === 0) return;
    const storage = this.#storage();
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

  #rule(record: VmRecord, f: ForwardSpec): PortForwardRule {
    return {
      protocol: f.protocol,
      hostPort: f.hostPort,
      guestIp: record.resources.ip!,
      guestPort: f.guestPort,
      ...(f.hostIp ? { hostIp: f.hostIp } : {}),
      owner: forwardOwner(record.id),
    };
  }

  #paths(record: VmRecord) {
    // Plain concatenation: names and ids are validated, and path.join's normalising shows up when listing
    // thousands of VMs.
    const dir = this.#store.vmDir(record.name);
    const runDir = `${this.#runDir}/${record.id}`;
    return {
      dir,
      runDir,
      socket: `${runDir}/api.sock`,
      pidFile: `${dir}/vmm.pid`,
      vmmLog: `${dir}/${VMM_LOG}`,
      serialLog: `${dir}/${SERIAL_LOG}`,
    };
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

  // Called once per VM by `list()` (`myhv vm ls` over thousands of VMs): plain assignments in the documented key
  // order rather than conditional spreads, and only the paths a VmInfo shows.
  #info(record: VmRecord): VmInfo {
    const { resources, spec } = record;
    const vmm = resources.vmm;
    const net = resources.network;
    const info: { -readonly [K in keyof VmInfo]?: VmInfo[K] } = {
      id: record.id,
      name: record.name,
      status: record.status,
      vmmAlive: vmmAlive(vmm),
    };
    if (vmm?.pid !== undefined) info.pid = vmm.pid;
    if (resources.ip) info.ip = resources.ip;
    if (net) {
      info.tap = net.tap;
      info.mac = net.mac;
      info.bridge = net.bridge;
      if (net.ipv6) info.ipv6 = net.ipv6.address;
    }
    info.forwards = resources.forwards;
    info.shares = spec.shares.length === 0 ? [] : spec.shares.map((s) => shareInfo(s, resources.shares));
    info.spec = spec;
    info.createdAt = record.createdAt;
    info.updatedAt = record.updatedAt;
    if (record.pending) info.pending = record.pending;
    if (record.lastError) info.lastError = record.lastError;
    const dir = this.#store.vmDir(record.name);
    info.paths = vmm
      ? { dir, serialLog: `${dir}/${SERIAL_LOG}`, vmmLog: `${dir}/${VMM_LOG}`, socket: vmm.socketPath }
      : { dir, serialLog: `${dir}/${SERIAL_LOG}`, vmmLog: `${dir}/${VMM_LOG}` };
    return info as VmInfo;
  }
}

function shareInfo(
  share: VmSpec['shares'][number],
  live: VmRecord['resources']['shares'],
): VmInfo['shares'][number] {
  const state = live.find((r) => r.tag === share.tag);
  const socketPath = state ? shareSocket(state) : undefined;
  return {
    tag: share.tag,
    hostPath: share.hostPath,
    readOnly: share.readOnly,
    ...(socketPath ? { socketPath } : {}),
  };
}

function shareSocket(share: { record?: unknown }): string {
  return (share.record as ShareRecord | undefined)?.socketPath ?? '';
}

function notFound(name: string): VmManagerError {
  return new VmManagerError('NOT_FOUND', `no VM named ${name}`, { details: { vm: name } });
}

function wrongState(record: VmRecord, op: string, hint: string): VmManagerError {
  return new VmManagerError('WRONG_STATE', `cannot ${op} ${record.name}: ${hint}`, {
    details: { vm: record.name, status: record.status },
  });
}
