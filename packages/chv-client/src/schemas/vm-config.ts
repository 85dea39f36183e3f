import { z } from 'zod';
import { int, int8, int16, int32, int64, uint8, uint16, uint32 } from './integers.js';
import {
  consoleModeSchema,
  coreSchedulingModeSchema,
  imageTypeSchema,
  lockGranularitySchema,
} from './primitives.js';

// Request schemas are strict (an unknown key is a typo, not a feature); `lenient()` derives the reading side.

/** What the guest boots: a kernel (with cmdline and initramfs), a firmware, or an IGVM file. */
export const payloadConfigSchema = z.strictObject({
  firmware: z.string().optional(),
  kernel: z.string().optional(),
  cmdline: z.string().optional(),
  initramfs: z.string().optional(),
  igvm: z.string().optional(),
  host_data: z.string().optional(),
});
/** What the VM boots: kernel, firmware, initramfs and command line. */
export type PayloadConfig = z.input<typeof payloadConfigSchema>;

export const cpuAffinitySchema = z.strictObject({ vcpu: int(), host_cpus: z.array(int()) });
/** The host CPUs one vCPU may run on. */
export type CpuAffinity = z.input<typeof cpuAffinitySchema>;

export const cpuFeaturesSchema = z.strictObject({ amx: z.boolean().optional() });
/** Optional CPU features to expose to the guest. */
export type CpuFeatures = z.input<typeof cpuFeaturesSchema>;

export const cpuTopologySchema = z.strictObject({
  threads_per_core: int().optional(),
  cores_per_die: int().optional(),
  dies_per_package: int().optional(),
  packages: int().optional(),
});
/** The CPU topology the guest sees: threads, cores, dies and packages. */
export type CpuTopology = z.input<typeof cpuTopologySchema>;

export const cpusConfigSchema = z.strictObject({
  boot_vcpus: int().min(1),
  max_vcpus: int().min(1),
  topology: cpuTopologySchema.optional(),
  kvm_hyperv: z.boolean().optional(),
  max_phys_bits: int().optional(),
  nested: z.boolean().optional(),
  affinity: z.array(cpuAffinitySchema).optional(),
  features: cpuFeaturesSchema.optional(),
  core_scheduling: coreSchedulingModeSchema.optional(),
});
/** The vCPUs of a VM: boot and maximum count, topology, affinity and features. */
export type CpusConfig = z.input<typeof cpusConfigSchema>;

export const pciSegmentConfigSchema = z.strictObject({
  pci_segment: int16(),
  mmio32_aperture_weight: int32().optional(),
  mmio64_aperture_weight: int32().optional(),
});
/** The aperture weights of one PCI segment. */
export type PciSegmentConfig = z.input<typeof pciSegmentConfigSchema>;

export const platformConfigSchema = z.strictObject({
  num_pci_segments: int16().optional(),
  iommu_segments: z.array(int16()).optional(),
  iommu_address_width_bits: uint8().optional(),
  system_serial_number: z.string().optional(),
  /** @deprecated use `system_serial_number` */
  serial_number: z.string().optional(),
  system_uuid: z.string().optional(),
  /** @deprecated use `system_uuid` */
  uuid: z.string().optional(),
  oem_strings: z.array(z.string()).optional(),
  system_manufacturer: z.string().optional(),
  system_product_name: z.string().optional(),
  system_version: z.string().optional(),
  system_family: z.string().optional(),
  system_sku_number: z.string().optional(),
  chassis_asset_tag: z.string().optional(),
  tdx: z.boolean().optional(),
  sev_snp: z.boolean().optional(),
  iommufd: z.boolean().optional(),
  vfio_p2p_dma: z.boolean().optional(),
});
/** Platform settings: PCI segments, IOMMU, SMBIOS strings (serial, UUID, OEM), TDX and SEV-SNP. */
export type PlatformConfig = z.input<typeof platformConfigSchema>;

export const memoryZoneConfigSchema = z.strictObject({
  id: z.string(),
  size: int64(),
  file: z.string().optional(),
  mergeable: z.boolean().optional(),
  shared: z.boolean().optional(),
  hugepages: z.boolean().optional(),
  hugepage_size: int64().optional(),
  host_numa_node: int32().optional(),
  hotplug_size: int64().optional(),
  hotplugged_size: int64().optional(),
  prefault: z.boolean().optional(),
  reserve: z.boolean().optional(),
});
/** One memory zone of a VM: size, backing file, huge pages, NUMA host node. */
export type MemoryZoneConfig = z.input<typeof memoryZoneConfigSchema>;

