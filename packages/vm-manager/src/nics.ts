import type { NetConfig } from '@my-hypervisor/chv-client';
import { deriveTapName, type VmNetworkAttachment } from '@my-hypervisor/net-ops';
import { invalidSpec } from './errors.js';
import { type NicSpec, networkPolicy } from './spec.js';
import type { NicState, VmRecord } from './state-store.js';
import type { VmHost } from './vm-resources.js';

// A VM's extra NICs (`spec.nics`): each is attached through the VM's own network backend like its first one, under
// an identity of its own, `<vm id>.<nic id>` — the backend's vmId (so its TAP name and MAC derive from it) and the
// IP reservation's owner (so reconcile knows whose it is).

/** The identity an extra NIC is attached and addressed under. */
export function nicOwner(record: Pick<VmRecord, 'id'>, id: string): string {
  return `${record.id}.${id}`;
}

/** The VM id an IP reservation or backend vmId belongs to: the VM's own, or the VM of one of its NICs. */
export function ownerVmId(owner: string): string {
  const dot = owner.indexOf('.');
  return dot < 0 ? owner : owner.slice(0, dot);
}

/**
 * Refuses NICs where the VM's network cannot have them: a VM without a network, and the namespace backend (the VM's
 * VMM runs in a namespace of its own, which holds exactly one TAP). INVALID_ARGUMENT naming `field`.
 */
export function assertNicsPossible(record: VmRecord, field: string): void {
  if (!record.spec.network.enabled)
    throw invalidSpec(field, `${record.name} has no network; a NIC joins the VM's network`);
  if (record.resources.network?.netns !== undefined) {
    throw invalidSpec(
      field,
      `${record.name} is on the namespace backend, where a VM has one interface in its own namespace; more NICs are not supported there`,
    );
  }
}

/**
 * Gives the NIC its address and TAP (the backend attaches it to the VM's bridge), recording each as it comes, so a
 * crash leaves nothing the record does not name. Idempotent: `start` calls it again to re-make what a reboot took.
 */
export async function attachNic(
  host: VmHost,
  record: VmRecord,
  nic: NicSpec,
  save: () => Promise<void>,
  signal?: AbortSignal,
): Promise<NicState & { network: VmNetworkAttachment }> {
  const owner = nicOwner(record, nic.id);
  record.resources.nics ??= [];
  let state = record.resources.nics.find((n) => n.id === nic.id);
  if (!state) {
    state = { id: nic.id, tap: deriveTapName(owner) };
    record.resources.nics.push(state);
    await save();
  }
  if (state.ip === undefined) {
    state.ip = await host.ipam(record).allocate(owner, signal ? { signal } : {});
    await save();
  }
  const policy = networkPolicy(record.spec);
  const confined = record.resources.confinement;
  const network = await host.network(record).attach(
    {
      vmId: owner,
      ipv4: state.ip,
      tap: state.tap,
      ...(nic.mac ? { mac: nic.mac } : {}),
      multiQueue: false,
      // A confined VMM (its own uid, no capabilities) can open only a TAP made for it.
      ...(confined ? { tapOwner: { uid: confined.uid, gid: confined.gid } } : {}),
      ...(policy ? { policy } : {}),
    },
    signal ? { signal } : {},
  );
  state.network = network;
  await save();
  return { ...state, network };
}

/** Removes the NIC's TAP and frees its address, then forgets it. Nothing to do for a NIC the record lacks. */
export async function detachNic(host: VmHost, record: VmRecord, id: string): Promise<void> {
  const state = record.resources.nics?.find((n) => n.id === id);
  if (!state) return;
  const owner = nicOwner(record, id);
  await host.network(record).detach({ vmId: owner, tap: state.tap, ...(state.ip ? { ipv4: state.ip } : {}) });
  if (state.ip) await host.ipam(record).release(owner);
  record.resources.nics = record.resources.nics!.filter((n) => n !== state);
  if (record.resources.nics.length === 0) delete record.resources.nics;
}

/** The VMM's `net[]` entry of an attached extra NIC, with the id `vm nic rm` removes it by. */
export function nicNetConfig(nic: NicState & { network: VmNetworkAttachment }): NetConfig {
  return { id: nic.id, tap: nic.network.tap, mac: nic.network.mac, num_queues: 2, queue_size: 256 };
}

/** The `net[]` entries of the VM's attached extra NICs (after its first), for `vm.create`. */
export function nicNetConfigs(record: VmRecord): NetConfig[] {
  return (record.resources.nics ?? []).flatMap((n) =>
    n.network ? [nicNetConfig({ ...n, network: n.network })] : [],
  );
}

/** What `devices()` shows of the extra NICs. */
export function listNics(record: VmRecord): { id: string; tap: string; mac?: string; ip?: string }[] {
  return (record.spec.nics ?? []).map((nic) => {
    const state = record.resources.nics?.find((n) => n.id === nic.id);
    const mac = state?.network?.mac ?? nic.mac;
    return {
      id: nic.id,
      tap: state?.tap ?? deriveTapName(nicOwner(record, nic.id)),
      ...(mac ? { mac } : {}),
      ...(state?.ip ? { ip: state.ip } : {}),
    };
  });
}
