import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DaemonHello } from '@my-hypervisor/client';
import {
  type BridgeOps,
  type NatOps,
  type NetworkBackend,
  TapNetwork,
  type TapOps,
} from '@my-hypervisor/net-ops';
import type { StorageBackend } from '@my-hypervisor/storage';
import { DEFAULT_NETWORK, type NetworkRecord, VmManager } from '@my-hypervisor/vm-manager';
import { type CliConfig, usesLocalOps } from './config.js';
import { invalidValue } from './errors.js';
import { type ResolvedNetworks, recordDefaultNetwork, resolveNetworks } from './networks.js';
import { serialRelay as configuredSerialRelay } from './serial-relay-command.js';
import { flagName, type SettingKey, settings } from './settings.js';
import type { VmmChoice } from './vmm-choice.js';

/** The three ops contracts in one object, as LocalOps and MosnetOps provide them. */
export type HostNetOps = BridgeOps & TapOps & NatOps & { close?(): Promise<void> };

/** The network ops of the configured backend, built on demand (nothing runs until an operation is called). */
export async function openNetOps(
  config: Pick<CliConfig, 'netBackend' | 'netns' | 'nat' | 'mosnetSocket'>,
): Promise<HostNetOps> {
  if (config.netBackend === 'mosnet') {
    const { MosnetOps } = await import('@my-hypervisor/net-mosnet');
    // connect() asks the daemon (rpc.discover) which optional methods it has, so listing bridge ports and
    // forwards (net ls, gc's sweeps) works where the daemon offers them; an absent daemon fails here, clearly.
    return MosnetOps.connect({ socketPath: config.mosnetSocket });
  }
  // `local` and `namespace` share the host side: the bridge, NAT and forwards in the host's (or --netns') namespace.
  const { LocalOps } = await import('@my-hypervisor/net-local');
  return new LocalOps({ ...(config.netns ? { netns: config.netns } : {}), nat: config.nat });
}

/**
 * The prefix of each VM's network namespace with the namespace backend: `myhv-` (so `myhv-<VM id>`) for the default
 * state directory, `myhv-<6 hex of the directory>-` for any other. Namespaces are host-wide: with one prefix, the
 * reconcile of one state directory would take another's VM namespaces for leftovers.
 */
export function vmNamespacePrefix(stateDir: string): string {
  if (resolve(stateDir) === DEFAULT_STATE_DIR) return 'myhv-';
  return `myhv-${createHash('sha256').update(resolve(stateDir)).digest('hex').slice(0, 6)}-`;
}

const DEFAULT_STATE_DIR = settings.find((s) => s.key === 'stateDir')!.defaultValue!;

/** What a network is driven by: its bridge, subnet and backend (a record's `backend` string, or the setting). */
export interface NetworkTarget {
  readonly bridge: string;
  readonly subnet: string;
  readonly backend: string;
  readonly netns?: string;
  /** The namespace backend's per-VM namespace prefix (`vmNamespacePrefix`). */
  readonly namespacePrefix?: string;
}

/**
 * The per-VM attach/detach and forwards the manager uses: `NamespaceNetwork` for the namespace backend, else
 * `TapNetwork` over the ops.
 */
export async function openNetwork(ops: HostNetOps, target: NetworkTarget): Promise<NetworkBackend> {
  if (target.backend === 'namespace') {
    const { NamespaceNetwork } = await import('@my-hypervisor/net-local');
    return new NamespaceNetwork({
      bridge: ops,
      nat: ops,
      bridgeName: target.bridge,
      subnet: target.subnet,
      ...(target.namespacePrefix ? { namespacePrefix: target.namespacePrefix } : {}),
      ...(target.netns ? { netns: target.netns } : {}),
    });
  }
  return new TapNetwork({
    bridge: ops,
    tap: ops,
    nat: ops,
    bridgeName: target.bridge,
    subnet: target.subnet,
  });
}

/**
 * The backend a named network is driven by. Its record says which; local and namespace networks share the host
 * ops, so either works beside the other; a record of another family keeps the old behaviour (driven by `ops`).
 */
