import { posix } from 'node:path';
import type { ChvClient } from '@my-hypervisor/chv-client';
import type { ShareRecord } from '@my-hypervisor/storage';
import { diskDeviceId, shareDeviceId } from './device-ids.js';
import { invalidSpec, throwIfAborted, VmManagerError } from './errors.js';
import { assertDisksOnHost, assertSharesOnHost } from './host-checks.js';
import { assertNicsPossible, attachNic, detachNic, listNics, nicNetConfig } from './nics.js';
import { stepError } from './pipeline.js';
import { parseVmSpec, type VmSpec } from './spec.js';
import type { VmOperation, VmRecord } from './state-store.js';
import type { VmHost } from './vm-resources.js';
import { loadChvClient, vmmAlive } from './vmm.js';

// Hot-plug (and cold-plug) of disks and shares. Every device gets an id derived from what it is (the disk's path,
// the share's tag), the same at boot (vm-config.ts) and at hot-plug, so `rm` finds it after any stop/start.

/** A disk to add: an image file or block device, read-write unless `readOnly`. */
export interface DiskRequest {
  readonly path: string;
  readonly readOnly?: boolean;
}

/** A folder to share with the guest under `tag` (virtiofs). */
export interface ShareRequest {
  readonly hostPath: string;
  readonly tag: string;
  readonly readOnly?: boolean;
  /** Where the guest init of a VM made from an image mounts it (at its next boot: the init has run already). */
  readonly guestPath?: string;
}

/** A NIC to add on the VM's network; its MAC is derived from the VM and the NIC's id unless given. */
export interface NicRequest {
  readonly mac?: string;
}

/** A VM's disks, shares and extra NICs with the device ids the VMM knows them by. */
export interface VmDevices {
  readonly disks: readonly { id: string; path: string; readOnly: boolean }[];
  readonly shares: readonly { id: string; tag: string; hostPath: string; readOnly: boolean }[];
  /** NICs beyond the VM's first: device id, TAP, MAC and address (once attached). */
  readonly nics: readonly { id: string; tap: string; mac?: string; ip?: string }[];
}

/** The storage id of a share's virtiofsd (what `bootSteps` prepares it under). */
const storageId = (record: VmRecord, tag: string): string => `${record.id}-${tag}`;

export function listDevices(record: VmRecord): VmDevices {
  return {
    disks: record.spec.disks.map((d) => ({ id: diskDeviceId(d.path), path: d.path, readOnly: d.readOnly })),
    shares: record.spec.shares.map((s) => ({
      id: shareDeviceId(s.tag),
      tag: s.tag,
      hostPath: s.hostPath,
      readOnly: s.readOnly,
    })),
    nics: listNics(record),
  };
}

/**
 * Checks `candidate` (the VM's disks and shares with one more) with the spec schema, which knows paths, tags and
 * duplicates; INVALID_ARGUMENT names the new entry's field (`disks[2].path`).
 */
function parseDevices(spec: VmSpec, disks: unknown[], shares: unknown[]): VmSpec {
  return parseVmSpec({
    name: spec.name,
    kernel: spec.kernel,
    network: { enabled: false },
    disks,
    shares,
  });
}

export interface HotplugContext {
  readonly host: VmHost;
  readonly signal?: AbortSignal | undefined;
}

/** Whether the VM's VMM runs, so a change must reach it; WRONG_STATE when the record is mid-create or delete. */
function isLive(record: VmRecord, op: string): boolean {
  if (record.status === 'stopped') return false;
  if ((record.status === 'running' || record.status === 'paused') && vmmAlive(record.resources.vmm))
    return true;
  throw new VmManagerError(
    'WRONG_STATE',
    `cannot ${op} on ${record.name}: it is ${record.status === 'running' || record.status === 'paused' ? 'not running (its VMM is gone); run `myhv gc`' : record.status}`,
    { details: { vm: record.name, status: record.status } },
  );
}

