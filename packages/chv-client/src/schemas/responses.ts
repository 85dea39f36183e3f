import { z } from 'zod';
import { int64 } from './integers.js';
import { type Lenient, lenient } from './lenient.js';
import { vmStateSchema } from './primitives.js';
import { vmConfigSchema } from './vm-config.js';

/** `vmm.ping`: `version` is the VMM's release (e.g. `46.0.0`); `build_version` its git description. */
export const vmmPingResponseSchema = z.strictObject({
  build_version: z.string().optional(),
  version: z.string(),
  pid: int64().optional(),
  features: z.array(z.string()).optional(),
});

export const deviceNodeSchema = z.strictObject({
  id: z.string().optional(),
  // Rust enums with data; the description cannot say more than "an object".
  resources: z.array(z.record(z.string(), z.unknown())).optional(),
  children: z.array(z.string()).optional(),
  pci_bdf: z.string().optional(),
});

export const vmInfoSchema = z.strictObject({
  config: vmConfigSchema,
  state: vmStateSchema,
  memory_actual_size: int64().optional(),
  device_tree: z.record(z.string(), deviceNodeSchema).optional(),
});

/** Per-device counters: device id → counter name → value. */
export const vmCountersSchema = z.record(z.string(), z.record(z.string(), int64()));

/** What a hot-plug returns when the VM runs: the new device's id and PCI address (`0000:00:05.0`). */
export const pciDeviceInfoSchema = z.strictObject({ id: z.string(), bdf: z.string() });

// What we read is parsed leniently: unknown fields kept, absent options may be null.
export const vmmPingResponseReader = lenient(vmmPingResponseSchema);
export const vmInfoReader = lenient(vmInfoSchema);
export const vmCountersReader = lenient(vmCountersSchema);
export const pciDeviceInfoReader = lenient(pciDeviceInfoSchema);

/** What `vmm.ping` answers: the VMM version, build, pid and features. */
export type VmmPingResponse = Lenient<z.output<typeof vmmPingResponseSchema>>;
/** One node of the VM device tree in `VmInfo.device_tree`. */
export type DeviceNode = Lenient<z.output<typeof deviceNodeSchema>>;
/** What `vm.info` answers: the VM config, its state, memory size and device tree. */
export type VmInfo = Lenient<z.output<typeof vmInfoSchema>>;
/** What `vm.counters` answers: device id, then counter name, then value. */
export type VmCounters = Lenient<z.output<typeof vmCountersSchema>>;
/** What a hot-plug answers while the VM runs: the new device id and PCI address. */
export type PciDeviceInfo = Lenient<z.output<typeof pciDeviceInfoSchema>>;