function namedBackend(config: CliConfig, record: NetworkRecord): string {
  return usesLocalOps(config.netBackend) && usesLocalOps(record.backend) ? record.backend : config.netBackend;
}

/** The default network's backend and each named network's, over the same host ops. */
async function openNetworks(
  ops: HostNetOps,
  resolved: ResolvedNetworks,
): Promise<{ network: NetworkBackend; networks: Record<string, NetworkBackend> }> {
  const { config } = resolved;
  // NamespaceNetwork's host side is where the ops put the bridge: the same --netns.
  const netns = {
    ...(config.netns ? { netns: config.netns } : {}),
    namespacePrefix: vmNamespacePrefix(config.stateDir),
  };
  const network = await openNetwork(ops, {
    bridge: config.bridge,
    subnet: config.subnet,
    backend: config.netBackend,
    ...netns,
  });
  const networks: Record<string, NetworkBackend> = {};
  for (const named of resolved.named) {
    networks[named.name] = await openNetwork(ops, {
      bridge: named.bridge,
      subnet: named.subnet,
      backend: namedBackend(config, named),
      ...netns,
    });
  }
  return { network, networks };
}

/**
 * What myhvd runs before work (`DaemonOptions.refresh`): when the named network records changed since the manager
 * was built (`myhv net create|rm` beside the daemon), opens those networks again and gives them to the manager.
 */
export function networkRefresher(parts: ManagerParts): () => Promise<void> {
  const { ops } = parts;
  let last: string | undefined;
  return async () => {
    if (!ops) return;
    const resolved = await resolveNetworks(parts.config);
    const stamp = JSON.stringify(resolved.named);
    if (stamp === last) return;
    const { networks } = await openNetworks(ops, resolved);
    parts.manager.setNetworks(networks);
    last = stamp;
  };
}

/** Detached virtiofsd daemons (they outlive the CLI, like the VMMs) with sockets under `<runDir>/virtiofs`. */
export async function openStorage(runDir: string): Promise<StorageBackend> {
  const { VirtioFsStorage } = await import('@my-hypervisor/storage-virtiofs');
  return new VirtioFsStorage({ runDir: join(runDir, 'virtiofs'), detached: true });
}

export interface ManagerParts {
  readonly manager: VmManager;
  /** The settings with the default network's record applied (what the manager was built with). */
  readonly config: CliConfig;
  /** After a failed create: drops the default network's record if this invocation made it and no VM uses it. */
  forgetUnusedNetwork?(): Promise<void>;
  readonly ops?: HostNetOps;
  readonly network?: NetworkBackend;
  close(): Promise<void>;
}

/**
 * A VmManager. `read` only reads records (ls, inspect, logs): no backend is built, nothing is spawned. `counters`
 * (vm stats) is `read` plus the network backends when one keeps per-VM policy counters (namespace). `full` wires
 * the network, storage, the chosen VMM and the inventory reconcile sweeps; commands that spawn no VMM (stop, rm,
 * forward, gc) may have none.
 */
