import { NetOpsError, type TapOwner } from '@my-hypervisor/net-ops';
import { commandError } from './command-error.js';
import type { HostCommands } from './host-commands.js';

/**
 * The uid/gid a TAP is owned by, -1 each for none, from sysfs in `host`'s namespace (`ip netns exec` mounts that
 * namespace's sysfs). Not from `ip -details`: it prints a user's name instead of the id when the name is known.
 */
export async function readTapOwner(
  host: HostCommands,
  tap: string,
  signal: AbortSignal | undefined,
): Promise<TapOwner> {
  const outcome = await host.run(
    'cat',
    [`/sys/class/net/${tap}/owner`, `/sys/class/net/${tap}/group`],
    signal ? { signal } : {},
  );
  if (outcome.exitCode !== 0) throw commandError(host.failure(outcome));
  const [uid, gid] = outcome.stdout.split('\n').map((line) => Number(line.trim()));
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new NetOpsError('BACKEND_FAILURE', `sysfs gave no owner and group for ${tap}`, {
      details: { stdout: outcome.stdout },
    });
  }
  return { uid: uid!, gid: gid! };
}

export function sameOwner(a: TapOwner, b: TapOwner): boolean {
  return a.uid === b.uid && a.gid === b.gid;
}