/** Guest memory in bytes. `shared: true` is required by virtio-fs and every other vhost-user device. */
export const memoryConfigSchema = z.strictObject({
  size: int64(),
  hotplug_size: int64().optional(),
  hotplugged_size: int64().optional(),
  mergeable: z.boolean().optional(),
  hotplug_method: z.string().optional(),
  shared: z.boolean().optional(),
  hugepages: z.boolean().optional(),
  hugepage_size: int64().optional(),
  prefault: z.boolean().optional(),
  reserve: z.boolean().optional(),
  thp: z.boolean().optional(),
  zones: z.array(memoryZoneConfigSchema).optional(),
});
/** The memory of a VM: size, hotplug, sharing, huge pages and zones. */
export type MemoryConfig = z.input<typeof memoryConfigSchema>;

export const tokenBucketSchema = z.strictObject({
  size: int64().min(0),
  one_time_burst: int64().min(0).optional(),
  refill_time: int64().min(0),
});
/** A token bucket of a rate limiter: size, one-time burst and refill time. */
export type TokenBucket = z.input<typeof tokenBucketSchema>;

export const rateLimiterConfigSchema = z.strictObject({
  bandwidth: tokenBucketSchema.optional(),
  ops: tokenBucketSchema.optional(),
});
/** A rate limiter: a bandwidth and an operations token bucket. */
export type RateLimiterConfig = z.input<typeof rateLimiterConfigSchema>;

export const rateLimitGroupConfigSchema = z.strictObject({
  id: z.string(),
  rate_limiter_config: rateLimiterConfigSchema,
});
/** A rate limit shared by several disks. */
export type RateLimitGroupConfig = z.input<typeof rateLimitGroupConfigSchema>;

export const virtQueueAffinitySchema = z.strictObject({ queue_index: int(), host_cpus: z.array(int()) });
/** The host CPUs that serve one virtqueue. */
export type VirtQueueAffinity = z.input<typeof virtQueueAffinitySchema>;

export const diskConfigSchema = z.strictObject({
  path: z.string().optional(),
  readonly: z.boolean().optional(),
  direct: z.boolean().optional(),
  iommu: z.boolean().optional(),
  num_queues: int().optional(),
  queue_size: int().optional(),
  vhost_user: z.boolean().optional(),
  vhost_socket: z.string().optional(),
  rate_limiter_config: rateLimiterConfigSchema.optional(),
  pci_segment: int16().optional(),
  pci_device_id: uint8().optional(),
  id: z.string().optional(),
  serial: z.string().optional(),
  rate_limit_group: z.string().optional(),
  queue_affinity: z.array(virtQueueAffinitySchema).optional(),
  backing_files: z.boolean().optional(),
  sparse: z.boolean().optional(),
  image_type: imageTypeSchema.optional(),
  lock_granularity: lockGranularitySchema.optional(),
});
/** A disk of the VM: image path, read-only, queues, rate limits, vhost-user. */
export type DiskConfig = z.input<typeof diskConfigSchema>;

/**
 * A virtio-net device. `ip`/`mask` configure the HOST side of a TAP the VMM creates (ignored for an existing
 * TAP); the guest's address goes on the kernel command line. A named TAP must match the queue mode: the VMM
 * opens it multi-queue only when `num_queues / 2 > 1` (default `num_queues` is 2).
 */
export const netConfigSchema = z.strictObject({
  tap: z.string().optional(),
  ip: z.string().optional(),
  mask: z.string().optional(),
  mac: z.string().optional(),
  host_mac: z.string().optional(),
  mtu: int().optional(),
  iommu: z.boolean().optional(),
  num_queues: int().optional(),
  queue_size: int().optional(),
  vhost_user: z.boolean().optional(),
  vhost_socket: z.string().optional(),
  vhost_mode: z.string().optional(),
  id: z.string().optional(),
  pci_segment: int16().optional(),
  pci_device_id: uint8().optional(),
  rate_limiter_config: rateLimiterConfigSchema.optional(),
  offload_tso: z.boolean().optional(),
  offload_ufo: z.boolean().optional(),
  offload_csum: z.boolean().optional(),
});
/** A network device of the VM: TAP, MAC, host-side IP, queues, vhost-user. */
export type NetConfig = z.input<typeof netConfigSchema>;