async function withClient<T>(record: VmRecord, fn: (client: ChvClient) => Promise<T>): Promise<T> {
  const { ChvClient } = await loadChvClient();
  await using client = new ChvClient({ socketPath: record.resources.vmm!.socketPath });
  return await fn(client);
}

const callOptions = (signal: AbortSignal | undefined) => (signal ? { signal } : {});

async function markPending(ctx: HotplugContext, record: VmRecord, op: VmOperation, step: string) {
  record.pending = { op, step, since: new Date().toISOString() };
  await ctx.host.store.write(record);
}

/**
 * Adds a disk: to the spec (so every later boot has it) and, when the VM runs, to the VMM (`vm.add-disk`). The
 * spec entry is written first with the call pending; a failed call takes it out again.
 */
export async function addDisk(
  ctx: HotplugContext,
  record: VmRecord,
  request: DiskRequest,
): Promise<VmDevices> {
  if (typeof request !== 'object' || request === null)
    throw new TypeError('addDisk needs { path, readOnly? }');
  const entry = { path: request.path, readOnly: request.readOnly ?? false };
  const parsed = parseDevices(record.spec, [...record.spec.disks, entry], []);
  const disk = parsed.disks.at(-1)!;
  await assertDisksOnHost(parsed.disks);
  const live = isLive(record, 'add a disk');
  throwIfAborted(ctx.signal);
  // A confined VMM opens it as its own user (refused here, before the spec changes, when it cannot reach it).
  if (live) await ctx.host.confiner.admitDisk(record, disk.path, 'path', () => ctx.host.store.write(record));
  record.spec.disks.push(disk);
  if (!live) {
    await ctx.host.store.write(record);
    return listDevices(record);
  }
  const id = diskDeviceId(disk.path);
  await markPending(ctx, record, 'disk-add', `vm.add-disk ${id}`);
  try {
    await withClient(record, (client) =>
      client.vmAddDisk({ path: disk.path, readonly: disk.readOnly, id }, callOptions(ctx.signal)),
    );
  } catch (error) {
    record.spec.disks = record.spec.disks.filter((d) => d !== disk);
    delete record.pending;
    await ctx.host.store.write(record).catch(() => undefined);
    throw stepError(error, record.name, 'vm.add-disk');
  }
  delete record.pending;
  await ctx.host.store.write(record);
  return listDevices(record);
}

/** Removes a disk by device id (or path): from the VMM when it runs (`vm.remove-device`), then from the spec. */
export async function removeDisk(
  ctx: HotplugContext,
  record: VmRecord,
  idOrPath: string,
): Promise<VmDevices> {
  const disk = record.spec.disks.find(
    (d) => diskDeviceId(d.path) === idOrPath || posix.normalize(d.path) === posix.normalize(idOrPath),
  );
  if (!disk) {
    throw new VmManagerError('NOT_FOUND', `${record.name} has no disk ${idOrPath}`, {
      details: { vm: record.name, field: 'id' },
    });
  }
  const live = isLive(record, 'remove a disk');
  throwIfAborted(ctx.signal);
  if (live) {
    const id = diskDeviceId(disk.path);
    await markPending(ctx, record, 'disk-rm', `vm.remove-device ${id}`);
    try {
      await withClient(record, async (client) => {
        // VMs booted before ids were set know their disks as `_diskN`: find the id by path.
        const known = (await client.vmInfo(callOptions(ctx.signal))).config.disks?.find(
          (d) => d.path === disk.path,
        );
        await client.vmRemoveDevice({ id: known?.id ?? id }, callOptions(ctx.signal));
      });
    } catch (error) {
      delete record.pending;
      await ctx.host.store.write(record).catch(() => undefined);
      throw stepError(error, record.name, 'vm.remove-device');
    }
  }
  record.spec.disks = record.spec.disks.filter((d) => d !== disk);
  delete record.pending;
  await ctx.host.store.write(record);
  return listDevices(record);
}

