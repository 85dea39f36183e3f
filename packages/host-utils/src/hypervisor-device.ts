import { closeSync, constants, openSync } from 'node:fs';

/**
 * Why none of `devices` opens read-write, or undefined when one does: what cloud-hypervisor needs at start-up
 * (`/dev/kvm`, or `/dev/mshv` for builds with Microsoft's hypervisor). A missing alternative device is not
 * mentioned unless it is the first.
 */
export function hypervisorDeviceProblem(
  devices: readonly string[] = ['/dev/kvm', '/dev/mshv'],
): string | undefined {
  const problems: string[] = [];
  for (const [i, device] of devices.entries()) {
    try {
      closeSync(openSync(device, constants.O_RDWR));
      return undefined;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') problems.push(`${device} cannot be opened read-write (${code})`);
      else if (i === 0) problems.push(`${device} is missing`);
    }
  }
  return problems.join('; ');
}
