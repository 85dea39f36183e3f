import { randomBytes } from 'node:crypto';

type Json = Record<string, unknown>;

// What serde fills in when it reads a VmConfig, and what `vm.info` then shows (Cloud Hypervisor v53.0,
// vmm/src/vm_config.rs: the `#[serde(default…)]` attributes and the `Default` impls). Options that are None
// are left out (`skip_serializing_none`), `iommu: false` too; `pci_segment` is always written.

const pciCommon = (device: Json): Json => ({ pci_segment: 0, ...device });

const cpusDefaults: Json = {
  boot_vcpus: 1,
  max_vcpus: 1,
  kvm_hyperv: false,
  max_phys_bits: 46,
  features: { amx: false },
  nested: true,
  core_scheduling: 'Vm',
  profile: 'Host',
};

const memoryDefaults: Json = {
  size: 512 * 1024 * 1024,
  mergeable: false,
  hotplug_method: 'Acpi',
  shared: false,
  hugepages: false,
  prefault: false,
  reserve: false,
  thp: true,
};

/** A locally administered unicast MAC, as `MacAddr::local_random()` makes one for a net without `mac`. */
export function randomLocalMac(): string {
  const bytes = randomBytes(6);
  bytes[0] = (bytes[0]! & 0xfe) | 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** One `NetConfig` as serde reads it. */
export function netWithDefaults(net: Json): Json {
  return pciCommon({
    mac: randomLocalMac(),
    num_queues: 2,
    queue_size: 256,
    vhost_user: false,
    vhost_mode: 'Client',
    offload_tso: true,
    offload_ufo: true,
    offload_csum: true,
    ...net,
  });
}

/** One `FsConfig` as serde reads it. */
export function fsWithDefaults(fs: Json): Json {
  return pciCommon({ num_queues: 1, queue_size: 1024, ...fs });
}

/** One `DiskConfig` as serde reads it (image_type and lock granularity as their enums' defaults). */
export function diskWithDefaults(disk: Json): Json {
  return pciCommon({
    readonly: false,
    direct: false,
    num_queues: 1,
    queue_size: 128,
    vhost_user: false,
    disable_io_uring: false,
    disable_aio: false,
    backing_files: false,
    sparse: true,
    image_type: 'Unknown',
    lock_granularity: 'ByteRange',
    ...disk,
  });
}

/** A device list entry of `key` (`net`, `fs`, `disks`, …) as serde reads it. */
export function deviceWithDefaults(key: string, device: Json): Json {
  switch (key) {
    case 'net':
      return netWithDefaults(device);
    case 'fs':
      return fsWithDefaults(device);
    case 'disks':
      return diskWithDefaults(device);
    case 'pmem':
      return pciCommon({ discard_writes: false, ...device });
    case 'vdpa':
      return pciCommon({ num_queues: 1, ...device });
    default:
      return pciCommon(device);
  }
}

/**
 * The `VmConfig` the VMM stores at `vm.create`: the request with every serde default filled in, which is what
 * `vm.info` answers (a net without `mac` gets a random one here, once).
 */
export function vmConfigWithDefaults(config: Json): Json {
  const out: Json = { ...config };
  out.cpus = { ...cpusDefaults, ...((config.cpus as Json | undefined) ?? {}) };
  out.memory = { ...memoryDefaults, ...((config.memory as Json | undefined) ?? {}) };
  out.rng = pciCommon({ src: '/dev/urandom', ...((config.rng as Json | undefined) ?? {}) });
  out.serial = (config.serial as Json | undefined) ?? { mode: 'Null' };
  out.console = pciCommon((config.console as Json | undefined) ?? { mode: 'Tty' });
  out.debug_console = (config.debug_console as Json | undefined) ?? { mode: 'Off', iobase: 0xe9 };
  for (const key of ['disks', 'net', 'fs', 'pmem', 'vdpa', 'devices', 'user_devices', 'generic_vhost_user']) {
    const list = config[key];
    if (Array.isArray(list)) out[key] = (list as Json[]).map((d) => deviceWithDefaults(key, d));
  }
  if (config.vsock && typeof config.vsock === 'object') out.vsock = pciCommon(config.vsock as Json);
  if (config.balloon && typeof config.balloon === 'object') {
    out.balloon = pciCommon({
      deflate_on_oom: false,
      free_page_reporting: false,
      ...(config.balloon as Json),
    });
  }
  for (const flag of ['pvpanic', 'iommu', 'watchdog', 'landlock_enable']) out[flag] ??= false;
  // serde's `skip_serializing_none`: a null option is not written back.
  for (const [key, value] of Object.entries(out)) if (value === null) delete out[key];
  return out;
}