/**
 * Adds a share: to the spec and, when the VM runs, starts its virtiofsd through the storage backend, waits until
 * it listens (prepare does) and attaches it (`vm.add-fs`). Vhost-user needs the guest's memory shared, which the
 * VMM only sets at boot (when the spec has shares): a VM booted without shares is refused with WRONG_STATE, and
 * gets the share at its next boot if added while stopped.
 */
export async function addShare(
  ctx: HotplugContext,
  record: VmRecord,
  request: ShareRequest,
): Promise<VmDevices> {
  if (typeof request !== 'object' || request === null) {
    throw new TypeError('addShare needs { hostPath, tag, readOnly? }');
  }
  const entry = {
    hostPath: request.hostPath,
    tag: request.tag,
    readOnly: request.readOnly ?? false,
    ...(request.guestPath === undefined ? {} : { guestPath: request.guestPath }),
  };
  const parsed = parseDevices(record.spec, [], [...record.spec.shares, entry]);
  const share = parsed.shares.at(-1)!;
  await assertSharesOnHost(parsed.shares);
  const storage = ctx.host.storage();
  const live = isLive(record, 'add a share');
  if (!live) {
    record.spec.shares.push(share);
    await ctx.host.store.write(record);
    return listDevices(record);
  }
  const sharedMemory = await withClient(
    record,
    async (client) => (await client.vmInfo(callOptions(ctx.signal))).config.memory?.shared === true,
  );
  if (!sharedMemory) {
    throw new VmManagerError(
      'WRONG_STATE',
      `cannot add a share to ${record.name} while it runs: it was booted without shares, so its memory is not shared (vhost-user needs that); stop it, add the share, start it`,
      { details: { vm: record.name, status: record.status, field: 'shares' } },
    );
  }
  throwIfAborted(ctx.signal);
  const id = storageId(record, share.tag);
  record.spec.shares.push(share);
  record.resources.shares.push({ id, tag: share.tag });
  await markPending(ctx, record, 'share-add', `virtiofsd ${share.tag}`);
  const undo = async () => {
    await releaseShare(ctx.host, record, share.tag).catch(() => undefined);
    record.spec.shares = record.spec.shares.filter((s) => s !== share);
    delete record.pending;
    await ctx.host.store.write(record).catch(() => undefined);
  };
  let prepared: ShareRecord;
  try {
    prepared = (
      await storage.prepare(
        { id, hostPath: share.hostPath, tag: share.tag, readOnly: share.readOnly },
        callOptions(ctx.signal),
      )
    ).record;
  } catch (error) {
    await undo();
    throw stepError(error, record.name, 'shares');
  }
  record.resources.shares = record.resources.shares.map((s) =>
    s.id === id ? { ...s, record: prepared } : s,
  );
  await markPending(ctx, record, 'share-add', `vm.add-fs ${share.tag}`);
  try {
    await ctx.host.confiner.admitShare(record, prepared);
    await withClient(record, (client) =>
      client.vmAddFs(
        {
          tag: share.tag,
          socket: prepared.socketPath,
          num_queues: 1,
          queue_size: 1024,
          id: shareDeviceId(share.tag),
        },
        callOptions(ctx.signal),
      ),
    );
  } catch (error) {
    await undo();
    throw stepError(error, record.name, 'vm.add-fs');
  }
  delete record.pending;
  await ctx.host.store.write(record);
  return listDevices(record);
}

