import { createHash } from 'node:crypto';
import { invalidArgument } from './errors.js';
import {
  MAX_INTERFACE_NAME_BYTES,
  validateHostname,
  validateInterfaceName,
  validateIPv4,
} from './validation.js';

/** The prefix of every TAP we name; `reconcile` treats interfaces with it as ours. */
export const DEFAULT_TAP_PREFIX = 'myhv';

function digest(vmId: string): Buffer {
  if (typeof vmId !== 'string' || vmId.length === 0)
    throw invalidArgument('vmId', 'must be a non-empty string');
  return createHash('sha256').update(vmId).digest();
}

/**
 * A TAP name derived from the VM id: `<prefix>` + hex of its SHA-256, filled to 15 bytes (`myhv` + 11 hex digits =
 * 44 bits). The same id always gives the same name, so a crashed create can find what it made.
 */
export function deriveTapName(vmId: string, prefix = DEFAULT_TAP_PREFIX): string {
  validateInterfaceName(prefix, 'prefix');
  const room = MAX_INTERFACE_NAME_BYTES - prefix.length;
  if (room < 6)
    throw invalidArgument('prefix', `${JSON.stringify(prefix)} leaves fewer than 6 characters for the hash`);
  return `${prefix}${digest(vmId).toString('hex').slice(0, room)}`;
}

/**
 * A locally administered unicast MAC derived from the VM id (46 bits of its SHA-256), stable across restarts so
 * the guest keeps its interface identity.
 */
export function deriveMac(vmId: string): string {
  const bytes = digest(`mac:${vmId}`).subarray(0, 6);
  bytes[0] = (bytes[0]! & 0xfc) | 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * The kernel command-line argument that configures the guest's first interface statically:
 * `ip=<guest>::<gateway>:<netmask>:<hostname>:<device>:off`. Cloud Hypervisor's `NetConfig.ip` is the host side of
 * the TAP, so this is how the guest learns its own address. Every field is validated (INVALID_ARGUMENT naming it)
 * since a space or `:` would add options to the guest kernel's command line.
 */
export function formatKernelIpArg({
  ipv4,
  gateway,
  netmask,
  hostname = '',
  device = 'eth0',
}: {
  ipv4: string;
  gateway: string;
  netmask: string;
  hostname?: string;
  device?: string;
}): string {
  validateIPv4(ipv4, 'ipv4');
  validateIPv4(gateway, 'gateway');
  validateIPv4(netmask, 'netmask');
  if (hostname !== '') validateHostname(hostname, 'hostname');
  validateInterfaceName(device, 'device');
  return `ip=${ipv4}::${gateway}:${netmask}:${hostname}:${device}:off`;
}
