import { setTimeout as delay } from 'node:timers/promises';
import type {
  Cluster,
  ClusterVmSpec,
  HostBackend,
  HostInfo,
  HostVmState,
  Membership,
  RegisterOptions,
} from '@my-hypervisor/cluster';
import type { VmInfo, VmManager } from '@my-hypervisor/vm-manager';
import type { DaemonLogEntry } from './daemon.js';
import type { KeyedQueue } from './keyed-queue.js';

/** How myhvd takes part in a cluster (ADR 016). */
export interface DaemonClusterOptions {
  /** The connection to the cluster's etcd; the daemon closes it when it stops. */
  readonly cluster: Cluster;
  /** This host's membership, made before the manager (its subnet is the manager's). */
  readonly membership: Membership;
  /** What it registered as, and how: used to join again after its lease was lost. */
  readonly host: HostInfo;
  readonly register: RegisterOptions;
  /** Also campaign to run the placement controller (one daemon of the cluster runs it at a time). Default true. */
  readonly placement?: boolean;
  /**
   * The network cluster VMs join (the host's share of the cluster pool, e.g. `myhv net` `cluster`); default the
   * manager's default network. A VM whose spec turns the network off gets none.
   */
  readonly network?: string;
  /** VMs the host agent creates, starts, stops or deletes at once. Default 16. */
  readonly concurrency?: number;
}

/** The label that marks the VMs a host's agent made for the cluster: it never touches the host's other VMs. */
export const CLUSTER_LABEL = 'myhv.cluster';

/**
 * The host agent's backend over the daemon's manager: the VMs labelled `myhv.cluster`, each change queued on its
 * VM's key like a socket call, so local and cluster calls on one VM are ordered.
 */
export function managerBackend(manager: VmManager, queue: KeyedQueue, network?: string): HostBackend {
  const state = (vm: VmInfo): HostVmState => ({ status: vm.status, ...(vm.ip ? { ip: vm.ip } : {}) });
  return {
    list: async () =>
      (await manager.list())
        .filter((vm) => vm.spec.labels?.[CLUSTER_LABEL] !== undefined)
        .map((vm) => ({ name: vm.name, ...state(vm) })),
    create: (vm: ClusterVmSpec, signal) =>
      queue.run(
        vm.name,
        async () => {
          const wanted = vm.spec.network as { enabled?: boolean } | undefined;
          const input = {
            ...vm.spec,
            name: vm.name,
            ...(network === undefined || wanted?.enabled === false
              ? {}
              : { network: { ...wanted, name: network } }),
            labels: { ...(vm.spec.labels as Record<string, string> | undefined), [CLUSTER_LABEL]: 'true' },
          };
          let info = await manager.create(input, { signal });
          if (vm.running === false) info = await manager.stop(vm.name, { signal });
          return state(info);
        },
        signal,
      ),
    start: (name, signal) =>
      queue.run(name, async () => state(await manager.start(name, { signal })), signal),
    stop: (name, signal) => queue.run(name, async () => state(await manager.stop(name, { signal })), signal),
    delete: (name, signal) =>
      queue.run(
        name,
        async () => {
          await manager.delete(name, { force: true, signal });
        },
        signal,
      ),
    changes: async function* (signal) {
      for await (const event of manager.journal({ since: new Date(), follow: true, signal })) {
        if (event.vm !== undefined) yield event.vm;
      }
    },
  };
}

/**
 * Runs the daemon's part in the cluster until `signal` aborts: the host agent over the manager and, when asked, a
 * campaign for the placement controller. A lost lease stops the agent (the VMs keep running) and is logged; the
 * daemon then joins again as soon as etcd lets it (a fresh lease, the same subnet) and reconciles anew.
 */
export async function runClusterMember(
  options: DaemonClusterOptions,
  context: {
    readonly manager: VmManager;
    readonly queue: KeyedQueue;
    readonly log: (entry: DaemonLogEntry) => void;
    readonly signal: AbortSignal;
  },
): Promise<void> {
  const { cluster, host } = options;
  const { signal, log } = context;
  const { runHostAgent, runPlacement } = await import('@my-hypervisor/cluster');
  const backend = managerBackend(context.manager, context.queue, options.network);
  const onError = (error: unknown, vm?: string) =>
    log({ level: 'warn', message: 'cluster', error, ...(vm === undefined ? {} : { vm }) });
  const placing =
    options.placement === false
      ? undefined
      : (async () => {
          while (!signal.aborted) {
            try {
              await runPlacement(cluster, { id: host.id, signal });
            } catch (error) {
              if (signal.aborted) return;
              log({ level: 'warn', message: 'cluster placement stopped; campaigning again', error });
              await sleep(1_000, signal);
            }
          }
        })();
  let membership: Membership | undefined = options.membership;
  try {
    while (!signal.aborted) {
      if (!membership) {
        try {
          membership = await cluster.register(host, options.register);
          log({
            level: 'info',
            message: `cluster: joined again as ${host.id} (subnet ${membership.host.subnet})`,
          });
        } catch (error) {
          if (signal.aborted) break;
          log({ level: 'warn', message: 'cluster: cannot join yet; trying again', error });
          // Soon: after a quorum loss, joining before the old record's lease runs out takes it over, and nothing
          // is re-placed.
          await sleep(500, signal);
          continue;
        }
      }
      try {
        await runHostAgent(cluster, {
          membership,
          backend,
          signal,
          onError,
          ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
        });
      } catch (error) {
        if (signal.aborted) break;
        log({ level: 'warn', message: 'cluster: the agent stopped; starting it again', error });
        await sleep(1_000, signal);
      }
      if (membership.lost.aborted && !signal.aborted) {
        log({
          level: 'error',
          message: `cluster: this host's lease was lost: no new cluster work; its VMs keep running`,
        });
        membership = undefined;
      }
    }
  } finally {
    await placing;
    // Not revoked: a daemon restarted within the lease's TTL takes its record over, so nothing is re-placed.
    await membership?.leave({ revoke: false });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).catch(() => undefined);
}
