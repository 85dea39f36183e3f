import { join } from 'node:path';
import {
  type BridgeOps,
  type NatOps,
  type NetworkBackend,
  TapNetwork,
  type TapOps,
} from '@my-hypervisor/net-ops';
import type { StorageBackend } from '@my-hypervisor/storage';
import { DEFAULT_NETWORK, VmManager } from '@my-hypervisor/vm-manager';
import type { CliConfig } from './config.js';
import { recordDefaultNetwork, resolveNetworks } from './networks.js';
import { serialRelay as configuredSerialRelay } from './serial-relay-command.js';
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
  const { LocalOps } = await import('@my-hypervisor/net-local');
  return new LocalOps({ ...(config.netns ? { netns: config.netns } : {}), nat: config.nat });
}

/** `TapNetwork` over the ops: the per-VM attach/detach and forwards the manager uses. */
export async function openNetwork(
  ops: HostNetOps,
  config: { readonly bridge: string; readonly subnet: string },
): Promise<NetworkBackend> {
  return new TapNetwork({
    bridge: ops,
    tap: ops,
    nat: ops,
    bridgeName: config.bridge,
    subnet: config.subnet,
  });
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
 * A VmManager. `read` only reads records (ls, inspect, logs): no backend is built, nothing is spawned. `full` wires
 * the network, storage, the chosen VMM and the inventory reconcile sweeps; commands that spawn no VMM (stop, rm,
 * forward, gc) may have none.
 */
export async function openManager(
  settingsConfig: CliConfig,
  mode:
    | { kind: 'read' }
    | {
        kind: 'full';
        vmm: VmmChoice | undefined /** Record the default network if new (vm create). */;
        recordNetwork?: boolean;
      },
): Promise<ManagerParts> {
  if (mode.kind === 'read') {
    return {
      manager: new VmManager({ stateDir: settingsConfig.stateDir, runDir: settingsConfig.runDir }),
      config: settingsConfig,
      close: async () => {},
    };
  }
  // The recorded networks decide bridge, subnet, backend and namespace; a conflicting setting is refused here.
  let resolved = await resolveNetworks(settingsConfig);
  const recordedBefore = resolved.defaultNetwork !== undefined;
  if (mode.recordNetwork) resolved = await recordDefaultNetwork(resolved);
  const { store } = resolved;
  const recordedNow = !recordedBefore && resolved.defaultNetwork !== undefined;
  const config = resolved.config;
  const ops = await openNetOps(config);
  const network = await openNetwork(ops, config);
  const networks: Record<string, NetworkBackend> = {};
  for (const named of resolved.named) networks[named.name] = await openNetwork(ops, named);
  const storage = await openStorage(config.runDir);
  const serialRelay = configuredSerialRelay();
  const manager = new VmManager({
    stateDir: config.stateDir,
    runDir: config.runDir,
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
    },
    inventory: { bridge: ops, nat: ops },
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
      await ops.close?.();
      await (storage as Partial<AsyncDisposable>)[Symbol.asyncDispose]?.();
    },
  };
}
