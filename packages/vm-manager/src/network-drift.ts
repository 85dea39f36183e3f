import {
  type BridgeOps,
  type NatOps,
  NetOpsError,
  type NetworkBackend,
  type PortForwardRule,
  samePortForward,
} from '@my-hypervisor/net-ops';
import type { VmRecord } from './state-store.js';

/** One way the host differs from what a VM's record says it should have. */
export interface NetworkDrift {
  /** The VM whose record names what is missing; absent for the bridge, which all VMs share. */
  readonly vm?: string;
  /**
   * What is missing: the bridge the VM joins, its TAP (or its place on the bridge), its network namespace (a
   * backend that keeps one per VM), or one of its forwards.
   */
  readonly kind: 'bridge' | 'tap' | 'netns' | 'forward';
  /** The bridge, TAP or namespace name, or `tcp/8080`. */
  readonly target: string;
  readonly problem: string;
}

/** The ops that list what is installed; without them drift cannot be seen (and is not guessed). */
export interface DriftInventory {
  readonly bridge?: BridgeOps;
  readonly nat?: NatOps;
}

const isNotFound = (error: unknown) => NetOpsError.isInstance(error) && error.code === 'NOT_FOUND';

/** Records whose network should exist on the host now: settled VMs that hold an address and a TAP. */
function networked(records: Iterable<VmRecord>): VmRecord[] {
  return [...records].filter(
    (r) =>
      r.spec.network.enabled &&
      r.resources.ip !== undefined &&
      r.resources.tap !== undefined &&
      (r.status === 'stopped' || r.status === 'running' || r.status === 'paused'),
  );
}

/** What the host has installed, listed once: the bridge's ports (undefined: no bridge) and the forwards. */
export interface NetworkSnapshot {
  readonly bridge: string;
  /** Undefined when the bridge does not exist; null when the ops cannot list ports. */
  readonly ports: ReadonlySet<string> | undefined | null;
  /** Null when the ops cannot list forwards. */
  readonly forwards: readonly PortForwardRule[] | null;
  /** The VM ids the backend holds per-VM state (a namespace) for; null when it keeps none (`listAttached`). */
  readonly attached?: ReadonlySet<string> | null;
}

/** Lists the bridge's ports and the installed forwards (one call each). Read-only. */
export async function takeNetworkSnapshot(
  network: Pick<NetworkBackend, 'bridge' | 'listAttached'>,
  inventory: DriftInventory,
  signal?: AbortSignal,
): Promise<NetworkSnapshot> {
  const options = signal ? { signal } : {};
  let ports: Set<string> | undefined | null = null;
  if (inventory.bridge?.capabilities.listBridgePorts) {
    try {
      ports = new Set((await inventory.bridge.listBridgePorts(network.bridge, options)).map((p) => p.name));
    } catch (error) {
      if (!isNotFound(error)) throw error;
      ports = undefined;
    }
  }
  let forwards: PortForwardRule[] | null = null;
  if (inventory.nat?.capabilities.listPortForwards) {
    try {
      forwards = await inventory.nat.listPortForwards(options);
    } catch (error) {
      if (!isNotFound(error)) throw error;
      forwards = [];
    }
  }
  const attached = network.listAttached ? new Set(await network.listAttached(options)) : null;
  return { bridge: network.bridge, ports, forwards, attached };
}

/** The bridge, when records name TAPs on it but it does not exist. */
export function bridgeDrift(records: Iterable<VmRecord>, snapshot: NetworkSnapshot): NetworkDrift[] {
  if (snapshot.ports !== undefined || networked(records).length === 0) return [];
  return [{ kind: 'bridge', target: snapshot.bridge, problem: `bridge ${snapshot.bridge} does not exist` }];
}

/**
 * How one VM's network differs from its record: its bridge, its TAP on that bridge, each recorded forward.
 * After a reboot all of them are gone while the record remains. Empty for VMs without a settled network.
 */
export function driftOf(record: VmRecord, snapshot: NetworkSnapshot): NetworkDrift[] {
  if (networked([record]).length === 0) return [];
  // The bridge itself is reported once, by bridgeDrift.
  const drift: NetworkDrift[] = [];
  const vm = record.name;
  const tap = record.resources.tap!;
  const netns = record.resources.network?.netns;
  // A TAP in the VM's own namespace is not on the bridge; the namespace is what the host must still have.
  if (netns !== undefined) {
    if (snapshot.attached && !record.spec.network.mycelium && !snapshot.attached.has(record.id)) {
      drift.push({ vm, kind: 'netns', target: netns, problem: `network namespace ${netns} does not exist` });
    }
  } else if (snapshot.ports !== null) {
    // Its own TAP, and its extra NICs' (nics.ts).
    for (const port of [tap, ...(record.resources.nics ?? []).map((n) => n.tap)]) {
      if (snapshot.ports?.has(port)) continue;
      drift.push({
        vm,
        kind: 'tap',
        target: port,
        problem: `TAP ${port} is not on bridge ${snapshot.bridge}`,
      });
    }
  }
  if (snapshot.forwards !== null) {
    for (const rule of record.resources.forwards) {
      if (snapshot.forwards.some((r) => samePortForward(r, rule))) continue;
      drift.push({
        vm,
        kind: 'forward',
        target: `${rule.protocol}/${rule.hostPort}`,
        problem: `forward ${rule.protocol}/${rule.hostPort} → ${rule.guestIp}:${rule.guestPort} is not installed`,
      });
    }
  }
  return drift;
}
