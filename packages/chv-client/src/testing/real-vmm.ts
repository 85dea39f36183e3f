import { existsSync } from 'node:fs';
import { hypervisorDeviceProblem } from '@my-hypervisor/host-utils';

/**
 * Why this host cannot run guests with KVM, or undefined when `/dev/kvm` opens read-write. Without it the real
 * cloud-hypervisor exits at start-up with "no supported hypervisor", before its API socket appears.
 */
export function kvmUnavailableReason(device = '/dev/kvm'): string | undefined {
  const problem = hypervisorDeviceProblem([device]);
  return problem && `${problem}, so cloud-hypervisor cannot create a VM on this host`;
}

/** The real cloud-hypervisor named by `MYHV_CLOUD_HYPERVISOR` (unset, empty or `simulator` means none). */
export function realVmmBinary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const binary = env.MYHV_CLOUD_HYPERVISOR;
  return binary && binary !== 'simulator' ? binary : undefined;
}

/**
 * Why no real cloud-hypervisor is on disk for the tests that need only the binary (its `--version`, its start-up
 * failure without KVM), or undefined: `MYHV_CLOUD_HYPERVISOR` must name a file that exists.
 */
export function realVmmMissingReason(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const binary = realVmmBinary(env);
  if (!binary) return 'MYHV_CLOUD_HYPERVISOR is not set';
  return existsSync(binary) ? undefined : `MYHV_CLOUD_HYPERVISOR=${binary} does not exist`;
}

/**
 * Why the suites that boot guests on the real binary must skip here, or undefined when they can run: the binary
 * must be named, exist, and find a usable `/dev/kvm`.
 */
export function realVmmSkipReason(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const missing = realVmmMissingReason(env);
  if (missing) return missing;
  const kvm = kvmUnavailableReason();
  return kvm ? `MYHV_CLOUD_HYPERVISOR is set but ${kvm}` : undefined;
}
