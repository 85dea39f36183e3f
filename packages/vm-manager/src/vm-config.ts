import type { VmConfig } from '@my-hypervisor/chv-client';
import type { VmNetworkAttachment } from '@my-hypervisor/net-ops';
import { diskDeviceId, shareDeviceId } from './device-ids.js';
import type { VmSpec } from './spec.js';

export interface VmConfigInputs {
  readonly spec: VmSpec;
  readonly network?: VmNetworkAttachment;
  readonly shares: readonly { tag: string; socketPath: string }[];
  /** The VMM listens here for the serial relay (serial `Socket` mode). */
  readonly serialSocket: string;
}

/** The guest kernel command line: the spec's, plus the guest's own address (Cloud Hypervisor never sets it). */
export function kernelCmdline(spec: VmSpec, network?: VmNetworkAttachment): string {
  const parts = [spec.cmdline.trim()];
  if (network) parts.push(network.kernelIpArg);
  // Our convention for guests that configure mycelium themselves: myhv.ipv6=<address>/<len>,<gateway>[,<route>…]
  if (network?.ipv6) {
    const { address, prefixLength, gateway, routes } = network.ipv6;
    parts.push(`myhv.ipv6=${[`${address}/${prefixLength}`, gateway, ...routes].join(',')}`);
  }
  return parts.filter(Boolean).join(' ');
}

/**
 * The `vm.create` body. The TAP, MAC and queue count go into `net[]`; the guest IP does not (`NetConfig.ip` is
 * the host side of the TAP). `memory.shared` is on whenever a share exists (vhost-user needs it). Serial goes to a
 * socket the VM's relay serves (it writes serial.log) and the console is off, so the VMM never grabs a terminal.
 */
export function buildVmConfig({ spec, network, shares, serialSocket }: VmConfigInputs): VmConfig {
  const config: VmConfig = {
    payload: {
      kernel: spec.kernel,
      cmdline: kernelCmdline(spec, network),
      ...(spec.initramfs ? { initramfs: spec.initramfs } : {}),
    },
    cpus: { boot_vcpus: spec.cpus, max_vcpus: spec.cpusMax ?? spec.cpus },
    memory: {
      size: spec.memory,
      shared: shares.length > 0,
      // ACPI: the method whose 128 MiB steps were measured on the real VMM (virtio-mem needs a guest driver).
      ...(spec.memoryHotplug ? { hotplug_size: spec.memoryHotplug, hotplug_method: 'Acpi' } : {}),
    },
    serial: { mode: 'Socket', socket: serialSocket },
    console: { mode: 'Off' },
    rng: { src: '/dev/urandom' },
  };
  if (spec.disks.length > 0)
    config.disks = spec.disks.map((d) => ({ path: d.path, readonly: d.readOnly, id: diskDeviceId(d.path) }));
  if (network) {
    config.net = [
      {
        tap: network.tap,
        mac: network.mac,
        num_queues: spec.network.queues * 2,
        queue_size: 256,
      },
    ];
  }
  if (shares.length > 0) {
    // Ids the hot-plug code (hotplug.ts) gives the same devices, so `vm disk rm` / `vm share rm` find them.
    config.fs = shares.map((s) => ({
      tag: s.tag,
      socket: s.socketPath,
      num_queues: 1,
      queue_size: 1024,
      id: shareDeviceId(s.tag),
    }));
  }
  return config;
}
