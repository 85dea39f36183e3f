import type { Cluster, ClusterEvent, Membership } from './cluster.js';
import type { Assignment, ClusterVmSpec } from './placement.js';

/**
 * What a host agent drives: the host's own VMs of this cluster (myhvd's VmManager, in the daemon). Only cluster VMs
 * are listed and touched: the adapter tells them from the host's other VMs.
 */
export interface HostBackend {
  /** The cluster VMs this host holds (running or not), with their status and address. */
  list(signal: AbortSignal): Promise<readonly HostVm[]>;
  /** Creates and boots a VM from its desired state; its status and address. */
  create(vm: ClusterVmSpec, signal: AbortSignal): Promise<{ readonly status: string; readonly ip?: string }>;
  /** Stops and removes a VM (its VMM, network, state). */
  delete(name: string, signal: AbortSignal): Promise<void>;
}

/** A VM a host holds, as its backend lists it. */
export interface HostVm {
  readonly name: string;
  readonly status: string;
  readonly ip?: string;
}

/** A VM's observed state, as the agent of its host writes it (`vms/<name>/status`). */
export interface VmStatusRecord {
  readonly status: string;
  readonly host: string;
  readonly epoch: number;
  readonly ip?: string;
  readonly time: string;
  readonly error?: string;
}

interface Held {
  spec?: ClusterVmSpec;
  assignment?: Assignment;
  assignmentRevision: number;
}

/**
 * The host agent: reconciles the VMs assigned to this host with `backend` — creates those it lacks, deletes those
 * no longer assigned to it (moved to another host, or deleted from the cluster) — and reports each one's status,
 * a write conditioned on the assignment it acted on and on its own lease. Watches, never polls. Stops acting (and
 * returns) when its lease is lost: its VMs keep running, and the controller may re-place them; an agent that comes
 * back deletes the copies that were re-placed meanwhile, so a VM never runs twice once a partition heals.
 */
export async function runHostAgent(
  cluster: Cluster,
  options: {
    readonly membership: Membership;
    readonly backend: HostBackend;
    readonly signal: AbortSignal;
    readonly onError?: (error: unknown, vm?: string) => void;
  },
): Promise<void> {
  const { membership, backend } = options;
  const self = membership.host.id;
  const stop = AbortSignal.any([options.signal, membership.lost]);
  const held = new Map<string, Held>();
  const { revision, entries } = await cluster.list('vms/');
  for (const entry of entries) apply(entry, held);
  let pending = true;
  /** The assignment revision each VM's status was last reported for: a VM is reported once per assignment. */
  const reported = new Map<string, number>();
  const report = async (name: string, h: Held, status: Omit<VmStatusRecord, 'host' | 'epoch' | 'time'>) => {
    const record: VmStatusRecord = {
      ...status,
      host: self,
      epoch: h.assignment!.epoch,
      time: new Date().toISOString(),
    };
    const written = await cluster.reportStatus(name, record, {
      assignmentRevision: h.assignmentRevision,
      leaseId: membership.leaseId,
    });
    if (written) reported.set(name, h.assignmentRevision);
    else pending = true; // the assignment changed meanwhile: look again
  };
  const reconcile = async () => {
    pending = false;
    const local = new Map((await backend.list(stop)).map((vm) => [vm.name, vm]));
    const mine = [...held].filter(([, h]) => h.spec && h.assignment?.host === self);
    // Up to CONCURRENCY VMs at a time: a host creating many VMs does not wait for each in turn.
    await eachLimited(mine, CONCURRENCY, async ([name, h]) => {
      if (stop.aborted) return;
      const have = local.get(name);
      if (have) {
        // Held already (made before a restart of the agent, or its report was refused): report what it is.
        if (reported.get(name) !== h.assignmentRevision) {
          await report(name, h, { status: have.status, ...(have.ip ? { ip: have.ip } : {}) });
        }
        return;
      }
      // A create that failed for this assignment is not retried at every event; a new assignment tries again.
      if (reported.get(name) === h.assignmentRevision) return;
      let status: Omit<VmStatusRecord, 'host' | 'epoch' | 'time'>;
      try {
        status = await backend.create(h.spec!, stop);
      } catch (error) {
        options.onError?.(error, name);
        status = { status: 'failed', error: error instanceof Error ? error.message : String(error) };
      }
      await report(name, h, status);
    });
    const wanted = new Set(mine.map(([name]) => name));
    const unwanted = [...local.keys()].filter((name) => !wanted.has(name));
    await eachLimited(unwanted, CONCURRENCY, async (name) => {
      if (stop.aborted) return;
      try {
        await backend.delete(name, stop);
      } catch (error) {
        options.onError?.(error, name);
      }
    });
  };
  const run = async () => {
    while (pending && !stop.aborted) {
      try {
        await reconcile();
      } catch (error) {
        if (stop.aborted) return;
        options.onError?.(error);
        pending = true;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  };
  let running: Promise<void> | undefined = run().finally(() => {
    running = undefined;
  });
  try {
    for await (const event of cluster.watch('vms/', { fromRevision: revision + 1, signal: stop })) {
      apply(event, held);
      pending = true;
      running ??= (async () => {
        await new Promise((resolve) => setImmediate(resolve));
        await run();
      })().finally(() => {
        running = undefined;
      });
    }
  } catch (error) {
    if (!stop.aborted) throw error;
  }
  await running;
}

/** VMs an agent creates, reports or deletes at once. */
const CONCURRENCY = 16;

/** Runs `fn` over `items`, at most `limit` at a time. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(lanes);
}

function apply(event: ClusterEvent, held: Map<string, Held>): void {
  const [, name, part] = event.key.split('/');
  if (!name || (part !== 'spec' && part !== 'assignment')) return;
  const h = held.get(name) ?? { assignmentRevision: 0 };
  held.set(name, h);
  if (part === 'spec')
    h.spec = event.type === 'delete' ? undefined : (JSON.parse(event.value) as ClusterVmSpec);
  else if (event.type === 'delete') {
    h.assignment = undefined;
    h.assignmentRevision = 0;
  } else {
    h.assignment = JSON.parse(event.value) as Assignment;
    h.assignmentRevision = event.modRevision;
  }
  if (!h.spec && !h.assignment) held.delete(name);
}
