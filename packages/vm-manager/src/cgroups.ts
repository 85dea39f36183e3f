import {
  type Dirent,
  existsSync,
  mkdirSync,
  readFileSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { throwIfAborted, VmManagerError } from './errors.js';

/** The controllers a VM's limits use. */
export type CgroupController = 'cpu' | 'memory' | 'pids';

/**
 * Where this host mounts cgroups. `v2`: one unified hierarchy at `root`; `available` lists which of cpu, memory
 * and pids its `cgroup.controllers` offers. `v1`/`hybrid`: one mount per v1 controller (cpu and cpuacct may be
 * separate mounts or one), `hybrid` also has a cgroup2 mount (`unified`) that holds no useful controller but
 * gives `cgroup.kill` and a membership list.
 */
export type CgroupLayout =
  | { readonly kind: 'v2'; readonly root: string; readonly available: readonly CgroupController[] }
  | {
      readonly kind: 'hybrid' | 'v1';
      readonly unified?: string;
      readonly controllers: {
        readonly cpu?: string;
        readonly cpuacct?: string;
        readonly memory?: string;
        readonly pids?: string;
      };
    };

/** Limits of one VM's cgroup. An unset limit is written as unlimited ("max" / -1). */
export interface CgroupLimits {
  /** CPU time in CPUs, e.g. 1.5 = 150 ms per 100 ms period. At least 0.01. */
  readonly cpus?: number;
  /** Memory (and, where the host offers it, memory + swap) in bytes. */
  readonly memoryBytes?: number;
  /** Maximum number of processes and threads. */
  readonly pids?: number;
}

/** One VM's cgroup: its directories in every hierarchy and which limits the kernel enforces. */
export interface VmCgroup {
  readonly layout: CgroupLayout;
  readonly parent: string;
  readonly name: string;
  /** Every directory of this cgroup (one per hierarchy), deduplicated. */
  readonly paths: readonly string[];
  /** Every `cgroup.procs` a process writes its pid into to join (see `joinCgroup`). */
  readonly procsFiles: readonly string[];
  /** The cgroup path as `/proc/PID/cgroup` shows it: `/<parent>/<name>`. */
  readonly display: string;
  /** Per limit: true when its controller is active for this cgroup, so the limit (or "unlimited") holds. */
  readonly enforced: { readonly cpus: boolean; readonly memory: boolean; readonly pids: boolean };
  /** The directory per hierarchy, for reading usage; `unified` is the v2 root's or the hybrid cgroup2 one. */
  readonly dirs: {
    readonly unified?: string;
    readonly cpu?: string;
    readonly cpuacct?: string;
    readonly memory?: string;
    readonly pids?: string;
  };
}

/** What `readCgroupUsage` found; a field is undefined when its file is missing or the value is unlimited. */
export interface CgroupUsage {
  memoryBytes?: number;
  memoryLimitBytes?: number;
  cpuUsageUsec?: number;
  cpus?: number;
  pids?: number;
  pidsLimit?: number;
}

const CPU_PERIOD_US = 100_000;
const MIN_CPU_QUOTA_US = 1_000;
const SEGMENT = /^[A-Za-z0-9_.-]+$/;
const KILL_WAIT_MS = 2_000;
const KILL_POLL_MS = 25;
// v1 reports "no limit" as PAGE_COUNTER_MAX pages in bytes (9223372036854771712 with 4 KiB pages).
const V1_UNLIMITED_FROM = 2 ** 60;
const ALL_CONTROLLERS: readonly CgroupController[] = ['cpu', 'memory', 'pids'];

type Options = { signal?: AbortSignal };

/**
 * The cgroup layout in `mountsText` (the text of /proc/self/mounts, read when omitted), or undefined when no
 * cgroup file system is mounted. For v2 it also reads `<root>/cgroup.controllers`.
 */
export function detectCgroupLayout(mountsText?: string): CgroupLayout | undefined {
  const text = mountsText ?? readFileSync('/proc/self/mounts', 'utf8');
  let unified: string | undefined;
  const controllers: { cpu?: string; cpuacct?: string; memory?: string; pids?: string } = {};
  for (const line of text.split('\n')) {
    const [, mountPoint, fsType, mountOptions] = line.trim().split(/\s+/);
    if (!mountPoint || !mountOptions) continue;
    const path = unescapeMountField(mountPoint);
    if (fsType === 'cgroup2') {
      unified ??= path;
    } else if (fsType === 'cgroup') {
      for (const option of mountOptions.split(',')) {
        if (option === 'cpu' || option === 'cpuacct' || option === 'memory' || option === 'pids') {
          controllers[option] ??= path;
        }
      }
    }
  }
  // A controller is bound to one hierarchy: if any of ours is on a v1 mount, the cgroup2 one cannot hold it.
  if (controllers.cpu || controllers.memory || controllers.pids) {
    return unified ? { kind: 'hybrid', unified, controllers } : { kind: 'v1', controllers };
  }
  if (!unified) return undefined;
  let offered: string[] = [];
  try {
    offered = readFileSync(join(unified, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
  } catch {
    // An unreadable list means no controller we can use; the layout still serves membership and kill.
  }
  return { kind: 'v2', root: unified, available: ALL_CONTROLLERS.filter((c) => offered.includes(c)) };
}

/** /proc/self/mounts (and mountinfo) escape space, tab, newline and backslash as octal (`\040`). */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

function validateSegment(field: 'parent' | 'name', value: string): void {
  if (
    typeof value !== 'string' ||
    !SEGMENT.test(value) ||
    value === '.' ||
    value === '..' ||
    value.length > 200
  ) {
    throw new VmManagerError(
      'INVALID_ARGUMENT',
      `${field}: not a valid cgroup name: ${JSON.stringify(value)}`,
      {
        details: { field },
      },
    );
  }
}

function validateLimits(limits: CgroupLimits): void {
  const { cpus, memoryBytes, pids } = limits;
  if (
    cpus !== undefined &&
    !(Number.isFinite(cpus) && Math.round(cpus * CPU_PERIOD_US) >= MIN_CPU_QUOTA_US)
  ) {
    throw new VmManagerError('INVALID_ARGUMENT', `limits.cpus: must be a number >= 0.01, got ${cpus}`, {
      details: { field: 'limits.cpus' },
    });
  }
  for (const [field, value] of [
    ['limits.memoryBytes', memoryBytes],
    ['limits.pids', pids],
  ] as const) {
    if (value !== undefined && !(Number.isSafeInteger(value) && value > 0)) {
      throw new VmManagerError('INVALID_ARGUMENT', `${field}: must be a positive integer, got ${value}`, {
        details: { field },
      });
    }
  }
}

/** The VM's cgroup paths for `layout`, computed without touching the file system. */
export function vmCgroupFor(layout: CgroupLayout, parent: string, name: string): VmCgroup {
  validateSegment('parent', parent);
  validateSegment('name', name);
  const at = (mount: string | undefined) => (mount === undefined ? undefined : join(mount, parent, name));
  const dirs =
    layout.kind === 'v2'
      ? { unified: at(layout.root) }
      : {
          unified: at(layout.unified),
          cpu: at(layout.controllers.cpu),
          cpuacct: at(layout.controllers.cpuacct),
          memory: at(layout.controllers.memory),
          pids: at(layout.controllers.pids),
        };
  const paths = [...new Set(Object.values(dirs).filter((d): d is string => d !== undefined))];
  const enforced =
    layout.kind === 'v2'
      ? {
          cpus: layout.available.includes('cpu'),
          memory: layout.available.includes('memory'),
          pids: layout.available.includes('pids'),
        }
      : { cpus: !!dirs.cpu, memory: !!dirs.memory, pids: !!dirs.pids };
  return {
    layout,
    parent,
    name,
    paths,
    procsFiles: paths.map((p) => join(p, 'cgroup.procs')),
    display: `/${parent}/${name}`,
    enforced,
    dirs,
  };
}

/**
 * Creates (or reuses) the cgroup `<parent>/<name>` in every hierarchy of `layout` and writes `limits`, unset ones
 * as unlimited. A limit whose controller the host lacks is not an error: `enforced` reports it false.
 */
export async function createVmCgroup(
  layout: CgroupLayout,
  parent: string,
  name: string,
  limits: CgroupLimits,
  options?: Options,
): Promise<VmCgroup> {
  const planned = vmCgroupFor(layout, parent, name);
  validateLimits(limits);
  throwIfAborted(options?.signal);
  if (layout.kind === 'v2') {
    const parentDir = join(layout.root, parent);
    await makeDir(parentDir);
    const atRoot = await enableControllers(layout.root, layout.available);
    const inParent = await enableControllers(parentDir, atRoot);
    const dir = planned.dirs.unified!;
    await makeDirIn(dir);
    const enforced = {
      cpus: inParent.includes('cpu'),
      memory: inParent.includes('memory'),
      pids: inParent.includes('pids'),
    };
    if (enforced.cpus)
      await writeControl(join(dir, 'cpu.max'), `${cpuQuota(limits.cpus) ?? 'max'} ${CPU_PERIOD_US}`);
    if (enforced.memory) {
      await writeControl(join(dir, 'memory.max'), `${limits.memoryBytes ?? 'max'}`);
      // Without this a VM's memory limit would leak out through swap.
      if (await exists(join(dir, 'memory.swap.max'))) {
        await writeControl(join(dir, 'memory.swap.max'), limits.memoryBytes === undefined ? 'max' : '0');
      }
    }
    if (enforced.pids) await writeControl(join(dir, 'pids.max'), `${limits.pids ?? 'max'}`);
    return { ...planned, enforced };
  }
  for (const mount of [layout.unified, ...Object.values(layout.controllers)]) {
    if (mount !== undefined) await makeDir(join(mount, parent));
  }
  for (const dir of planned.paths) await makeDirIn(dir);
  const { cpu, memory, pids } = planned.dirs;
  if (cpu) {
    await writeControl(join(cpu, 'cpu.cfs_period_us'), `${CPU_PERIOD_US}`);
    await writeControl(join(cpu, 'cpu.cfs_quota_us'), `${cpuQuota(limits.cpus) ?? -1}`);
  }
  if (memory) {
    const bytes = `${limits.memoryBytes ?? -1}`;
    const memsw = join(memory, 'memory.memsw.limit_in_bytes');
    // memsw must stay >= limit_in_bytes at every write: lift it, set the limit, then pin it (no swap beyond).
    const hasMemsw = await exists(memsw);
    if (hasMemsw) await writeControl(memsw, '-1');
    await writeControl(join(memory, 'memory.limit_in_bytes'), bytes);
    if (hasMemsw) await writeControl(memsw, bytes);
  }
  if (pids) await writeControl(join(pids, 'pids.max'), `${limits.pids ?? 'max'}`);
  return planned;
}

function cpuQuota(cpus: number | undefined): number | undefined {
  return cpus === undefined ? undefined : Math.round(cpus * CPU_PERIOD_US);
}

/**
 * Enables `wanted` for the children of `dir`; returns those enabled. One write first (all or nothing), then one
 * per controller, so a controller the kernel refuses (e.g. EBUSY in a delegated subtree) only drops itself.
 */
// cgroupfs is a kernel pseudo-filesystem: each of these is a few microseconds in the calling thread, where the
// thread pool would cost a round trip per call (0.2–2 ms each on a busy host, a dozen per VM start). Kept async in
// shape for the callers.

async function enableControllers(
  dir: string,
  wanted: readonly CgroupController[],
): Promise<CgroupController[]> {
  if (wanted.length === 0) return [];
  const file = join(dir, 'cgroup.subtree_control');
  try {
    writeFileSync(file, wanted.map((c) => `+${c}`).join(' '));
    return [...wanted];
  } catch {
    const enabled: CgroupController[] = [];
    for (const controller of wanted) {
      try {
        writeFileSync(file, `+${controller}`);
        enabled.push(controller);
      } catch {
        // Reported through `enforced`, not thrown: the caller decides whether an unlimited VM is acceptable.
      }
    }
    return enabled;
  }
}

async function makeDir(dir: string): Promise<void> {
  try {
    mkdirSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return;
    throw fsError('mkdir', dir, error);
  }
}

/** `makeDir`, making the parent again when the removal of its last VM's cgroup took it meanwhile. */
async function makeDirIn(dir: string): Promise<void> {
  try {
    mkdirSync(dir);
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return makeDir(dir);
  }
  await makeDir(dirname(dir));
  await makeDir(dir);
}

async function writeControl(file: string, value: string): Promise<void> {
  try {
    writeFileSync(file, value);
  } catch (error) {
    throw fsError('write', file, error, { value });
  }
}

async function exists(file: string): Promise<boolean> {
  return existsSync(file);
}

function fsError(
  step: string,
  path: string,
  cause: unknown,
  extra: Record<string, unknown> = {},
): VmManagerError {
  const errno = (cause as NodeJS.ErrnoException).code;
  return new VmManagerError('VMM_FAILED', `cgroup ${step} ${path} failed: ${errno ?? String(cause)}`, {
    cause,
    details: { step: `cgroup-${step}`, path, errno, ...extra },
  });
}

/**
 * Starts the wait that the next move of a process between cgroups would otherwise pay, and returns at once.
 *
 * Every write to a `cgroup.procs` file takes the kernel's cgroup_threadgroup_rwsem for writing, and taking it
 * after a quiet spell waits for an RCU grace period (11 ms median measured here, up to 24); the lock stays cheap
 * for about one more grace period after a writer. So this process writes its own pid into the cgroup it already
 * is in (a move to where it is: nothing changes), some milliseconds before a VMM is moved into its cgroups, and
 * that move finds the grace period already under way or passed (1.7 ms median here, same machine). Hosts whose
 * cgroups are mounted with `favordynmods` (Linux 6.0+) never pay the wait; there this costs one write. Errors are
 * ignored: the move it prepares works without it.
 */
export function warmCgroupMoves(layout: CgroupLayout, selfCgroup?: string): void {
  const file = ownProcsFile(layout, selfCgroup);
  if (file) writeFile(file, `${process.pid}\n`).catch(() => undefined);
}

/** The `cgroup.procs` of the cgroup this process is in, in one hierarchy of `layout` (undefined if unknown). */
export function ownProcsFile(layout: CgroupLayout, selfCgroup?: string): string | undefined {
  let text: string;
  try {
    text = selfCgroup ?? readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    return undefined;
  }
  // `ID:controllers:/path`; the unified hierarchy's line is `0::/path`. Any hierarchy will do: the lock is global.
  const lines = text.split('\n').map((line) => line.split(':'));
  const pathOf = (match: (controllers: string) => boolean) =>
    lines
      .find((parts) => parts.length >= 3 && match(parts[1]!))
      ?.slice(2)
      .join(':');
  const mounted =
    layout.kind === 'v2'
      ? { mount: layout.root, path: pathOf((c) => c === '') }
      : layout.controllers.memory
        ? { mount: layout.controllers.memory, path: pathOf((c) => c.split(',').includes('memory')) }
        : { mount: layout.unified, path: pathOf((c) => c === '') };
  const { mount, path } = mounted;
  if (!mount || !path?.startsWith('/') || path.split('/').includes('..')) return undefined;
  return join(mount, path, 'cgroup.procs');
}

/** Moves process `pid` into every hierarchy of `cg` (for processes the manager spawns itself). */
export async function joinCgroup(cg: VmCgroup, pid: number): Promise<void> {
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw new VmManagerError('INVALID_ARGUMENT', `pid: must be a positive integer, got ${pid}`, {
      details: { field: 'pid' },
    });
  }
  for (const file of cg.procsFiles) {
    try {
      await writeFile(file, `${pid}`);
    } catch (error) {
      throw fsError('join', file, error, { pid });
    }
  }
}

/** Reads the cgroup's current usage and limits; NOT_FOUND when it does not exist. */
export async function readCgroupUsage(cg: VmCgroup, options?: Options): Promise<CgroupUsage> {
  throwIfAborted(options?.signal);
  if (!(await exists(cg.paths[0] ?? ''))) {
    throw new VmManagerError('NOT_FOUND', `cgroup ${cg.display} does not exist`, {
      details: { step: 'cgroup-usage', path: cg.paths[0] },
    });
  }
  const { unified, cpu, cpuacct, memory, pids } = cg.dirs;
  const usage: CgroupUsage = {};
  if (cg.layout.kind === 'v2') {
    usage.memoryBytes = numberOrUndefined(await readControl(unified, 'memory.current'));
    usage.memoryLimitBytes = numberOrUndefined(await readControl(unified, 'memory.max'));
    usage.cpuUsageUsec = statField(await readControl(unified, 'cpu.stat'), 'usage_usec');
    const [quota, period] = (await readControl(unified, 'cpu.max'))?.split(/\s+/) ?? [];
    usage.cpus = cpusOf(numberOrUndefined(quota), numberOrUndefined(period));
    usage.pids = numberOrUndefined(await readControl(unified, 'pids.current'));
    usage.pidsLimit = numberOrUndefined(await readControl(unified, 'pids.max'));
  } else {
    usage.memoryBytes = numberOrUndefined(await readControl(memory, 'memory.usage_in_bytes'));
    const limit = numberOrUndefined(await readControl(memory, 'memory.limit_in_bytes'));
    usage.memoryLimitBytes = limit !== undefined && limit < V1_UNLIMITED_FROM ? limit : undefined;
    const ns = (await readControl(cpuacct, 'cpuacct.usage'))?.trim();
    usage.cpuUsageUsec =
      ns && /^\d+$/.test(ns)
        ? Number(BigInt(ns) / 1000n)
        : statField(await readControl(unified, 'cpu.stat'), 'usage_usec');
    usage.cpus = cpusOf(
      numberOrUndefined(await readControl(cpu, 'cpu.cfs_quota_us')),
      numberOrUndefined(await readControl(cpu, 'cpu.cfs_period_us')),
    );
    usage.pids = numberOrUndefined(await readControl(pids, 'pids.current'));
    usage.pidsLimit = numberOrUndefined(await readControl(pids, 'pids.max'));
  }
  for (const key of Object.keys(usage) as (keyof CgroupUsage)[]) {
    if (usage[key] === undefined) delete usage[key];
  }
  return usage;
}

async function readControl(dir: string | undefined, file: string): Promise<string | undefined> {
  if (dir === undefined) return undefined;
  try {
    return await readFile(join(dir, file), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fsError('read', join(dir, file), error);
  }
}

function numberOrUndefined(text: string | undefined): number | undefined {
  const trimmed = text?.trim();
  return trimmed && /^-?\d+$/.test(trimmed) ? Number(trimmed) : undefined;
}

function statField(text: string | undefined, key: string): number | undefined {
  const line = text?.split('\n').find((l) => l.startsWith(`${key} `));
  return numberOrUndefined(line?.slice(key.length + 1));
}

function cpusOf(quota: number | undefined, period: number | undefined): number | undefined {
  return quota !== undefined && quota > 0 && period ? quota / period : undefined;
}

/**
 * Kills every process still in the VM's cgroup (`cgroup.kill` where the kernel has it, SIGKILL per pid
 * otherwise), waits up to 2 s for it to empty, then removes its directories, nested ones first. Missing
 * directories are fine. The parent goes too once no VM's cgroup is left in it (the kernel refuses to remove one
 * that still has children, and a create racing with that makes it again).
 */
export async function removeVmCgroup(
  cg: VmCgroup | { layout: CgroupLayout; parent: string; name: string },
  options?: Options,
): Promise<void> {
  const target = 'paths' in cg ? cg : vmCgroupFor(cg.layout, cg.parent, cg.name);
  throwIfAborted(options?.signal);
  const dirs: string[] = [];
  for (const path of target.paths) dirs.push(...(await subtreeDeepestFirst(path)));
  for (const dir of dirs) {
    if (await exists(join(dir, 'cgroup.kill'))) {
      await writeFile(join(dir, 'cgroup.kill'), '1').catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError('kill', dir, error);
      });
    }
  }
  const deadline = Date.now() + KILL_WAIT_MS;
  for (;;) {
    const pids = new Set<number>();
    for (const dir of dirs) for (const pid of await readPids(dir)) pids.add(pid);
    pids.delete(process.pid); // never kill ourselves; rmdir then reports the cgroup busy
    if (pids.size === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // ESRCH: it exited between the read and the kill.
      }
    }
    if (Date.now() >= deadline) {
      throw new VmManagerError('TIMEOUT', `cgroup ${target.display} still has processes after SIGKILL`, {
        details: { step: 'cgroup-kill', path: target.paths[0], pids: [...pids] },
      });
    }
    throwIfAborted(options?.signal);
    await sleep(KILL_POLL_MS);
  }
  for (const dir of dirs) {
    try {
      await rmdir(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError('rmdir', dir, error);
    }
  }
  for (const path of target.paths) {
    try {
      rmdirSync(dirname(path));
    } catch {
      // EBUSY: another VM's cgroup is in it; ENOENT: gone already.
    }
  }
}

/** `dir` and every cgroup below it, children before their parents; empty when `dir` is missing. */
async function subtreeDeepestFirst(dir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw fsError('list', dir, error);
  }
  const nested: string[] = [];
  for (const entry of entries) {
    if (entry.isDirectory()) nested.push(...(await subtreeDeepestFirst(join(dir, entry.name))));
  }
  return [...nested, dir];
}

async function readPids(dir: string): Promise<number[]> {
  const text = await readControl(dir, 'cgroup.procs');
  return (text ?? '')
    .split('\n')
    .filter((line) => /^\d+$/.test(line))
    .map(Number);
}

/** Names of the VM cgroups under `parent` in any hierarchy of `layout`, sorted; empty when `parent` is missing. */
export async function listVmCgroups(
  layout: CgroupLayout,
  parent: string,
  options?: Options,
): Promise<string[]> {
  validateSegment('parent', parent);
  throwIfAborted(options?.signal);
  const mounts =
    layout.kind === 'v2' ? [layout.root] : [layout.unified, ...Object.values(layout.controllers)];
  const names = new Set<string>();
  for (const mount of new Set(mounts)) {
    if (mount === undefined) continue;
    const dir = join(mount, parent);
    try {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        if (entry.isDirectory()) names.add(entry.name);
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError('list', dir, error);
    }
  }
  return [...names].sort();
}
