import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  constants,
  existsSync,
  promises as fs,
  lchownSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  type Stats,
  statSync,
  writeSync,
} from 'node:fs';
import { delimiter, dirname, resolve } from 'node:path';
import type { VmmConfinement } from '@my-hypervisor/chv-client';
import {
  type CgroupLayout,
  type CgroupLimits,
  createVmCgroup,
  detectCgroupLayout,
  joinCgroup,
  listVmCgroups,
  removeVmCgroup,
  unescapeMountField,
  type VmCgroup,
  vmCgroupFor,
  warmCgroupMoves,
} from './cgroups.js';
import { ensurePrivateDir } from './dir-trust.js';
import { invalidSpec, VmManagerError } from './errors.js';
import type { VmSpec } from './spec.js';
import type { VmRecord } from './state-store.js';

// Least privilege for VMMs (ADR 013): each confined VM gets its own uid/gid from a range, a cgroup with limits,
// and a VMM that runs as that uid with no capabilities. This module decides and prepares; chv-client's
// vmm-confine.ts builds the command that drops the privileges.

/** What a confined VMM with a TAP may read of sysfs under Landlock (see `prepare`). */
const SYSFS_NET_RULES = [
  { path: '/sys/class/net', access: 'r' },
  { path: '/sys/devices/virtual/net', access: 'r' },
] as const;

/** `auto`: confine every VMM when running as root on a host that can; `on`: never run one unconfined; `off`. */
export type ConfinementMode = 'auto' | 'on' | 'off';

/** How the manager confines VMMs. */
export interface ConfinementOptions {
  /** Default `auto`. */
  readonly mode?: ConfinementMode;
  /** First uid (and gid) of the per-VM range. Default 1 500 000 000: far above login users and subuid ranges. */
  readonly uidBase?: number;
  /** How many uids the range holds: at most this many confined VMs. Default 1 000 000. */
  readonly uidCount?: number;
  /**
   * Landlock in each VMM (Cloud Hypervisor's `landlock_enable`): it may open only the files of its config plus
   * its VM's snapshot and disk directories. Default true; a kernel without Landlock makes `vm.create` fail.
   */
  readonly landlock?: boolean;
  /**
   * Let each confined VMM use userfaultfd (a `/dev/userfaultfd` node of its own), so that a restore loads the
   * guest's memory on demand instead of copying it first (see `VmmOptions.restoreMemory`). It also lets a
   * compromised VMM handle kernel page faults, a known aid to kernel exploits, which is why hosts restrict
   * userfaultfd: default false. Needs `/dev/userfaultfd` (Linux 6.1+); INVALID_ARGUMENT naming
   * `options.confinement.userfaultfd` where the host has none.
   */
  readonly userfaultfd?: boolean;
}

/** A confined VM's identity and cgroup, in its record (`resources.confinement`). */
export interface ConfinementState {
  readonly uid: number;
  readonly gid: number;
  /** The cgroup as `/proc/PID/cgroup` shows it (`/myhv/<id>`); absent where the host has no cgroup to use. */
  readonly cgroup?: string;
  /**
   * The directories its running VMM's Landlock rules open (besides the files of its config): nothing else can be
   * hot-added or written by it until it restarts. Absent without Landlock.
   */
  readonly landlock?: readonly string[];
  /** Disk images given to the VM's uid, with the owner each goes back to when the VM is deleted. */
  readonly disks?: readonly { readonly path: string; readonly uid: number; readonly gid: number }[];
  /** Its running VMM may use userfaultfd (`ConfinementOptions.userfaultfd`): a restore loads memory on demand. */
  readonly userfaultfd?: boolean;
}

/** The limits a VM's cgroup gets: its spec's, else defaults from its size. */
export interface VmLimits {
  readonly cpus: number;
  readonly memoryBytes: number;
  readonly pids: number;
}

/** What a VMM needs besides the guest's memory: its own heap, device threads, virtiofsd. */
/** Under a VM's state directory: its snapshots (snapshots.ts), where a Landlocked VMM may write. */
export const SNAPSHOTS_DIR = 'snapshots';
/** Under a VM's state directory: where disks hot-added to a Landlocked VMM must be. */
export const DISKS_DIR = 'disks';