export async function openManager(
  settingsConfig: CliConfig,
  mode:
    | { kind: 'read' }
    | { kind: 'counters' }
    | {
        kind: 'full';
        vmm: VmmChoice | undefined /** Record the default network if new (vm create). */;
        recordNetwork?: boolean;
        /** Frozen query answers shared between calls (`VmManagerOptions.shareResults`): for myhvd. */
        shareResults?: boolean;
      },
): Promise<ManagerParts> {
  if (mode.kind === 'read') {
    return {
      manager: new VmManager({ stateDir: settingsConfig.stateDir, runDir: settingsConfig.runDir }),
      config: settingsConfig,
      close: async () => {},
    };
  }
  if (mode.kind === 'counters') return openCountersManager(settingsConfig);
  // The recorded networks decide bridge, subnet, backend and namespace; a conflicting setting is refused here.
  let resolved = await resolveNetworks(settingsConfig);
  const recordedBefore = resolved.defaultNetwork !== undefined;
  if (mode.recordNetwork) resolved = await recordDefaultNetwork(resolved);
  const { store } = resolved;
  const recordedNow = !recordedBefore && resolved.defaultNetwork !== undefined;
  const config = resolved.config;
  const ops = await openNetOps(config);
  const { network, networks } = await openNetworks(ops, resolved);
  const storage = await openStorage(config.runDir);
  const serialRelay = configuredSerialRelay();
  const manager = new VmManager({
    stateDir: config.stateDir,
    runDir: config.runDir,
    ...(mode.shareResults ? { shareResults: true } : {}),
    network,
    networks,
    storage,
    vmm: {
      ...(mode.vmm ? { command: mode.vmm.command, commandArgs: mode.vmm.commandArgs } : {}),
      // What a spec's (or a stored record's) vmm.binary may name: the chosen VMM, and what root's config allows.
      allowedBinaries: [...(mode.vmm?.path ? [mode.vmm.path] : []), ...config.allowedVmmBinaries],
      detached: true,
      ...(config.netns ? { netns: config.netns } : {}),
      ...(serialRelay ? { serialRelay } : {}),
      ...(config.vmmStandby === 'on' ? { standby: true } : {}),
    },
    inventory: { bridge: ops, nat: ops },
    confinement: {
      mode: config.confinement,
      ...(config.confinementUserfaultfd === 'on' ? { userfaultfd: true } : {}),
    },
  });
  return {
    manager,
    config,
    ops,
    network,
    async forgetUnusedNetwork() {
      if (!recordedNow) return;
      const used = (await manager.list()).some((vm) => vm.spec.network.enabled && !vm.spec.network.name);
      if (!used) await store.remove(DEFAULT_NETWORK);
    },
    close: async () => {
      // A standby VMM the command's operation started after it returned is recorded before the command ends.
      await manager.idle();
      await ops.close?.();
      await (storage as Partial<AsyncDisposable>)[Symbol.asyncDispose]?.();
    },
  };
}

/** Reads records, and asks the namespace backend for the policy counters; nothing else is built. */
async function openCountersManager(settingsConfig: CliConfig): Promise<ManagerParts> {
  const resolved = await resolveNetworks(settingsConfig);
  const { config } = resolved;
  const dirs = { stateDir: config.stateDir, runDir: config.runDir };
  const counted =
    config.netBackend === 'namespace' || resolved.named.some((n) => namedBackend(config, n) === 'namespace');
  if (!counted) return { manager: new VmManager(dirs), config, close: async () => {} };
  const ops = await openNetOps(config);
  const { network, networks } = await openNetworks(ops, resolved);
  return {
    manager: new VmManager({ ...dirs, network, networks }),
    config,
    ops,
    network,
    close: async () => {
      await ops.close?.();
    },
  };
}

/** The manager operations a command can run in-process or through myhvd: `VmManager` and `MyhvClient` both have them. */
export type ManagerApi = Pick<
  VmManager,
  | 'get'
  | 'list'
  | 'listAll'
  | 'create'
  | 'start'
  | 'stop'
  | 'restart'
  | 'delete'
  | 'pause'
  | 'resume'
  | 'resize'
  | 'devices'
  | 'addDisk'
  | 'removeDisk'
  | 'addShare'
  | 'removeShare'
  | 'addNic'
  | 'removeNic'
  | 'addForward'
  | 'removeForward'
  | 'snapshot'
  | 'listSnapshots'
  | 'removeSnapshot'
  | 'restore'
>;

/** A manager for one command: myhvd's, when it answers on its socket, else one in this process. */
export interface RoutedManagerParts extends Omit<ManagerParts, 'manager'> {
  readonly manager: ManagerApi;
  /** The daemon's socket when the command runs through myhvd. */
  readonly daemonSocket?: string;
}

/**
 * Routes a command to myhvd when its socket answers (and `--no-daemon` was not given): the same operations, the
 * same answers and errors, but the daemon's queue, watcher and event stream see it. Otherwise `openManager`.
 * A command without a daemon pays a failed `stat` and nothing more; with one, a `daemon.hello` first, whose
 * settings must match every host setting this command was given explicitly (flag, variable or config file): a
 * daemon with another state directory, subnet or backend must not silently do the work (exit 2, naming it).
 */
