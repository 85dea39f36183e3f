import { z } from 'zod';
import { int, int16, int64, uint8, uint32 } from './integers.js';
import { memoryRestoreModeSchema, migrationModeSchema, timeoutStrategySchema } from './primitives.js';

/** `vm.resize`: any of the three targets; memory and balloon sizes in bytes. */
export const vmResizeSchema = z.strictObject({
  desired_vcpus: int().min(1).optional(),
  desired_ram: int64().optional(),
  desired_balloon: int64().optional(),
});
/** The body of `vm.resize`: new vCPU count, memory size or balloon size. */
export type VmResize = z.input<typeof vmResizeSchema>;

export const vmResizeDiskSchema = z.strictObject({
  id: z.string().optional(),
  desired_size: int64().optional(),
});
/** The body of `vm.resize-disk`: a disk id and its new size. */
export type VmResizeDisk = z.input<typeof vmResizeDiskSchema>;

export const vmResizeZoneSchema = z.strictObject({
  id: z.string().optional(),
  desired_ram: int64().optional(),
});
/** The body of `vm.resize-zone`: a memory zone id and its new size. */
export type VmResizeZone = z.input<typeof vmResizeZoneSchema>;

export const vmRemoveDeviceSchema = z.strictObject({ id: z.string().optional() });
/** The body of `vm.remove-device`: the id of the device to unplug. */
export type VmRemoveDevice = z.input<typeof vmRemoveDeviceSchema>;

/** `destination_url` is `file:///some/dir`. The VM must be paused. */
export const vmSnapshotConfigSchema = z.strictObject({ destination_url: z.string().optional() });
/** The body of `vm.snapshot`: where to write the snapshot. */
export type VmSnapshotConfig = z.input<typeof vmSnapshotConfigSchema>;

export const vmCoredumpDataSchema = z.strictObject({ destination_url: z.string().optional() });
/** The body of `vm.coredump`: where to write the core dump. */
export type VmCoredumpData = z.input<typeof vmCoredumpDataSchema>;

export const vmMemoryZoneUpdateDataSchema = z.strictObject({
  id: z.string().min(1),
  host_numa_node: uint32(),
});
/** A memory zone moved to another host NUMA node, in the `zone_updates` of a restore or an incoming migration. */
export type VmMemoryZoneUpdateData = z.input<typeof vmMemoryZoneUpdateDataSchema>;

/** `vm.restore`: `source_url` is the `file:///dir` a snapshot was written to. The VM must not exist yet. */
export const restoreConfigSchema = z.strictObject({
  source_url: z.string(),
  prefault: z.boolean().optional(),
  memory_restore_mode: memoryRestoreModeSchema.optional(),
  resume: z.boolean().optional(),
  zone_updates: z.array(vmMemoryZoneUpdateDataSchema).optional(),
});
/** The body of `vm.restore`: the snapshot to restore from and how. */
export type RestoreConfig = z.input<typeof restoreConfigSchema>;

export const receiveMigrationDataSchema = z.strictObject({
  receiver_url: z.string(),
  tls_dir: z.string().optional(),
  memory_mode: migrationModeSchema.optional(),
  zone_updates: z.array(vmMemoryZoneUpdateDataSchema).optional(),
});
/** The body of `vm.receive-migration`: where to listen for a migration. */
export type ReceiveMigrationData = z.input<typeof receiveMigrationDataSchema>;

/** `vm.send-migration`: `destination_url` is `tcp:<host>:<port>` or `unix:<path>`. */
export const sendMigrationDataSchema = z.strictObject({
  destination_url: z.string(),
  local: z.boolean().optional(),
  downtime_ms: int64().min(1).optional(),
  timeout_s: int64().min(1).optional(),
  timeout_strategy: timeoutStrategySchema.optional(),
  connections: int64().min(1).max(128).optional(),
  tls_dir: z.string().optional(),
  memory_mode: migrationModeSchema.optional(),
});
/** The body of `vm.send-migration`: where to send the VM and how. */
export type SendMigrationData = z.input<typeof sendMigrationDataSchema>;

/** `vm.add-user-device` (vfio-user): the socket of the device's server. */
export const vmAddUserDeviceSchema = z.strictObject({
  socket: z.string(),
  pci_segment: int16().optional(),
  pci_device_id: uint8().optional(),
});
/** The body of `vm.add-user-device`: a vfio-user device socket. */
export type VmAddUserDevice = z.input<typeof vmAddUserDeviceSchema>;