export const VMM_MEMORY_OVERHEAD = 256 * 1024 * 1024;
export const DEFAULT_PIDS_LIMIT = 512;
/** First uid (and gid) of the default per-VM range: far above login users and subordinate-id ranges. */
export const DEFAULT_UID_BASE = 1_500_000_000;
/** How many uids the default range holds: at most this many confined VMs per host. */
export const DEFAULT_UID_COUNT = 1_000_000;

/** The cgroup limits of `spec`: `limits.*`, else one CPU more than its most vCPUs, its memory plus 256 MiB, 512. */
export function vmLimits(spec: VmSpec): VmLimits {
  return {
    cpus: spec.limits?.cpus ?? (spec.cpusMax ?? spec.cpus) + 1,
    memoryBytes: spec.limits?.memory ?? spec.memory + (spec.memoryHotplug ?? 0) + VMM_MEMORY_OVERHEAD,
    pids: spec.limits?.pids ?? DEFAULT_PIDS_LIMIT,
  };
}

/** What this host offers for confinement, probed once per process. */
export interface ConfinementSupport {
  /** Why VMMs cannot be confined here; empty when they can. */
  readonly problems: readonly string[];
  /** Where the cgroups are; undefined when none is mounted (limits are then not enforced). */
  readonly cgroups: CgroupLayout | undefined;
  /** The group of /dev/kvm, which a confined VMM joins; undefined without /dev/kvm. */
  readonly kvmGid: number | undefined;
  /**
   * Whether a confined VMM needs its own tun node (a mount namespace and three more programs at start): /dev/net
   * exists but the host's /dev/net/tun is not read-write for everyone (most distributions make it 0666).
   */
  readonly tun: boolean;
  /** Landlock is listed in /sys/kernel/security/lsm; undefined when that file cannot be read. */
  readonly landlock: boolean | undefined;
}

const TOOLS = ['sh', 'unshare', 'setpriv', 'mount', 'mknod'] as const;