export const rngConfigSchema = z.strictObject({
  id: z.string().optional(),
  pci_segment: int16().optional(),
  pci_device_id: uint8().optional(),
  iommu: z.boolean().optional(),
  src: z.string(),
});
/** The virtio-rng device and its entropy source (`src`). */
export type RngConfig = z.input<typeof rngConfigSchema>;

export const rtcConfigSchema = z.strictObject({
  id: z.string().optional(),
  pci_segment: int16().optional(),
  pci_device_id: uint8().optional(),
  iommu: z.boolean().optional(),
});
/** A real-time clock device and its PCI placement. */
export type RtcConfig = z.input<typeof rtcConfigSchema>;

export const balloonConfigSchema = z.strictObject({
  id: z.string().optional(),
  pci_segment: int16().optional(),
  pci_device_id: uint8().optional(),
  iommu: z.boolean().optional(),
  size: int64(),
  deflate_on_oom: z.boolean().optional(),
  free_page_reporting: z.boolean().optional(),
});
/** The memory balloon device: size and deflate-on-OOM, free page reporting. */
export type BalloonConfig = z.input<typeof balloonConfigSchema>;

/** A virtio-fs share: the VMM connects to virtiofsd's `socket` at boot. Needs `memory.shared = true`. */
export const fsConfigSchema = z.strictObject({
  tag: z.string(),
  socket: z.string(),
  num_queues: int(),
  queue_size: int(),
  pci_segment: int16().optional(),
  pci_device_id: uint8().optional(),
  id: z.string().optional(),
});
/** A virtio-fs share: the vhost-user socket of a virtiofsd and its tag. */
export type FsConfig = z.input<typeof fsConfigSchema>;

export const genericVhostUserConfigSchema = z.strictObject({
  socket: z.string(),
  queue_sizes: z.array(uint16()),
  pci_segment: int16().optional(),
  pci_device_id: uint8().optional(),
  id: z.string().optional(),
  device_type: uint32(),
});
/** A generic vhost-user device: its socket and virtio id. */
export type GenericVhostUserConfig = z.input<typeof genericVhostUserConfigSchema>;

export const pmemConfigSchema = z.strictObject({
  file: z.string(),
  size: int64().optional(),
  iommu: z.boolean().optional(),
  discard_writes: z.boolean().optional(),
  pci_segment: int16().optional(),
  pci_device_id: uint8().optional(),
  id: z.string().optional(),
});
/** A persistent memory device backed by a file. */
export type PmemConfig = z.input<typeof pmemConfigSchema>;

export const consoleConfigSchema = z.strictObject({
  file: z.string().optional(),
  socket: z.string().optional(),
  mode: consoleModeSchema,
  iommu: z.boolean().optional(),
  id: z.string().optional(),
  pci_segment: int16().optional(),
  pci_device_id: uint8().optional(),
});
/** Where the virtio console goes: mode, file or socket. */
export type ConsoleConfig = z.input<typeof consoleConfigSchema>;

export const serialConfigSchema = z.strictObject({
  file: z.string().optional(),
  socket: z.string().optional(),
  mode: consoleModeSchema,
});
/** Where the serial port goes: mode, file or socket. */
export type SerialConfig = z.input<typeof serialConfigSchema>;

export const debugConsoleConfigSchema = z.strictObject({
  file: z.string().optional(),
  mode: consoleModeSchema,
  iobase: int().optional(),
});
/** The debug console (I/O port) device: mode and file. */
export type DebugConsoleConfig = z.input<typeof debugConsoleConfigSchema>;

/** A VFIO device by its sysfs path. */
export const deviceConfigSchema = z.strictObject({
  path: z.string().optional(),
  iommu: z.boolean().optional(),
  pci_segment: int16().optional(),
  pci_device_id: uint8().optional(),
  id: z.string().optional(),
  x_nv_gpudirect_clique: int8().optional(),
  x_exclude_mmap_bars: z.array(int64()).optional(),
});
/** A VFIO device passed through to the VM. */
export type DeviceConfig = z.input<typeof deviceConfigSchema>;