export async function openRoutedManager(
  settingsConfig: CliConfig,
  mode: Parameters<typeof openManager>[1],
  options: { noDaemon: boolean },
): Promise<RoutedManagerParts> {
  if (!options.noDaemon && (await daemonSocketTrusted(settingsConfig.daemonSocket))) {
    const { createClient } = await import('@my-hypervisor/client');
    const client = createClient({ socketPath: settingsConfig.daemonSocket, onAbort: 'wait' });
    const hello = await client.hello().then(
      (answer): { answer: DaemonHello } => ({ answer }),
      (error: unknown) => ({ error }),
    );
    if ('answer' in hello || !isConnectionFailure(hello.error)) {
      try {
        // A daemon without daemon.hello (an older one) is used as it is; the command's own call reports the rest.
        if ('answer' in hello) assertSameHostSettings(settingsConfig, hello.answer);
      } catch (error) {
        await client.close();
        throw error;
      }
      return {
        manager: client,
        config: settingsConfig,
        daemonSocket: settingsConfig.daemonSocket,
        close: () => client.close(),
      };
    }
    // Refused (a stale socket), or not allowed (its mode): the command runs in-process, as without a daemon.
    await client.close();
  }
  return openManager(settingsConfig, mode);
}

/** The host settings a routed command must share with myhvd: they decide what its manager does on the host. */
const HOST_SETTINGS = [
  'stateDir',
  'runDir',
  'netBackend',
  'nat',
  'mosnetSocket',
  'netns',
  'bridge',
  'subnet',
  'vmmBinary',
  'confinement',
  'confinementUserfaultfd',
  'vmmStandby',
] as const satisfies readonly SettingKey[];

/**
 * What `myhv daemon run` tells `daemon.hello` it runs with: every host setting as a string, `''` when unset, and
 * the VMM it resolved (`simulator`, or the binary's path, also when found on PATH).
 */
export function daemonHostSettings(config: CliConfig, vmm: VmmChoice): Record<string, string> {
  const values: Record<string, string> = {};
  for (const key of HOST_SETTINGS) values[key] = String(config[key] ?? '');
  values.vmmBinary = vmm.kind === 'simulator' ? 'simulator' : (vmm.path ?? '');
  return values;
}

/** INVALID_ARGUMENT (exit 2) naming the first host setting given explicitly that the daemon runs otherwise. */
function assertSameHostSettings(config: CliConfig, hello: DaemonHello): void {
  for (const key of HOST_SETTINGS) {
    const source = config.sources[key];
    const theirs = hello.settings[key];
    if (theirs === undefined || (source !== 'flag' && source !== 'env' && source !== 'config')) continue;
    const ours = String(config[key] ?? '');
    if (ours === theirs) continue;
    const definition = settings.find((d) => d.key === key)!;
    const field =
      source === 'flag'
        ? flagName(definition)
        : source === 'env'
          ? definition.env
          : `${config.configFile}: ${key}`;
    throw invalidValue(
      field,
      `${ours || '(unset)'} differs from what myhvd (pid ${hello.pid}, ${config.daemonSocket}) runs with: ` +
        `${theirs || '(unset)'}`,
      `run this command in-process with --no-daemon, or restart myhvd with ${flagName(definition)} ${ours || '…'}`,
    );
  }
}

/** True for failures to reach the daemon at all (refused, not allowed, gone): the command then runs in-process. */
function isConnectionFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 'UNAVAILABLE' || code === 'PERMISSION_DENIED' || code === 'DISCONNECTED';
}

/** A socket of root's or this user's: one someone else put there would see every spec sent and could answer anything. */
async function daemonSocketTrusted(socketPath: string): Promise<boolean> {
  if (!existsSync(socketPath)) return false;
  const { lstat } = await import('node:fs/promises');
  const stats = await lstat(socketPath).catch(() => undefined);
  const uid = process.getuid?.();
  return stats?.isSocket() === true && (stats.uid === 0 || stats.uid === uid);
}
