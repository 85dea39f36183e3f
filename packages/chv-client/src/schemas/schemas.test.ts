import { describe, expect, it } from 'vitest';
import { vmInfoReader, vmmPingResponseReader } from './responses.js';
import { vmConfigSchema } from './vm-config.js';

// What a real Cloud Hypervisor answers on vm.info: absent options as null, fields the description lacks.
const realVmInfo = {
  config: {
    cpus: {
      boot_vcpus: 1,
      max_vcpus: 1,
      topology: null,
      kvm_hyperv: false,
      max_phys_bits: 46,
      affinity: null,
      features: { amx: false },
      profile: 'Host',
    },
    memory: {
      size: 536870912,
      mergeable: false,
      hotplug_method: 'Acpi',
      hotplug_size: null,
      hotplugged_size: null,
      shared: true,
      hugepages: false,
      hugepage_size: null,
      prefault: false,
      zones: null,
      thp: true,
    },
    payload: { firmware: null, kernel: '/boot/vmlinux', cmdline: 'console=ttyS0', initramfs: null },
    rate_limit_groups: null,
    disks: null,
    net: [
      {
        tap: 'tap0',
        ip: '192.168.249.1',
        mask: '255.255.255.0',
        mac: '12:34:56:78:90:ab',
        host_mac: null,
        mtu: null,
        iommu: false,
        num_queues: 2,
        queue_size: 256,
        vhost_user: false,
        vhost_socket: null,
        vhost_mode: 'Client',
        id: '_net1',
        fds: null,
        rate_limiter_config: null,
        pci_segment: 0,
        offload_tso: true,
        offload_ufo: true,
        offload_csum: true,
      },
    ],
    rng: { src: '/dev/urandom', iommu: false },
    balloon: null,
    fs: [
      { tag: 'share', socket: '/run/v.sock', num_queues: 1, queue_size: 1024, id: '_fs2', pci_segment: 0 },
    ],
    pmem: null,
    serial: { file: '/tmp/serial.log', mode: 'File', iommu: false, socket: null },
    console: { file: null, mode: 'Off', iommu: false, socket: null },
    debug_console: { file: null, mode: 'Off', iobase: 233 },
    devices: null,
    user_devices: null,
    vdpa: null,
    vsock: null,
    pvpanic: false,
    iommu: false,
    numa: null,
    watchdog: false,
    platform: null,
    tpm: null,
    preserved_fds: null,
    landlock_enable: false,
    landlock_rules: null,
  },
  state: 'Running',
  memory_actual_size: 536870912,
  device_tree: {
    _net1: {
      id: '_net1',
      resources: [{ PciBar: { index: 0, base: 1, size: 2 } }],
      children: [],
      pci_bdf: '0000:00:03.0',
    },
  },
};

describe('schemas', () => {
  it('reads a real vm.info leniently: nulls accepted, unknown fields kept', () => {
    const info = vmInfoReader.parse(realVmInfo);
    expect(info.state).toBe('Running');
    expect(info.config.cpus?.profile).toBe('Host');
    expect(info.config.net?.[0]?.fds).toBeNull();
    expect(info.config.preserved_fds).toBeNull();
    expect(info.device_tree?._net1?.pci_bdf).toBe('0000:00:03.0');
  });

  it('still rejects a reading that breaks the contract (unknown state, missing required field)', () => {
    expect(vmInfoReader.safeParse({ ...realVmInfo, state: 'Exploded' }).success).toBe(false);
    expect(vmmPingResponseReader.safeParse({ build_version: 'x' }).success).toBe(false);
  });

  it('is strict on what we send: unknown keys, nulls and out-of-range integers fail', () => {
    expect(vmConfigSchema.safeParse({ payload: { kernel: '/k' } }).success).toBe(true);
    expect(vmConfigSchema.safeParse({ payload: { kernel: '/k' }, memroy: {} }).success).toBe(false);
    expect(vmConfigSchema.safeParse({ payload: { kernel: '/k', initramfs: null } }).success).toBe(false);
    expect(vmConfigSchema.safeParse({ payload: {}, vsock: { cid: 2, socket: '/s' } }).success).toBe(false);
    expect(vmConfigSchema.safeParse({ payload: {}, net: [{ pci_device_id: 256 }] }).success).toBe(false);
    expect(vmConfigSchema.safeParse({ payload: {}, serial: { mode: 'Tty' } }).success).toBe(true);
    expect(vmConfigSchema.safeParse({ payload: {}, serial: { mode: 'tty' } }).success).toBe(false);
  });
});
