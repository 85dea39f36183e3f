import { type Cluster, ClusterError, type Membership } from './cluster.js';
import { applyVmKey, type ClusterVmSpec, type VmEntry } from './placement.js';

/**
 * What a host agent drives: the host's own VMs of this cluster (myhvd's VmManager, in the daemon). Only cluster VMs
 * are listed and touched: the adapter tells them from the host's other VMs.
 */
export interface HostBackend {
  /** The cluster VMs this host holds (running or not), with their status and address. */
  list(signal: AbortSignal): Promise<readonly HostVm[]>;
  /** Creates a VM from its desired state (booted unless `running` is false); its status and address. */
  create(vm: ClusterVmSpec, signal: AbortSignal): Promise<HostVmState>;
  /** Boots a VM it holds; its status and address. */
  start(name: string, signal: AbortSignal): Promise<HostVmState>;
  /** Stops a VM it holds (it stays, with its address); its status. */
  stop(name: string, signal: AbortSignal): Promise<HostVmState>;
  /** Stops and removes a VM (its VMM, network, state). */
  delete(name: string, signal: AbortSignal): Promise<void>;
  /**
   * The names of VMs whose state changed on the host by other hands (a VMM died, a local `myhv vm stop`), as they
   * change, until `signal` aborts: the agent reports their new status. Optional: without it, status is reported
   * only when the cluster asks for a change.
   */
  changes?(signal: AbortSignal): AsyncIterable<string>;
}

/** What a VM is on its host: its status and address. */
export interface HostVmState {
  readonly status: string;
  readonly ip?: string;
}

