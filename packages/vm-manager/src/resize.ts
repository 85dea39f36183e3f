import { invalidSpec, throwIfAborted, VmManagerError } from './errors.js';
import { stepError } from './pipeline.js';
import { HOTPLUG_STEP_BYTES, parseMemorySize, type VmSpec } from './spec.js';
import type { StateStore, VmRecord } from './state-store.js';
import { loadChvClient, vmmAlive } from './vmm.js';

const MiB = 1024 * 1024;

/** What `VmManager.resize` is asked for: vCPUs, memory (a size such as `1G`, or bytes as a number), or both. */
export interface ResizeRequest {
  readonly cpus?: number;
  /** A size such as `768M`, or a number of bytes. */
  readonly memory?: number | string;
}

/** A checked resize: the `vm.resize` body and the spec values the VM has once it is done. */
export interface ResizePlan {
  readonly body: { desired_vcpus?: number; desired_ram?: number };
  readonly cpus: number;
  readonly memory: number;
  /** What is left to hot-plug: the ceiling (memory + memoryHotplug) stays where the spec put it. */
  readonly memoryHotplug: number | undefined;
}

/** Most vCPUs the VM may have: `cpusMax`, else its boot `cpus` (records from before `cpusMax` existed). */
export function maxVcpus(spec: VmSpec): number {
  return spec.cpusMax ?? spec.cpus;
}

const sizeText = (bytes: number): string =>
  bytes % (1024 * MiB) === 0 ? `${bytes / (1024 * MiB)}G` : `${Math.round(bytes / MiB)}M`;

/**
 * Checks a resize against the spec before anything is sent: vCPUs up to `cpusMax` (and not below the network's
 * queue pairs, which the next boot would refuse); memory only up, in 128 MiB steps, up to memory +
 * memoryHotplug. INVALID_ARGUMENT names `cpus` or `memory`.
 */
export function planResize(spec: VmSpec, request: ResizeRequest): ResizePlan {
  if (typeof request !== 'object' || request === null) throw new TypeError('resize needs { cpus?, memory? }');
  if (request.cpus === undefined && request.memory === undefined) {
    throw invalidSpec('cpus', 'give cpus, memory or both');
  }
  let cpus = spec.cpus;
  if (request.cpus !== undefined) {
    cpus = request.cpus;
    if (typeof cpus !== 'number' || !Number.isInteger(cpus) || cpus < 1) {
      throw invalidSpec('cpus', `${JSON.stringify(request.cpus)} is not a whole number of vCPUs`);
    }
    const max = maxVcpus(spec);
    if (cpus > max) throw invalidSpec('cpus', `at most cpusMax ${max}`);
    if (spec.network.enabled && cpus < spec.network.queues) {
      throw invalidSpec('cpus', `at least network.queues ${spec.network.queues}`);
    }
  }
  let memory = spec.memory;
  const hotplug = spec.memoryHotplug ?? 0;
  if (request.memory !== undefined) {
    // Numbers are bytes here (the VMM's unit), unlike the spec's MiB: a resize is computed, not typed.
    const bytes =
      typeof request.memory === 'number'
        ? Number.isSafeInteger(request.memory) && request.memory > 0
          ? request.memory
          : undefined
        : parseMemorySize(request.memory);
    if (bytes === undefined) {
      throw invalidSpec('memory', `${JSON.stringify(request.memory)} is not a size such as 768M or 2G`);
    }
    memory = bytes;
    // ACPI hot-plug only adds memory; Cloud Hypervisor ignores a smaller size instead of failing.
    if (memory < spec.memory) {
      throw invalidSpec(
        'memory',
        `at least the current ${sizeText(spec.memory)}: memory cannot be unplugged`,
      );
    }
    const growth = memory - spec.memory;
    if (growth % HOTPLUG_STEP_BYTES !== 0) {
      throw invalidSpec('memory', `must grow from ${sizeText(spec.memory)} in steps of 128M`);
    }
    if (growth > hotplug) {
      throw invalidSpec(
        'memory',
        hotplug === 0
          ? 'the VM has no memoryHotplug to grow into'
          : `at most ${sizeText(spec.memory + hotplug)} (memory + memoryHotplug)`,
      );
    }
  }
  const body: ResizePlan['body'] = {};
  if (cpus !== spec.cpus) body.desired_vcpus = cpus;
  if (memory !== spec.memory) body.desired_ram = memory;
  const memoryHotplug = spec.memoryHotplug === undefined ? undefined : hotplug - (memory - spec.memory);
  return { body, cpus, memory, memoryHotplug };
}

/**
 * Resizes a running or paused VM (the caller holds its lock). The new sizes become the spec's boot values once
 * the VMM accepted them, so a stop/start keeps them; the record notes the call as pending while it runs.
 */
export async function resizeVm(
  store: StateStore,
  record: VmRecord,
  request: ResizeRequest,
  signal: AbortSignal | undefined,
): Promise<void> {
  const alive = vmmAlive(record.resources.vmm);
  if ((record.status !== 'running' && record.status !== 'paused') || !alive) {
    throw new VmManagerError(
      'WRONG_STATE',
      `cannot resize ${record.name}: it is ${alive ? record.status : 'not running'}`,
      { details: { vm: record.name, status: record.status } },
    );
  }
  const plan = planResize(record.spec, request);
  if (plan.body.desired_vcpus === undefined && plan.body.desired_ram === undefined) return;
  throwIfAborted(signal);
  const { ChvClient } = await loadChvClient();
  await using client = new ChvClient({ socketPath: record.resources.vmm!.socketPath });
  record.pending = { op: 'resize', step: 'vm.resize', since: new Date().toISOString() };
  await store.write(record);
  try {
    await client.vmResize(plan.body, signal ? { signal } : {});
  } catch (error) {
    delete record.pending;
    await store.write(record).catch(() => undefined);
    throw stepError(error, record.name, 'vm.resize');
  }
  record.spec.cpus = plan.cpus;
  record.spec.memory = plan.memory;
  if (plan.memoryHotplug !== undefined) record.spec.memoryHotplug = plan.memoryHotplug;
  delete record.pending;
  await store.write(record);
}