function onPath(tool: string): boolean {
  const dirs = `${process.env.PATH ?? ''}${delimiter}/usr/sbin${delimiter}/sbin${delimiter}/usr/bin${delimiter}/bin`;
  return dirs.split(delimiter).some((dir) => {
    if (!dir) return false;
    try {
      const stat = statSync(`${dir}/${tool}`);
      return stat.isFile() && (stat.mode & 0o111) !== 0;
    } catch {
      return false;
    }
  });
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

let support: ConfinementSupport | undefined;

/** Probes the host (root, util-linux tools, cgroups, /dev/kvm's group, Landlock); cached. */
export function confinementSupport(): ConfinementSupport {
  if (support) return support;
  const problems: string[] = [];
  if (process.geteuid?.() !== 0)
    problems.push('not running as root: only root can start a VMM as another user');
  const missing = TOOLS.filter((tool) => !onPath(tool));
  if (missing.length > 0) problems.push(`missing ${missing.join(', ')} (util-linux, coreutils)`);
  const kvm = statOrUndefined('/dev/kvm');
  let kvmGid: number | undefined;
  if (kvm) {
    if (kvm.gid !== 0 && (kvm.mode & 0o060) === 0o060) kvmGid = kvm.gid;
    else if ((kvm.mode & 0o006) !== 0o006) {
      problems.push(
        '/dev/kvm is not read-write for a group other than root (or for everyone), so a VMM running as its own ' +
          'user could not open it: give it a group, e.g. `chgrp kvm /dev/kvm && chmod 660 /dev/kvm`',
      );
    }
  }
  let cgroups: CgroupLayout | undefined;
  try {
    cgroups = detectCgroupLayout();
  } catch {
    cgroups = undefined;
  }
  let landlock: boolean | undefined;
  try {
    landlock = readFileSync('/sys/kernel/security/lsm', 'utf8').split(',').includes('landlock');
  } catch {
    landlock = undefined;
  }
  const hostTun = statOrUndefined('/dev/net/tun');
  const tun =
    (statOrUndefined('/dev/net')?.isDirectory() ?? false) &&
    (hostTun === undefined || (hostTun.mode & 0o006) !== 0o006);
  support = { problems, cgroups, kvmGid, tun, landlock };
  return support;
}

/** For tests: forget the probed support, or set it. */
export function setConfinementSupport(value: ConfinementSupport | undefined): void {
  support = value;
}

/** True for a uid of the default per-VM range: what it owns is a confined VMM's (for `findUnsafePermissions`). */
export function ownsVmmUid(uid: number): boolean {
  return uid >= DEFAULT_UID_BASE && uid < DEFAULT_UID_BASE + DEFAULT_UID_COUNT;
}

/** The cgroup parent of a state directory's VMs: `myhv` for the default one, else `myhv-<6 hex>` (no collisions). */
export function cgroupParentFor(stateDir: string): string {
  const dir = resolve(stateDir);
  if (dir === '/var/lib/myhv') return 'myhv';
  return `myhv-${createHash('sha256').update(dir).digest('hex').slice(0, 6)}`;
}

/** Whether every directory on the way to `path` lets others through, and `path` gives others `bits` (4 r, 2 w). */
export function othersCan(path: string, bits: number): string | undefined {
  let real: string;
  try {
    real = resolve(path);
    for (let dir = dirname(real); ; dir = dirname(dir)) {
      const stat = lstatSync(dir);
      if (!stat.isSymbolicLink() && (stat.mode & 0o001) === 0)
        return `${dir} (mode ${(stat.mode & 0o777).toString(8)}) does not let other users through`;
      if (dir === dirname(dir)) break;
    }
    const stat = statSync(real);
    if ((stat.mode & bits) !== bits) {
      const wanted = ['', 'x', 'w', 'wx', 'r', 'rx', 'rw', 'rwx'][bits & 7];
      return `${real} (mode ${(stat.mode & 0o777).toString(8)}) does not give other users ${wanted}`;
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? undefined : `${path}: ${code ?? String(error)}`;
  }
  return undefined;
}

/**
 * Whether device nodes under `path` can be opened: the mount it is on (the last one mounted over the longest
 * mount point above it, from `/proc/self/mountinfo`) is not `nodev`.
 */
export function allowsDeviceNodes(path: string, mountinfo?: string): boolean {
  const target = realpathSync(path);
  let best: { point: string; options: string[] } | undefined;
  for (const line of (mountinfo ?? readFileSync('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 6) continue;
    const point = unescapeMountField(fields[4]!);
    const under = point === '/' || target === point || target.startsWith(`${point}/`);
    if (under && (!best || point.length >= best.point.length))
      best = { point, options: fields[5]!.split(',') };
  }
  return best !== undefined && !best.options.includes('nodev');
}

/** A VM's confinement, decided by the manager's options and the host, prepared before its VMM starts. */
export class Confiner {
  readonly #stateDir: string;
  readonly #runDir: string;
  readonly #options: ConfinementOptions;
  readonly #uidBase: number;
  readonly #uidCount: number;
  readonly #parent: string;

  readonly #setsTapOwner: (spec: VmSpec) => boolean;
  /** The prepared tun node could not be made here (see `#tunNode`): VMMs get one on a tmpfs, as before. */
  #tunNodeFailed = false;

  /**
   * `setsTapOwner` says whether the network a VM joins can make its TAP for an unprivileged VMM; `auto` leaves
   * VMs on other networks unconfined, `on` refuses them.
   */
  constructor(
    stateDir: string,
    runDir: string,
    options: ConfinementOptions = {},
    setsTapOwner: (spec: VmSpec) => boolean = () => true,
  ) {
    this.#setsTapOwner = setsTapOwner;
    this.#stateDir = resolve(stateDir);
    this.#runDir = resolve(runDir);
    this.#options = options;
    this.#uidBase = options.uidBase ?? DEFAULT_UID_BASE;
    this.#uidCount = options.uidCount ?? DEFAULT_UID_COUNT;
    const mode = options.mode ?? 'auto';
    if (!['auto', 'on', 'off'].includes(mode))
      throw new TypeError(`confinement.mode must be auto, on or off, not ${String(mode)}`);
    if (
      !Number.isInteger(this.#uidBase) ||
      !Number.isInteger(this.#uidCount) ||
      this.#uidBase < 1 ||
      this.#uidCount < 1 ||
      this.#uidBase + this.#uidCount > 4_294_967_295
    ) {
      throw new TypeError('confinement.uidBase/uidCount must give a range of uids within 1..4294967294');
    }
    this.#parent = cgroupParentFor(stateDir);
    if (options.userfaultfd !== undefined && typeof options.userfaultfd !== 'boolean')
      throw new TypeError('confinement.userfaultfd must be a boolean');
    // Asked for explicitly: a host that cannot give it is refused up front, not at the first start.
    if (options.userfaultfd && !statOrUndefined('/dev/userfaultfd')?.isCharacterDevice()) {
      throw new VmManagerError(
        'INVALID_ARGUMENT',
        'confinement.userfaultfd is on, but this host has no /dev/userfaultfd (Linux 6.1 or later has it)',
        { details: { field: 'options.confinement.userfaultfd' } },
      );
    }
  }

  /** The cgroup parent of this manager's VMs (`myhv` or `myhv-<6 hex>`). */
  get cgroupParent(): string {
    return this.#parent;
  }

  /** True when a uid lies in the per-VM range (files such uids own are VMMs' own). */
  ownsUid(uid: number): boolean {
    return uid >= this.#uidBase && uid < this.#uidBase + this.#uidCount;
  }

  /**
   * Whether the VMM of a VM with `spec` (any VM when omitted) starts confined now. `on` throws INVALID_ARGUMENT
   * where it cannot be: a host that cannot confine, a network that cannot give it its TAP.
   */
  enabled(spec?: VmSpec): boolean {
    const mode = this.#options.mode ?? 'auto';
    if (mode === 'off') return false;
    const { problems } = confinementSupport();
    if (problems.length > 0) {
      if (mode === 'auto') return false;
      throw new VmManagerError(
        'INVALID_ARGUMENT',
        `confinement is on, but this host cannot confine VMMs: ${problems.join('; ')}`,
        { details: { field: 'options.confinement.mode', problems } },
      );
    }
    if (spec && !this.#setsTapOwner(spec)) {
      if (mode === 'auto') return false;
      throw invalidSpec(
        'network',
        "this network's backend cannot make a TAP an unprivileged VMM can open; confinement is on, so it is refused",
      );
    }
    return true;
  }

  /** Whether the VM's VMM gets Landlock (confined and not turned off). */
  landlock(): boolean {
    return this.#options.landlock !== false;
  }

  /**
   * Before any work: what a confined VMM must open is reachable by a user of its own (the kernel and initramfs
   * readable by others, every directory on the way to them and to the disks passable), and its network can
   * give it its TAP. INVALID_ARGUMENT naming the field otherwise.
   */
  async checkSpec(spec: VmSpec): Promise<void> {
    if (!this.enabled(spec)) return;
    const check = async (field: string, path: string | undefined, bits: number) => {
      if (path === undefined) return;
      // Our own directories (an image from the store) are opened to it: o+x only.
      if (this.#ours(path) && existsSync(path)) await this.letThrough(dirname(path), field);
      const problem = othersCan(path, bits);
      if (problem) {
        throw invalidSpec(
          field,
          `the VM's VMM runs as a user of its own and cannot open ${path}: ${problem}. ` +
            'Make it readable (chmod o+r, and o+x on its directories) or turn confinement off',
        );
      }
    };
    await check('kernel', spec.kernel, 0o004);
    await check('initramfs', spec.initramfs, 0o004);
    // Disks are given to the VM's user at start; only the way to them must be open.
    for (const [i, disk] of spec.disks.entries()) await check(`disks[${i}].path`, dirname(disk.path), 0o001);
  }

  /** The directory of `path` lies in the state or run directory. */
  #ours(path: string): boolean {
    const target = resolve(path);
    return [this.#stateDir, this.#runDir].some((root) => target.startsWith(`${root}/`));
  }

  /**
   * Gives the VM (with its uid, `assign`) its cgroup with limits, a run directory it owns, its disks and shares'
   * sockets; returns how chv-client runs its VMM. What it makes is recorded first (`save`).
   */
  /**
   * Gives the VM its uid (kept in its record, which is saved), before its TAP is made for that uid. Returns false
   * when VMMs are not confined.
   */
  async assign(record: VmRecord, save: () => Promise<void>): Promise<boolean> {
    if (!this.enabled(record.spec)) return false;
    const uid = await this.#allocateUid(record);
    if (record.resources.confinement?.uid === uid) return true;
    record.resources.confinement = { ...record.resources.confinement, uid, gid: uid };
    await save();
    return true;
  }

  async prepare(
    record: VmRecord,
    paths: { readonly dir: string; readonly runDir: string },
    save: () => Promise<void>,
    signal?: AbortSignal,
  ): Promise<
    | {
        confine: VmmConfinement;
        state: ConfinementState;
        landlockRules?: { path: string; access: 'r' | 'rw' }[];
      }
    | undefined
  > {
    if (!this.enabled(record.spec)) return undefined;
    const host = confinementSupport();
    // The VMM is moved into its cgroups as it starts, some milliseconds from now: the kernel's wait for that
    // begins here, beside the work below (cgroups.ts).
    if (host.cgroups) warmCgroupMoves(host.cgroups);
    await this.assign(record, save);
    let state: ConfinementState = record.resources.confinement!;
    const { uid } = state;
    let cgroup: VmCgroup | undefined;
    if (host.cgroups) {
      const limits = vmLimits(record.spec);
      const wanted: CgroupLimits = { cpus: limits.cpus, memoryBytes: limits.memoryBytes, pids: limits.pids };
      cgroup = await createVmCgroup(host.cgroups, this.#parent, record.id, wanted, signal ? { signal } : {});
      state = { ...state, cgroup: cgroup.display };
      record.resources.confinement = state;
    }
    // The VMM makes its API and serial sockets in its own directory; the way there lets it through, no more.
    // Synchronous, like the cgroup writes: metadata changes that never wait for a disk, on the path of every start.
    chmodSync(this.#runDir, 0o711);
    chownSync(paths.runDir, uid, uid);
    await this.#giveDisks(record, uid, save);
    state = record.resources.confinement!;
    for (const share of record.resources.shares) await this.admitShare(record, share.record);
    // Landlock rules name paths that must exist (and be reachable) when the VMM applies them.
    let landlockRules: { path: string; access: 'r' | 'rw' }[] | undefined;
    // Where the kernel says it has no Landlock, the VMM would refuse the config: confined without it.
    if (this.landlock() && host.landlock !== false) {
      landlockRules = [];
      for (const [name, what] of [
        [SNAPSHOTS_DIR, 'the snapshot directory'],
        [DISKS_DIR, 'the hot-plug disk directory'],
      ] as const) {
        const dir = `${paths.dir}/${name}`;
        ensurePrivateDir(dir, what);
        await this.letThrough(dir, name);
        landlockRules.push({ path: dir, access: 'rw' });
      }
      state = { ...state, landlock: landlockRules.map((rule) => rule.path) };
      // Reading sysfs, which Landlock would refuse too: cloud-hypervisor (v53) reads its TAP's flags from
      // /sys/class/net/<tap>/tun_flags, a link into /sys/devices/virtual/net. Read-only, and not a path it may open
      // for the guest (not in `state.landlock`).
      if (record.resources.network) landlockRules.push(...SYSFS_NET_RULES);
    } else {
      const { landlock: _none, ...rest } = state;
      state = rest;
    }
    // The VMM gets a userfaultfd node when asked for; a grant recorded by an earlier start is dropped otherwise.
    const { userfaultfd: _was, ...withoutUffd } = state;
    state = this.#options.userfaultfd ? { ...withoutUffd, userfaultfd: true } : withoutUffd;
    record.resources.confinement = state;
    return {
      state,
      ...(landlockRules ? { landlockRules } : {}),
      confine: this.#confine(record, state, cgroup),
    };
  }

  /** How the VMM of `record`, confined as `state` says, is run: its user, groups, cgroup and devices. */
  #confine(record: VmRecord, state: ConfinementState, cgroup: VmCgroup | undefined): VmmConfinement {
    const host = confinementSupport();
    // A VM without a network opens no TAP.
    const tun = host.tun && record.spec.network.enabled;
    return {
      uid: state.uid,
      gid: state.uid,
      ...(host.kvmGid !== undefined ? { groups: [host.kvmGid] } : {}),
      ...(cgroup ? { cgroupProcs: cgroup.procsFiles } : {}),
      tunDevice: tun,
      ...(tun && !state.userfaultfd ? this.#tunNodeOption() : {}),
      ...(state.userfaultfd ? { userfaultfd: true } : {}),
    };
  }

  /**
   * How a second VMM of a VM whose VMM runs confined now (a standby, standby.ts) runs: as the same user, in the same
   * cgroup, with the same devices, its own directory `runDir` made its user's. Nothing in the record changes: the
   * VM's uid, cgroup and grants are those its running VMM got from `prepare`. Undefined for a VM not confined.
   */
  standby(record: VmRecord, runDir: string): VmmConfinement | undefined {
    const state = record.resources.confinement;
    if (!state) return undefined;
    const host = confinementSupport();
    const cgroup = this.cgroupOf(record);
    if (host.cgroups && cgroup) warmCgroupMoves(host.cgroups);
    chownSync(runDir, state.uid, state.uid);
    return this.#confine(record, state, cgroup);
  }

  /**
   * Lets the VM's user through `dir` and the directories above it inside the state or run directory (o+x, never
   * r or w), so its VMM can reach its snapshots and share sockets. A directory outside them must already let it
   * through (INVALID_ARGUMENT naming `field` otherwise).
   */
  async letThrough(dir: string, field: string): Promise<void> {
    const target = resolve(dir);
    const ours = [this.#stateDir, this.#runDir].find(
      (root) => target === root || target.startsWith(`${root}/`),
    );
    const inside = ours !== undefined;
    const top = ours ?? target;
    for (let at = target; ; at = dirname(at)) {
      const stat = statSync(at);
      if ((stat.mode & 0o011) !== 0o011) {
        if (!inside) {
          throw invalidSpec(
            field,
            `${at} (mode ${(stat.mode & 0o777).toString(8)}) does not let the VM's VMM (a user of its own) through`,
          );
        }
        chmodSync(at, (stat.mode & 0o7777) | 0o011);
      }
      if (at === top) break;
    }
    const problem = othersCan(top, 0);
    if (problem) throw invalidSpec(field, `the VM's VMM (a user of its own) cannot reach ${dir}: ${problem}`);
  }

  /** Hands a new snapshot directory to the VM's user while its VMM writes the snapshot. */
  async lend(record: VmRecord, dir: string): Promise<void> {
    const state = record.resources.confinement;
    if (state) await fs.chown(dir, state.uid, state.gid);
  }

  /**
   * Takes a written snapshot back: root owns it, the VM's group may read it (a confined VMM restores from it)
   * and nobody else; nothing in it stays writable by the VMM.
   */
  async takeBack(record: VmRecord, dir: string): Promise<void> {
    const state = record.resources.confinement;
    if (!state) return;
    // In this thread: metadata changes to a handful of files, on the way to every restore of a confined VM.
    const walk = (path: string): void => {
      const stat = lstatSync(path);
      if (stat.isSymbolicLink()) {
        rmSync(path);
        return;
      }
      lchownSync(path, 0, state.gid);
      chmodSync(path, stat.isDirectory() ? 0o750 : 0o640);
      if (stat.isDirectory()) for (const name of readdirSync(path)) walk(`${path}/${name}`);
    };
    walk(dir);
  }

  /**
   * A share's virtiofsd, started as root, made usable by the VM's confined VMM: the socket it connects to is its
   * user's, and virtiofsd joins the VM's cgroup (its limits cover both).
   */
  async admitShare(record: VmRecord, shareRecord: unknown): Promise<void> {
    const state = record.resources.confinement;
    const share = shareRecord as { socketPath?: string; pid?: number } | undefined;
    if (!state || !share?.socketPath) return;
    await this.letThrough(dirname(share.socketPath), 'shares');
    await fs.chown(share.socketPath, state.uid, state.gid);
    const cgroup = this.cgroupOf(record);
    // A virtiofsd that already exited fails its VMM's connect, which reports it.
    if (cgroup && share.pid) await joinCgroup(cgroup, share.pid).catch(() => undefined);
  }

  /**
   * Whether the VM's running VMM may open `path` under its Landlock rules (always, without Landlock): only what
   * lies in one of its rule directories, besides the files it was booted with.
   */
  landlockAllows(record: VmRecord, path: string): boolean {
    const rules = record.resources.confinement?.landlock;
    if (!rules) return true;
    const target = resolve(path);
    return rules.some((rule) => target === rule || target.startsWith(`${rule}/`));
  }

  /**
   * A disk hot-added to a running confined VM: under Landlock it must be in the VM's disk directory; its
   * directory must let the VMM through; the image is given to it. INVALID_ARGUMENT naming `field` otherwise.
   */
  async admitDisk(record: VmRecord, path: string, field: string, save: () => Promise<void>): Promise<void> {
    const state = record.resources.confinement;
    if (!state) return;
    if (!this.landlockAllows(record, path)) {
      throw invalidSpec(
        field,
        `${record.name}'s VMM runs under Landlock and may open no new file outside ${state.landlock!.join(' and ')}: ` +
          `put the disk in ${state.landlock!.find((rule) => rule.endsWith(`/${DISKS_DIR}`))}, or stop the VM, add it, start it`,
      );
    }
    const problem = othersCan(dirname(path), 0o001);
    if (problem)
      throw invalidSpec(field, `the VM's VMM (a user of its own) cannot reach ${path}: ${problem}`);
    await giveDisk(record, path, state.uid, save);
  }

  /** The VM's cgroup, where it has one (for stats and removal). */
  cgroupOf(record: VmRecord): VmCgroup | undefined {
    const layout = confinementSupport().cgroups;
    if (!layout || !record.resources.confinement?.cgroup) return undefined;
    return vmCgroupFor(layout, this.#parent, record.id);
  }

  /** On delete: kills what is left in the cgroup and removes it, gives the disks back, frees the uid. */
  async release(record: VmRecord): Promise<void> {
    const state = record.resources.confinement;
    if (!state) return;
    const layout = confinementSupport().cgroups;
    if (layout) await removeVmCgroup({ layout, parent: this.#parent, name: record.id });
    for (const disk of state.disks ?? []) {
      await fs.chown(disk.path, disk.uid, disk.gid).catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      });
    }
    const marker = this.#uidFile(state.uid);
    if ((await fs.readFile(marker, 'utf8').catch(() => '')).trim() === record.id)
      await fs.rm(marker, { force: true });
    delete record.resources.confinement;
  }

  /** Reconcile: cgroups and uids of VMs that no longer exist (ids are 12 hex digits, so nothing else matches). */
  async sweep(liveIds: ReadonlySet<string>): Promise<{ cgroups: string[]; uids: number[] }> {
    const removed = { cgroups: [] as string[], uids: [] as number[] };
    const layout = confinementSupport().cgroups;
    if (layout) {
      for (const name of await listVmCgroups(layout, this.#parent).catch(() => [])) {
        if (!/^[0-9a-f]{12}$/.test(name) || liveIds.has(name)) continue;
        await removeVmCgroup({ layout, parent: this.#parent, name });
        removed.cgroups.push(name);
      }
    }
    const dir = this.#uidDir();
    for (const entry of await fs.readdir(dir).catch(() => [] as string[])) {
      if (!/^\d+$/.test(entry)) continue;
      const owner = (await fs.readFile(`${dir}/${entry}`, 'utf8').catch(() => '')).trim();
      if (liveIds.has(owner)) continue;
      await fs.rm(`${dir}/${entry}`, { force: true });
      removed.uids.push(Number(entry));
    }
    return removed;
  }

  /**
   * The node a confined VMM gets bound over `/dev/net/tun` (`VmmConfinement.tunNode`: one program fewer on every
   * start than a tmpfs with a node made on it): `<stateDir>/confinement/dev/tun`, 10:200 like the host's, 0666, in
   * a directory only root can enter; made once with `mknod` and checked (a stat) at every start. None where the
   * state directory's file system refuses device nodes (`nodev`) or `mknod` fails: the VMM then gets its node on a
   * tmpfs, as before.
   */
  #tunNodeOption(): { tunNode?: string } {
    const dir = `${this.#stateDir}/confinement/dev`;
    const node = `${dir}/tun`;
    const tunRdev = statSync('/dev/net/tun', { throwIfNoEntry: false })?.rdev;
    const usable = () => {
      const stat = lstatSync(node, { throwIfNoEntry: false });
      return (
        stat?.isCharacterDevice() === true &&
        stat.rdev === tunRdev &&
        (stat.mode & 0o777) === 0o666 &&
        stat.uid === 0
      );
    };
    if (usable()) return { tunNode: node };
    if (this.#tunNodeFailed || tunRdev === undefined) return {};
    try {
      ensurePrivateDir(dir, 'the confinement device directory');
      if (allowsDeviceNodes(dir)) {
        rmSync(node, { force: true });
        // Linux's dev_t: major in bits 8–19, minor in bits 0–7 and 20–31.
        const major = (tunRdev >> 8) & 0xfff;
        const minor = (tunRdev & 0xff) | ((tunRdev >> 12) & 0xfff00);
        execFileSync('mknod', ['-m', '666', node, 'c', String(major), String(minor)], { stdio: 'ignore' });
        if (usable()) return { tunNode: node };
      }
    } catch {
      // Made on a tmpfs instead (below).
    }
    this.#tunNodeFailed = true;
    return {};
  }

  #uidDir(): string {
    return `${this.#stateDir}/confinement/uids`;
  }

  #uidFile(uid: number): string {
    return `${this.#uidDir()}/${uid}`;
  }

  /**
   * The VM's uid: the one its record holds (its marker re-made if lost), else the first free one from a slot
   * derived from its id. A marker file made with O_EXCL claims a uid, so two processes never share one.
   */
  async #allocateUid(record: VmRecord): Promise<number> {
    ensurePrivateDir(this.#uidDir(), 'the uid reservations directory');
    const held = record.resources.confinement?.uid;
    if (held !== undefined && this.ownsUid(held) && (await this.#claim(held, record.id))) return held;
    const start = Number.parseInt(record.id.slice(0, 8), 16) % this.#uidCount;
    for (let i = 0; i < this.#uidCount; i++) {
      const uid = this.#uidBase + ((start + i) % this.#uidCount);
      if (await this.#claim(uid, record.id)) return uid;
    }
    throw new VmManagerError('EXHAUSTED', `every uid of the confinement range is taken (${this.#uidCount})`, {
      details: { vm: record.name, step: 'confinement' },
    });
  }

  async #claim(uid: number, id: string): Promise<boolean> {
    const file = this.#uidFile(uid);
    // Small local files, read and made in this thread: most claims are of the uid a VM already holds (every start).
    const holder = () => {
      try {
        return readFileSync(file, 'utf8').trim();
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
    };
    const held = holder();
    if (held !== undefined) return held === id;
    try {
      const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        writeSync(fd, `${id}\n`);
      } finally {
        closeSync(fd);
      }
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      return holder() === id;
    }
  }

  /** Each disk is given to the VM's uid; the first owner seen is kept to give it back on delete. */
  async #giveDisks(record: VmRecord, uid: number, save: () => Promise<void>): Promise<void> {
    for (const disk of record.spec.disks) await giveDisk(record, disk.path, uid, save);
  }
}

/**
 * Gives one disk image to the VM's uid (read-write for it alone, as Cloud Hypervisor opens it), recording its
 * owner first so that delete gives it back even after a crash.
 */
export async function giveDisk(
  record: VmRecord,
  path: string,
  uid: number,
  save: () => Promise<void>,
): Promise<void> {
  const state = record.resources.confinement!;
  const stat = await fs.stat(path);
  if (stat.uid === uid && stat.gid === uid) return;
  if (!(state.disks ?? []).some((g) => g.path === path)) {
    record.resources.confinement = {
      ...state,
      disks: [...(state.disks ?? []), { path, uid: stat.uid, gid: stat.gid }],
    };
    await save();
  }
  await fs.chown(path, uid, uid);
}
