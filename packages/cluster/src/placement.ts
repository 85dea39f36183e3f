import type { Cluster, ClusterEvent, HostRecord } from './cluster.js';

/** What a VM asks of the host it is placed on (ADR 016). */
export interface Placement {
  /** Only hosts with every one of these labels. */
  readonly labels?: Readonly<Record<string, string>>;
  /** `spread` (default): the live host with the most free memory; `pack`: the fullest one that fits. */
  readonly policy?: 'spread' | 'pack';
}

/** A VM's desired state in the cluster: its spec (a VmSpec input), where it may run, and whether to re-place it. */
export interface ClusterVmSpec {
  readonly name: string;
  /** The VmSpec input the host's manager creates it from; `cpus` and `memoryBytes` size the placement. */
  readonly spec: Readonly<Record<string, unknown>>;
  readonly cpus: number;
  readonly memoryBytes: number;
  readonly placement?: Placement;
  /** `always` (default): re-placed when its host is lost; `no`: left unplaced until someone acts. */
  readonly restart?: 'always' | 'no';
  /** Whether it should run (default true): its host's agent starts or stops it to match (`Cluster.setRunning`). */
  readonly running?: boolean;
}

/** Which host a VM is assigned to; `epoch` grows with every (re)placement. */
export interface Assignment {
  readonly host: string;
  readonly epoch: number;
}

/** A VM as a watcher holds it: its desired state and assignment, each with the revision it was written at. */
export interface VmEntry {
  spec?: ClusterVmSpec;
  specRevision: number;
  assignment?: Assignment;
  assignmentRevision: number;
}

/** What a placement controller did so far. */
export interface PlacementStats {
  readonly decisions: number;
  readonly conflicts: number;
  readonly unplaceable: number;
}

/**
 * The placement controller: one at a time in the cluster (etcd's election), it assigns every VM without a live host
 * to a live host with room, each assignment a transaction conditioned on the VM's spec and assignment revisions it
 * read and on the target host being live. Watches, never polls. Runs until `signal` aborts.
 */
export async function runPlacement(
  cluster: Cluster,
  options: {
    readonly id: string;
    readonly signal: AbortSignal;
    readonly onStats?: (stats: PlacementStats) => void;
  },
): Promise<void> {
  const { signal } = options;
  await cluster.campaign('placement', options.id, signal);
  if (signal.aborted) return;
  const hosts = new Map<string, { record: HostRecord; revision: number }>();
  const vms = new Map<string, VmEntry>();
  const stats = { decisions: 0, conflicts: 0, unplaceable: 0 };
  const { revision, entries } = await cluster.list('');
  for (const entry of entries) apply(entry, hosts, vms);
  let pending = true;
  const place = async () => {
    pending = false;
    const load = new Map<string, { cpus: number; memoryBytes: number; vms: number }>();
    for (const id of hosts.keys()) load.set(id, { cpus: 0, memoryBytes: 0, vms: 0 });
    for (const vm of vms.values()) {
      const used = vm.assignment && vm.spec ? load.get(vm.assignment.host) : undefined;
      if (used && vm.spec) {
        used.cpus += vm.spec.cpus;
        used.memoryBytes += vm.spec.memoryBytes;
        used.vms += 1;
      }
    }
    // Decide every VM first (each decision counts against its host's room), then write them all at once: each
    // write is conditioned on its own premises, so one that lost a race fails alone and is decided again.
    const decided: { name: string; vm: VmEntry; assignment: Assignment }[] = [];
    for (const [name, vm] of [...vms].sort(([a], [b]) => a.localeCompare(b))) {
      if (!vm.spec) continue;
      const live = vm.assignment !== undefined && hosts.has(vm.assignment.host);
      if (live) continue;
      if (vm.assignment && vm.spec.restart === 'no') continue;
      const target = choose(vm.spec, hosts, load);
      if (!target) {
        stats.unplaceable += 1;
        continue;
      }
      decided.push({ name, vm, assignment: { host: target, epoch: (vm.assignment?.epoch ?? 0) + 1 } });
      const used = load.get(target)!;
      used.cpus += vm.spec.cpus;
      used.memoryBytes += vm.spec.memoryBytes;
      used.vms += 1;
    }
    const written = await Promise.all(
      decided.map(({ name, vm, assignment }) =>
        cluster.assign(name, assignment, {
          specRevision: vm.specRevision,
          assignmentRevision: vm.assignmentRevision,
          host: assignment.host,
        }),
      ),
    );
    for (const [i, { vm, assignment }] of decided.entries()) {
      if (written[i]) {
        stats.decisions += 1;
        vm.assignment = assignment;
      } else {
        stats.conflicts += 1;
        pending = true;
      }
    }
    options.onStats?.({ ...stats });
  };
  await place();
  let placing: Promise<void> | undefined;
  for await (const event of cluster.watch('', { fromRevision: revision + 1, signal })) {
    apply(event, hosts, vms);
    pending = true;
    // Coalesce a burst of events into one pass; a pass in progress is followed by another when needed.
    placing ??= (async () => {
      await new Promise((resolve) => setImmediate(resolve));
      while (pending && !signal.aborted) await place();
      placing = undefined;
    })();
  }
  await placing;
}

