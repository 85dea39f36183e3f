import { join } from 'node:path';
import {
  type BridgeOps,
  type NatOps,
  type NetworkBackend,
  TapNetwork,
  type TapOps,
} from '@my-hypervisor/net-ops';
import type { StorageBackend } from '@my-hypervisor/storage';
import { VmManager } from '@my-hypervisor/vm-manager';
import type { CliConfig } from './config.js';
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
  config: Pick<CliConfig, 'bridge' | 'subnet'>,
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
  readonly ops?: HostNetOps;
  readonly network?: NetworkBackend;
  close(): Promise<void>;
}

/**
 * A VmManager. `read` only reads records (ls, inspect, logs): no backend is built, nothing is spawned. `full` wires
 * the network, storage, the chosen VMM and the inventory reconcile sweeps.
 */
export async function openManager(
  config: CliConfig,
  mode: { kind: 'read' } | { kind: 'full'; vmm: VmmChoice },
): Promise<ManagerParts> {
  if (mode.kind === 'read') {
    return {
      manager: new VmManager({ stateDir: config.stateDir, runDir: config.runDir }),
      close: async () => {},
    };
  }
  const ops = await openNetOps(config);
  const network = await openNetwork(ops, config);
  const storage = await openStorage(config.runDir);
  const manager = new VmManager({
    stateDir: config.stateDir,
    runDir: config.runDir,
    network,
    storage,
    vmm: {
      command: mode.vmm.command,
      commandArgs: mode.vmm.commandArgs,
      detached: true,
      ...(config.netns ? { netns: config.netns } : {}),
    },
    inventory: { bridge: ops, nat: ops },
  });
  return {
    manager,
    ops,
    network,
    close: async () => {
      await ops.close?.();
      await (storage as Partial<AsyncDisposable>)[Symbol.asyncDispose]?.();
    },
  };
}
