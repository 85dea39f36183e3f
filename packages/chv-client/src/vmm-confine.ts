import { invalidArgument } from './errors.js';

/**
 * How a VMM started by root is confined before it runs: it joins its cgroups, gets a private `/dev/net/tun` in its
 * own mount namespace, then runs as `uid`/`gid` with no capabilities, no supplementary groups but `groups`, and
 * `no_new_privs` (util-linux `setpriv`). Every step is an `exec`, so the pid spawned is the VMM's.
 */
export interface VmmConfinement {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups, e.g. the group of `/dev/kvm`. Default none. */
  readonly groups?: readonly number[];
  /** The `cgroup.procs` files the process writes its pid into before it drops privileges (one per hierarchy). */
  readonly cgroupProcs?: readonly string[];
  /**
   * Give the process its own `/dev/net/tun` (a tmpfs on `/dev/net` in its mount namespace), so it can attach to
   * TAPs owned by `uid`/`gid` where the host's node is 0600 root. It costs a mount namespace and three more
   * programs; without it the chain is `setpriv` alone. Default false.
   */
  readonly tunDevice?: boolean;
}

/** A uid or gid a confined VMM may run as: not root, not the kernel's "no id" (-1). */
export const MAX_CONFINED_ID = 4_294_967_294;

const CGROUP_PROCS = /^\/[^\0\n]*\/cgroup\.procs$/;

/**
 * Runs as root between `unshare` and `setpriv`; arguments, not interpolation, carry every value:
 * `<count> <procs file>… <tun|-> setpriv… -- <vmm> <args>…`.
 */
const SCRIPT = [
  'set -e',
  'n=$1; shift',
  'while [ "$n" -gt 0 ]; do echo $$ > "$1"; shift; n=$((n - 1)); done',
  'if [ "$1" = tun ]; then mount -t tmpfs -o mode=0755,size=16k,nosuid,noexec myhv-dev /dev/net; mknod -m 666 /dev/net/tun c 10 200; fi',
  'shift',
  'exec "$@"',
].join('\n');

function checkId(value: number, field: string): void {
  if (!Number.isInteger(value) || value < 1 || value > MAX_CONFINED_ID) {
    throw invalidArgument(
      field,
      `must be an integer from 1 to ${MAX_CONFINED_ID} (never root), got ${value}`,
    );
  }
}

/** Validates `confine` (INVALID_ARGUMENT naming the field) before anything is spawned. */
export function validateConfinement(confine: VmmConfinement): void {
  checkId(confine.uid, 'confine.uid');
  checkId(confine.gid, 'confine.gid');
  for (const group of confine.groups ?? []) checkId(group, 'confine.groups');
  for (const file of confine.cgroupProcs ?? []) {
    if (!CGROUP_PROCS.test(file) || file.split('/').includes('..')) {
      throw invalidArgument(
        'confine.cgroupProcs',
        `${JSON.stringify(file)} is not an absolute cgroup.procs path`,
      );
    }
  }
}

/**
 * The command that runs `file argv…` confined: `setpriv` (drops to the ids, clears every capability set, sets
 * `no_new_privs`), after `ip netns exec` when it runs in a network namespace. With `tunDevice`, first `unshare
 * --mount` (a private mount namespace) and a root `sh` that joins the cgroups and makes the tun node there; without
 * it (the host's `/dev/net/tun` is usable by anyone, or the VM has no network) nothing runs before them, and
 * `joinAfterSpawn` lists the `cgroup.procs` files the spawner writes the pid into. Each step `exec`s the next.
 */
export function confineCommand(
  file: string,
  argv: readonly string[],
  confine: VmmConfinement,
  netns?: string,
): { file: string; argv: string[]; joinAfterSpawn: readonly string[] } {
  validateConfinement(confine);
  const procs = confine.cgroupProcs ?? [];
  const groups = confine.groups?.length ? [`--groups=${confine.groups.join(',')}`] : ['--clear-groups'];
  const dropped = [
    // After the cgroups are joined: `ip netns exec` mounts the namespace's own /sys, without /sys/fs/cgroup.
    ...(netns ? ['ip', 'netns', 'exec', netns] : []),
    'setpriv',
    `--reuid=${confine.uid}`,
    `--regid=${confine.gid}`,
    ...groups,
    '--no-new-privs',
    '--inh-caps=-all',
    '--bounding-set=-all',
    '--',
    file,
    ...argv,
  ];
  if (confine.tunDevice !== true) {
    return { file: dropped[0]!, argv: dropped.slice(1), joinAfterSpawn: procs };
  }
  return {
    file: 'unshare',
    argv: [
      '--mount',
      '--propagation',
      'private',
      '--',
      'sh',
      '-c',
      SCRIPT,
      'myhv-confine',
      String(procs.length),
      ...procs,
      'tun',
      ...dropped,
    ],
    joinAfterSpawn: [],
  };
}