/** Folds one key of the cluster into the controller's view. */
function apply(
  event: ClusterEvent,
  hosts: Map<string, { record: HostRecord; revision: number }>,
  vms: Map<string, VmEntry>,
): void {
  const [kind, name] = event.key.split('/');
  if (kind === 'hosts' && name) {
    if (event.type === 'delete') hosts.delete(name);
    else hosts.set(name, { record: JSON.parse(event.value) as HostRecord, revision: event.modRevision });
    return;
  }
  if (kind === 'vms') applyVmKey(event, vms);
}

/**
 * Folds a change of a `vms/<name>/…` key into `vms`: its spec or its assignment, with their revisions; a VM with
 * neither is dropped. Other parts (its status) are ignored. The controller's and the agents' one view of a VM.
 */
export function applyVmKey(event: ClusterEvent, vms: Map<string, VmEntry>): void {
  const [, name, part] = event.key.split('/');
  if (!name || (part !== 'spec' && part !== 'assignment')) return;
  const vm = vms.get(name) ?? { specRevision: 0, assignmentRevision: 0 };
  vms.set(name, vm);
  const deleted = event.type === 'delete';
  if (part === 'spec') {
    vm.spec = deleted ? undefined : (JSON.parse(event.value) as ClusterVmSpec);
    vm.specRevision = deleted ? 0 : event.modRevision;
  } else {
    vm.assignment = deleted ? undefined : (JSON.parse(event.value) as Assignment);
    vm.assignmentRevision = deleted ? 0 : event.modRevision;
  }
  if (!vm.spec && !vm.assignment) vms.delete(name);
}

/** The host a VM goes to under its placement, or undefined when none matches or has room. */
function choose(
  spec: ClusterVmSpec,
  hosts: ReadonlyMap<string, { record: HostRecord }>,
  load: ReadonlyMap<string, { cpus: number; memoryBytes: number; vms: number }>,
): string | undefined {
  const wanted = Object.entries(spec.placement?.labels ?? {});
  let best: { id: string; free: number; vms: number } | undefined;
  for (const [id, { record }] of hosts) {
    if (!wanted.every(([k, v]) => record.labels[k] === v)) continue;
    const used = load.get(id) ?? { cpus: 0, memoryBytes: 0, vms: 0 };
    const free = record.capacity.memoryBytes - used.memoryBytes;
    if (free < spec.memoryBytes || record.capacity.cpus < used.cpus + spec.cpus) continue;
    // One address of the host's subnet per VM: a full subnet is a full host.
    if (used.vms >= addressesOf(record.subnet)) continue;
    const better =
      !best ||
      (spec.placement?.policy === 'pack'
        ? free < best.free || (free === best.free && id < best.id)
        : free > best.free ||
          (free === best.free && (used.vms < best.vms || (used.vms === best.vms && id < best.id))));
    if (better) best = { id, free, vms: used.vms };
  }
  return best?.id;
}

/** The VM addresses of a host's subnet: all but the network, the gateway and the broadcast address. */
function addressesOf(subnet: string): number {
  const prefix = Number(subnet.split('/')[1]);
  return Number.isInteger(prefix) ? 2 ** (32 - prefix) - 3 : Number.POSITIVE_INFINITY;
}