/** Removes a share by tag: `vm.remove-device` when the VM runs, then its virtiofsd goes, then the spec entry. */
export async function removeShare(ctx: HotplugContext, record: VmRecord, tag: string): Promise<VmDevices> {
  const share = record.spec.shares.find((s) => s.tag === tag || shareDeviceId(s.tag) === tag);
  if (!share) {
    throw new VmManagerError('NOT_FOUND', `${record.name} has no share tagged ${tag}`, {
      details: { vm: record.name, field: 'tag' },
    });
  }
  const live = isLive(record, 'remove a share');
  throwIfAborted(ctx.signal);
  if (live) {
    await markPending(ctx, record, 'share-rm', `vm.remove-device ${share.tag}`);
    try {
      await withClient(record, async (client) => {
        const known = (await client.vmInfo(callOptions(ctx.signal))).config.fs?.find(
          (f) => f.tag === share.tag,
        );
        await client.vmRemoveDevice({ id: known?.id ?? shareDeviceId(share.tag) }, callOptions(ctx.signal));
      });
    } catch (error) {
      delete record.pending;
      await ctx.host.store.write(record).catch(() => undefined);
      throw stepError(error, record.name, 'vm.remove-device');
    }
    await releaseShare(ctx.host, record, share.tag);
  }
  record.spec.shares = record.spec.shares.filter((s) => s !== share);
  delete record.pending;
  await ctx.host.store.write(record);
  return listDevices(record);
}

/**
 * Adds a NIC on the VM's network (`nics.ts`): its own address and TAP through the VM's network backend and, when the
 * VM runs, `vm.add-net`; kept in the spec so every boot has it. INVALID_ARGUMENT (`nics[i].mac`, `network`, `nics`)
 * before anything changes: no network, the namespace backend, eight NICs already, a MAC in use.
 */
export async function addNic(
  ctx: HotplugContext,
  record: VmRecord,
  request: NicRequest = {},
): Promise<VmDevices> {
  if (typeof request !== 'object' || request === null) throw new TypeError('addNic needs { mac? }');
  assertNicsPossible(record, 'network');
  const current = record.spec.nics ?? [];
  const taken = new Set(current.map((n) => n.id));
  const id = ['nic1', 'nic2', 'nic3', 'nic4', 'nic5', 'nic6', 'nic7', 'nic8'].find((n) => !taken.has(n));
  if (id === undefined) throw invalidSpec('nics', `${record.name} has eight NICs besides its first already`);
  const parsed = parseVmSpec({
    name: record.spec.name,
    kernel: record.spec.kernel,
    nics: [...current, { id, ...(request.mac === undefined ? {} : { mac: request.mac }) }],
  });
  const nic = parsed.nics!.at(-1)!;
  const inUse = [record.resources.network?.mac, ...listNics(record).map((n) => n.mac)];
  if (nic.mac !== undefined && inUse.includes(nic.mac))
    throw invalidSpec(`nics[${current.length}].mac`, `${nic.mac} is already one of ${record.name}'s MACs`);
  const live = isLive(record, 'add a NIC');
  throwIfAborted(ctx.signal);
  const save = () => ctx.host.store.write(record);
  await markPending(ctx, record, 'nic-add', `vm.add-net ${id}`);
  try {
    const state = await attachNic(ctx.host, record, nic, save, ctx.signal);
    if (live)
      await withClient(record, (client) => client.vmAddNet(nicNetConfig(state), callOptions(ctx.signal)));
  } catch (error) {
    await detachNic(ctx.host, record, id).catch(() => undefined);
    delete record.pending;
    await save().catch(() => undefined);
    throw stepError(error, record.name, live ? 'vm.add-net' : 'network');
  }
  record.spec.nics = [...current, nic];
  delete record.pending;
  await save();
  return listDevices(record);
}

/** Removes an extra NIC by id: from the VMM when it runs (`vm.remove-device`), then its TAP and address. */
export async function removeNic(ctx: HotplugContext, record: VmRecord, id: string): Promise<VmDevices> {
  const nic = record.spec.nics?.find((n) => n.id === id);
  if (!nic) {
    throw new VmManagerError('NOT_FOUND', `${record.name} has no NIC ${id}`, {
      details: { vm: record.name, field: 'id' },
    });
  }
  const live = isLive(record, 'remove a NIC');
  throwIfAborted(ctx.signal);
  await markPending(ctx, record, 'nic-rm', `vm.remove-device ${id}`);
  try {
    if (live) await withClient(record, (client) => client.vmRemoveDevice({ id }, callOptions(ctx.signal)));
    await detachNic(ctx.host, record, id);
  } catch (error) {
    delete record.pending;
    await ctx.host.store.write(record).catch(() => undefined);
    throw stepError(error, record.name, live ? 'vm.remove-device' : 'network');
  }
  record.spec.nics = record.spec.nics!.filter((n) => n !== nic);
  if (record.spec.nics.length === 0) delete record.spec.nics;
  delete record.pending;
  await ctx.host.store.write(record);
  return listDevices(record);
}