export const userDeviceConfigSchema = z.strictObject({
  socket: z.string(),
  id: z.string().optional(),
  pci_segment: int16().optional(),
  pci_device_id: uint8().optional(),
});
/** A vfio-user device: its socket. */
export type UserDeviceConfig = z.input<typeof userDeviceConfigSchema>;

export const tpmConfigSchema = z.strictObject({ socket: z.string() });
/** A TPM device: the swtpm socket. */
export type TpmConfig = z.input<typeof tpmConfigSchema>;

export const vdpaConfigSchema = z.strictObject({
  path: z.string(),
  num_queues: int(),
  iommu: z.boolean().optional(),
  pci_segment: int16().optional(),
  pci_device_id: uint8().optional(),
  id: z.string().optional(),
});
/** A vDPA device: its path and queues. */
export type VdpaConfig = z.input<typeof vdpaConfigSchema>;

export const vsockConfigSchema = z.strictObject({
  /** Guest CID; 0–2 are reserved. */
  cid: int64().min(3),
  /** Unix socket on the host that proxies vsock connections. */
  socket: z.string(),
  iommu: z.boolean().optional(),
  pci_segment: int16().optional(),
  pci_device_id: uint8().optional(),
  id: z.string().optional(),
});
/** The vsock device: guest CID and the host socket. */
export type VsockConfig = z.input<typeof vsockConfigSchema>;

export const numaDistanceSchema = z.strictObject({ destination: int32(), distance: int32() });
/** The distance from one guest NUMA node to another. */
export type NumaDistance = z.input<typeof numaDistanceSchema>;

export const numaConfigSchema = z.strictObject({
  guest_numa_id: int32(),
  cpus: z.array(int32()).optional(),
  distances: z.array(numaDistanceSchema).optional(),
  memory_zones: z.array(z.string()).optional(),
  pci_segments: z.array(int32()).optional(),
  device_id: z.string().optional(),
});
/** One guest NUMA node: its CPUs, memory zones and distances. */
export type NumaConfig = z.input<typeof numaConfigSchema>;

export const landlockConfigSchema = z.strictObject({ path: z.string(), access: z.string() });
/** One path the VMM may access when Landlock sandboxing is on. */
export type LandlockConfig = z.input<typeof landlockConfigSchema>;

/** The `vm.create` body. Only `payload` is required; the VMM fills in defaults for everything else. */
export const vmConfigSchema = z.strictObject({
  cpus: cpusConfigSchema.optional(),
  memory: memoryConfigSchema.optional(),
  payload: payloadConfigSchema,
  rate_limit_groups: z.array(rateLimitGroupConfigSchema).optional(),
  disks: z.array(diskConfigSchema).optional(),
  net: z.array(netConfigSchema).optional(),
  rng: rngConfigSchema.optional(),
  balloon: balloonConfigSchema.optional(),
  fs: z.array(fsConfigSchema).optional(),
  generic_vhost_user: z.array(genericVhostUserConfigSchema).optional(),
  pmem: z.array(pmemConfigSchema).optional(),
  serial: serialConfigSchema.optional(),
  console: consoleConfigSchema.optional(),
  debug_console: debugConsoleConfigSchema.optional(),
  devices: z.array(deviceConfigSchema).optional(),
  user_devices: z.array(userDeviceConfigSchema).optional(),
  vdpa: z.array(vdpaConfigSchema).optional(),
  vsock: vsockConfigSchema.optional(),
  numa: z.array(numaConfigSchema).optional(),
  iommu: z.boolean().optional(),
  watchdog: z.boolean().optional(),
  rtc: rtcConfigSchema.optional(),
  pvpanic: z.boolean().optional(),
  pci_segments: z.array(pciSegmentConfigSchema).optional(),
  platform: platformConfigSchema.optional(),
  tpm: tpmConfigSchema.optional(),
  landlock_enable: z.boolean().optional(),
  landlock_rules: z.array(landlockConfigSchema).optional(),
});
/** The configuration `vm.create` takes: payload, CPUs, memory and every device. */
export type VmConfig = z.input<typeof vmConfigSchema>;