/** A VM a host holds, as its backend lists it. */
export interface HostVm extends HostVmState {
  readonly name: string;
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

/** Statuses in which a VM that should run is started, and in which one that should not is stopped. */
const STOPPED = new Set(['stopped', 'created', 'failed', 'exited']);
const RUNNING = new Set(['running', 'paused']);

/**
 * The host agent: reconciles the VMs assigned to this host with `backend` — creates those it lacks, starts or stops
 * them as their desired state says, deletes those no longer assigned to it (moved to another host, or deleted from
 * the cluster) — and reports each one's status whenever it differs from the last report: a write conditioned on the
 * assignment it acted on and on its own lease. Acts on each change of desired state: a create or start that fails is
 * tried again RETRIES times, 1 s, 2 s, 4 s … apart (an overloaded host, a port briefly taken), then left `failed`
 * until the spec or assignment changes. Watches the store, never polls it. Stops acting (and returns) when
 * its lease is lost: its VMs keep running, and the controller may re-place them; an agent that comes back deletes the
 * copies that were re-placed meanwhile, so a VM never runs twice once a partition heals.
 */
export async function runHostAgent(
  cluster: Cluster,
  options: {
    readonly membership: Membership;
    readonly backend: HostBackend;
    readonly signal: AbortSignal;
    readonly onError?: (error: unknown, vm?: string) => void;
    /** VMs created, started, stopped, reported or deleted at once. Default 16. */
    readonly concurrency?: number;
  },
): Promise<void> {
  const { membership, backend, concurrency = CONCURRENCY } = options;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new ClusterError('INVALID_ARGUMENT', 'concurrency: a whole number, at least 1', {
      field: 'concurrency',
    });
  }
  const self = membership.host.id;
  const stop = AbortSignal.any([options.signal, membership.lost]);
  const held = new Map<string, VmEntry>();
  const { revision, entries } = await cluster.list('vms/');
  for (const entry of entries) applyVmKey(entry, held);
  let pending = true;
  /** The desired state (`assignment:spec` revisions) each VM was last acted on for: each is acted on once. */
  const acted = new Map<string, string>();
  /** Failed creates and starts, by VM: for which desired state, how often, and when to try again. */
  const failures = new Map<string, { key: string; attempts: number; at: number }>();
  const retryTimers = new Set<NodeJS.Timeout>();
  /** True when a failed create or start of this desired state is due to be tried again. */
  const due = (name: string, key: string) => {
    const failure = failures.get(name);
    return failure?.key === key && failure.attempts <= RETRIES && Date.now() >= failure.at;
  };
  /** After an action for `key`: a failure schedules the next try (a wake-up, not a poll); a success forgets them. */
  const track = (name: string, key: string, state: HostVmState) => {
    if (state.status !== 'failed') {
      failures.delete(name);
      return;
    }
    const before = failures.get(name);
    const attempts = (before?.key === key ? before.attempts : 0) + 1;
    const delay = 1_000 * 2 ** (attempts - 1);
    const failure = { key, attempts, at: Date.now() + delay };
    failures.set(name, failure);
    if (attempts > RETRIES) return;
    const timer = setTimeout(() => {
      retryTimers.delete(timer);
      failure.at = 0; // due now (a timer may fire a little before Date.now() reaches `at`)
      wake();
    }, delay);
    retryTimers.add(timer);
  };
  /** What was last reported for each VM, and for which desired state. */
  const reported = new Map<string, { key: string; status: string; ip: string | undefined }>();
  const report = async (name: string, h: VmEntry, key: string, state: HostVmState & { error?: string }) => {
    const last = reported.get(name);
    if (last && last.key === key && last.status === state.status && last.ip === state.ip) return;
    const record: VmStatusRecord = {
      status: state.status,
      ...(state.ip ? { ip: state.ip } : {}),
      ...(state.error ? { error: state.error } : {}),
      host: self,
      epoch: h.assignment!.epoch,
      time: new Date().toISOString(),
    };
    const written = await cluster.reportStatus(name, record, {
      assignmentRevision: h.assignmentRevision,
      leaseId: membership.leaseId,
    });
    if (written) reported.set(name, { key, status: state.status, ip: state.ip });
    else pending = true; // the assignment changed meanwhile: look again
  };
  /** Runs one change of a VM; a failure becomes its reported status (`failed`, with the error). */
  const attempt = async (name: string, work: () => Promise<HostVmState>) => {
    try {
      return await work();
    } catch (error) {
      options.onError?.(error, name);
      return { status: 'failed', error: error instanceof Error ? error.message : String(error) };
    }
  };
  const reconcile = async () => {
    pending = false;
    const local = new Map((await backend.list(stop)).map((vm) => [vm.name, vm]));
    const mine = [...held].filter(([, h]) => h.spec && h.assignment?.host === self);
    // Up to `concurrency` VMs at a time: a host creating many VMs does not wait for each in turn.
    await eachLimited(mine, concurrency, async ([name, h]) => {
      if (stop.aborted) return;
      const key = `${h.assignmentRevision}:${h.specRevision}`;
      const have = local.get(name);
      const wantRunning = h.spec!.running !== false;
      let state: HostVmState & { error?: string };
      if (!have) {
        // A create that failed for this desired state waits for its retry; one that vanished since is made again.
        if (acted.get(name) === key && reported.get(name)?.status === 'failed' && !due(name, key)) return;
        acted.set(name, key);
        state = await attempt(name, () => backend.create(h.spec!, stop));
        track(name, key, state);
      } else if (acted.get(name) === key && !due(name, key)) {
        state = have;
      } else {
        acted.set(name, key);
        if (wantRunning && STOPPED.has(have.status)) {
          state = await attempt(name, () => backend.start(name, stop));
          track(name, key, state);
        } else if (!wantRunning && RUNNING.has(have.status)) {
          state = await attempt(name, () => backend.stop(name, stop));
        } else state = have;
      }
      await report(name, h, key, state);
    });
    const wanted = new Set(mine.map(([name]) => name));
    const unwanted = [...local.keys()].filter((name) => !wanted.has(name));
    await eachLimited(unwanted, concurrency, async (name) => {
      if (stop.aborted) return;
      acted.delete(name);
      reported.delete(name);
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
  let running: Promise<void> | undefined;
  /** Another pass soon: a burst of events (from etcd or the host) makes one pass, not one each. */
  const wake = () => {
    pending = true;
    running ??= (async () => {
      await new Promise((resolve) => setImmediate(resolve));
      await run();
    })().finally(() => {
      running = undefined;
    });
  };
  wake();
  const local = (async () => {
    if (!backend.changes) return;
    try {
      for await (const _name of backend.changes(stop)) wake();
    } catch (error) {
      if (!stop.aborted) options.onError?.(error);
    }
  })();
  try {
    for await (const event of cluster.watch('vms/', { fromRevision: revision + 1, signal: stop })) {
      applyVmKey(event, held);
      wake();
    }
  } catch (error) {
    if (!stop.aborted) throw error;
  } finally {
    for (const timer of retryTimers) clearTimeout(timer);
    await local;
  }
  await running;
}

/** How often a failed create or start of one desired state is tried again. */
const RETRIES = 5;

/** VMs an agent creates, reports or deletes at once, by default. */
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