/** Stops one share's virtiofsd (found by its storage id when prepare never recorded it) and forgets it. */
async function releaseShare(host: VmHost, record: VmRecord, tag: string): Promise<void> {
  const state = record.resources.shares.find((s) => s.tag === tag);
  if (!state) return;
  const storage = host.storage();
  const shareRecord =
    (state.record as ShareRecord | undefined) ?? (await storage.list()).find((r) => r.id === state.id);
  if (shareRecord) await storage.release(shareRecord);
  record.resources.shares = record.resources.shares.filter((s) => s !== state);
}

/** Whether reconcile should hand this pending operation to `settleHotplug`. */
export function isHotplugOp(op: VmOperation): boolean {
  return (
    op === 'disk-add' ||
    op === 'disk-rm' ||
    op === 'share-add' ||
    op === 'share-rm' ||
    op === 'nic-add' ||
    op === 'nic-rm'
  );
}

/**
 * Settles a hot-plug interrupted by a crash, for a VM whose VMM still runs (reconcile stops the rest, which boot
 * with what the spec says): the VMM is asked whether the device is there, and the spec and shares follow it.
 * A share whose virtiofsd started but whose `vm.add-fs` never ran is released. Returns what was done.
 */
export async function settleHotplug(host: VmHost, record: VmRecord): Promise<string> {
  const pending = record.pending!;
  const [, subject = ''] = /^\S+ (.+)$/.exec(pending.step) ?? [];
  let present = false;
  if (vmmAlive(record.resources.vmm) && !pending.step.startsWith('virtiofsd ')) {
    const config = await withClient(
      record,
      async (client) => (await client.vmInfo({ signal: AbortSignal.timeout(5_000) })).config,
    );
    present =
      pending.op === 'disk-add' || pending.op === 'disk-rm'
        ? (config.disks ?? []).some((d) => d.id === subject || (d.path && diskDeviceId(d.path) === subject))
        : pending.op === 'nic-add' || pending.op === 'nic-rm'
          ? (config.net ?? []).some((n) => n.id === subject)
          : (config.fs ?? []).some((f) => f.tag === subject);
  }
  let outcome: string;
  if (pending.op === 'nic-add' || pending.op === 'nic-rm') {
    // The VMM has it: keep it (the spec entry is written last on add). It has not: its TAP and address go.
    const state = record.resources.nics?.find((n) => n.id === subject);
    if (present && state && !record.spec.nics?.some((n) => n.id === subject)) {
      const mac = state.network?.mac;
      record.spec.nics = [...(record.spec.nics ?? []), { id: subject, ...(mac ? { mac } : {}) }];
    } else if (!present) {
      await detachNic(host, record, subject);
      record.spec.nics = record.spec.nics?.filter((n) => n.id !== subject);
      if (record.spec.nics?.length === 0) delete record.spec.nics;
    }
    outcome = `NIC ${subject} ${present ? 'kept' : 'removed with its TAP and address'}`;
  } else if (pending.op === 'disk-add' || pending.op === 'disk-rm') {
    if (!present) record.spec.disks = record.spec.disks.filter((d) => diskDeviceId(d.path) !== subject);
    outcome = `disk ${subject} ${present ? 'kept' : 'removed'}`;
  } else {
    if (!present) {
      await releaseShare(host, record, subject);
      record.spec.shares = record.spec.shares.filter((s) => s.tag !== subject);
    }
    outcome = `share ${subject} ${present ? 'kept' : 'removed and its virtiofsd released'}`;
  }
  delete record.pending;
  await host.store.write(record);
  return `settled an interrupted ${pending.op}: ${outcome}`;
}
