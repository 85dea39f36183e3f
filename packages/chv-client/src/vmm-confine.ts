import { invalidArgument } from './errors.js';

/**
 * How a VMM started by root is confined: it gets a private `/dev/net/tun` in its own mount namespace, then runs as
 * `uid`/`gid` with no capabilities, no supplementary groups but `groups`, and `no_new_privs` (util-linux
 * `setpriv`), and is put into its cgroups as it starts. Every step is an `exec`, so the pid spawned is the VMM's.
 */
export interface VmmConfinement {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups, e.g. the group of `/dev/kvm`. Default none. */
  readonly groups?: readonly number[];
  /**
   * The `cgroup.procs` files its pid is written into (one per hierarchy): while it starts, and before `spawn`
   * resolves, so no guest runs outside them.
   */
  readonly cgroupProcs?: readonly string[];
  /**
   * Give the process its own `/dev/net/tun` (a tmpfs on `/dev/net` in its mount namespace), so it can attach to
   * TAPs owned by `uid`/`gid` where the host's node is 0600 root. It costs a mount namespace and three more
   * programs; without it the chain is `setpriv` alone. Default false.
   */
  readonly tunDevice?: boolean;
  /**
   * With `tunDevice` (and without `userfaultfd`): a character device 10:200 (`/dev/net/tun`'s numbers), mode 0666,
   * in a directory only root can reach, which the chain bind-mounts over `/dev/net/tun` in the mount namespace
   * instead of mounting a tmpfs and making a node there: one program fewer on every start. It must be on a file
   * system that allows device nodes (not mounted `nodev`). An absolute path.
   */
  readonly tunNode?: string;
  /**
   * Give the process `/dev/userfaultfd` (a node bound over the host's in its mount namespace), which is how an
   * unprivileged cloud-hypervisor gets the userfaultfd an on-demand restore needs where
   * `vm.unprivileged_userfaultfd` is 0. It covers kernel-mode faults too, a known aid to kernel exploits, which is
   * why hosts restrict it: off by default. The host must have `/dev/userfaultfd` (Linux 6.1+). Like `tunDevice` it
   * costs the mount namespace (and the tun node comes with it), plus two programs.
   */
  readonly userfaultfd?: boolean;
}

/** A uid or gid a confined VMM may run as: not root, not the kernel's "no id" (-1). */
export const MAX_CONFINED_ID = 4_294_967_294;

const CGROUP_PROCS = /^\/[^\0\n]*\/cgroup\.procs$/;

/**
 * Runs as root between `unshare` and `setpriv`, in the private mount namespace: makes the tun node (and, with
 * `userfaultfd` as its first argument, a userfaultfd node bound over `/dev/userfaultfd`), then execs the rest of its
 * arguments (`setpriv… -- <vmm> <args>…`; arguments, not interpolation, carry every value).
 */
const SCRIPT = [
  'set -e',
  'mount -t tmpfs -o mode=0755,size=16k,nosuid,noexec myhv-dev /dev/net',
  'mknod -m 666 /dev/net/tun c 10 200',
  'if [ "$1" = userfaultfd ]; then mknod -m 666 /dev/net/userfaultfd c 10 257; mount --bind /dev/net/userfaultfd /dev/userfaultfd; fi',
  'shift',
  'exec "$@"',
].join('\n');

/** Like SCRIPT, with a prepared node (its first argument) bound over the host's `/dev/net/tun`. */
const BIND_SCRIPT = ['set -e', 'mount --bind "$1" /dev/net/tun', 'shift', 'exec "$@"'].join('\n');

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
  if (confine.tunNode !== undefined && !/^\/[^\0\n]*$/.test(confine.tunNode)) {
    throw invalidArgument('confine.tunNode', `${JSON.stringify(confine.tunNode)} is not an absolute path`);
  }
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
 * `no_new_privs`), after `ip netns exec` when it runs in a network namespace. With `tunDevice` or `userfaultfd`,
 * first `unshare --mount` (a private mount namespace) and a root `sh` that makes the nodes there (or binds `tunNode`
 * over the host's tun node); without (the host's `/dev/net/tun` is usable by anyone, or the VM has no network)
 * nothing runs before them. Each step `exec`s the next, so the pid stays the VMM's: `joinAfterSpawn` lists the
 * `cgroup.procs` files the spawner writes it into, while the process starts (moving a process between cgroups waits
 * for an RCU grace period, 15 ms on some hosts: not on the way to readiness).
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
  if (confine.tunDevice !== true && confine.userfaultfd !== true) {
    return { file: dropped[0]!, argv: dropped.slice(1), joinAfterSpawn: procs };
  }
  // A prepared node is bound in; without one (or with userfaultfd, whose node it also makes) the script makes nodes.
  const [script, arg] =
    confine.tunNode !== undefined && confine.userfaultfd !== true
      ? [BIND_SCRIPT, confine.tunNode]
      : [SCRIPT, confine.userfaultfd === true ? 'userfaultfd' : '-'];
  return {
    file: 'unshare',
    argv: ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'myhv-confine', arg, ...dropped],
    joinAfterSpawn: procs,
  };
}
