import { createHash } from 'node:crypto';
import { posix } from 'node:path';

// The VMM device ids of a VM's disks and shares: set at boot (vm-config.ts) and at hot-plug (hotplug.ts) alike,
// derived from what the device is, so they survive stop/start and `rm` can name them.

/** A disk's id: stable for its (normalised) path, which the spec keeps unique. */
export function diskDeviceId(path: string): string {
  return `disk-${createHash('sha256').update(posix.normalize(path)).digest('hex').slice(0, 10)}`;
}

/** A share's id: from its tag, which the spec keeps unique. */
export function shareDeviceId(tag: string): string {
  return `fs-${tag}`;
}
