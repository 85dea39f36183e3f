import type { NetConfig, VmConfig } from '@my-hypervisor/chv-client';
import { formatGuestArgs, type GuestArgs, GuestImageError } from '@my-hypervisor/guest-image/core';
import type { VmNetworkAttachment } from '@my-hypervisor/net-ops';
import { diskDeviceId, shareDeviceId } from './device-ids.js';
import { invalidSpec } from './errors.js';
import { guestHostname, type VmSpec } from './spec.js';

export interface VmConfigInputs {
  readonly spec: VmSpec;
  readonly network?: VmNetworkAttachment;
  readonly shares: readonly { tag: string; socketPath: string }[];
  /** The VMM listens here for the serial relay (serial `Socket` mode). */
  readonly serialSocket: string;
  /**
   * Landlock for a confined VMM: besides the files of its config, it may open only these (its snapshot
   * directory). Omitted: no Landlock.
   */
  readonly landlockRules?: readonly { path: string; access: 'r' | 'rw' }[];
  /** The extra NICs' `net[]` entries (`nicNetConfigs`), after the first NIC. */
  readonly nics?: readonly NetConfig[];
}

/**
 * The guest kernel command line: the spec's, plus the guest's own address (Cloud Hypervisor never sets it), and
 * for a VM made from an image (`spec.image`: the guest runs our init) the `myhv.*` arguments that init reads.
 */
export function kernelCmdline(spec: VmSpec, network?: VmNetworkAttachment): string {
  const parts = [spec.cmdline.trim()];
  if (network) parts.push(network.kernelIpArg);
  // Our convention for guests that configure mycelium themselves: myhv.ipv6=<address>/<len>,<gateway>[,<route>…]
  if (network?.ipv6) {
    const { address, prefixLength, gateway, routes } = network.ipv6;
    parts.push(`myhv.ipv6=${[`${address}/${prefixLength}`, gateway, ...routes].join(',')}`);
  }
  if (spec.image !== undefined) parts.push(formatSpecGuestArgs(guestArgs(spec, network)));
  return parts.filter(Boolean).join(' ');
}

/**
 * What our init is told: the VM's IPv4 attachment (its gateway is also its DNS), its IPv6 one where it has one (a
 * mycelium VM: the address, and the node as the default IPv6 route, which covers mycelium's 400::/7), hostname,
 * mounts, command.
 */
export function guestArgs(spec: VmSpec, network?: VmNetworkAttachment): GuestArgs {
  const shares = spec.shares.flatMap((s) => (s.guestPath ? [{ tag: s.tag, path: s.guestPath }] : []));
  const ipv6 = network?.ipv6;
  return {
    ...(network
      ? {
          ip: { address: network.ipv4, prefixLength: network.prefixLength },
          gateway: network.gateway,
          dns: [network.gateway],
        }
      : {}),
    ...(ipv6
      ? { ip6: { address: ipv6.address, prefixLength: ipv6.prefixLength }, gateway6: ipv6.gateway }
      : {}),
    hostname: guestHostname(spec.name),
    ...(shares.length > 0 ? { shares } : {}),
    ...(spec.command !== undefined ? { command: spec.command } : {}),
  };
}

/** formatGuestArgs, its INVALID_ARGUMENT renamed to the spec field at fault (parseVmSpec checks these first). */
function formatSpecGuestArgs(args: GuestArgs): string {
  try {
    return formatGuestArgs(args);
  } catch (error) {
    if (!GuestImageError.isInstance(error) || error.code !== 'INVALID_ARGUMENT') throw error;
    const field =
      error.details.field === 'command' ? 'command' : error.details.field === 'shares' ? 'shares' : 'network';
    throw invalidSpec(field, error.message.replace(/^[^:]*: /, ''), error);
  }
}

/**
 * The `vm.create` body. The TAP, MAC and queue count go into `net[]`; the guest IP does not (`NetConfig.ip` is
 * the host side of the TAP). `memory.shared` is on whenever a share exists (vhost-user needs it). Serial goes to a
 * socket the VM's relay serves (it writes serial.log) and the console is off, so the VMM never grabs a terminal.
 */
export function buildVmConfig({
  spec,
  network,
  shares,
  serialSocket,
  landlockRules,
  nics = [],
}: VmConfigInputs): VmConfig {
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
      ...nics,
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
  if (landlockRules) {
    config.landlock_enable = true;
    config.landlock_rules = landlockRules.map((rule) => ({ path: rule.path, access: rule.access }));
  }
  return config;
}
