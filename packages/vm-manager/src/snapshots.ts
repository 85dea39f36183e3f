import { randomBytes } from 'node:crypto';
import { constants, promises as fs, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import type { ChvClient } from '@my-hypervisor/chv-client';
import { syncDirectory } from '@my-hypervisor/host-utils';
import { SNAPSHOTS_DIR } from './confinement.js';
import { assertTrustedDir, ensurePrivateDir } from './dir-trust.js';
import { invalidSpec, VmManagerError } from './errors.js';
import type { VmEvent } from './events.js';
import type { OperationOptions } from './manager-options.js';
import { type PipelineStep, stepError, withAlongside } from './pipeline.js';
import {
  bootSteps,
  confinementSteps,
  finalStep,
  haltSteps,
  reassertSteps,
  replaceSteps,
} from './pipeline-steps.js';
import type { VmSpec } from './spec.js';
import { adoptStep, dropStandby, liveStandby, relayStep } from './standby.js';
import type { VmOperation, VmRecord, VmSnapshot } from './state-store.js';
import type { VmHost } from './vm-resources.js';
import { loadChvClient, type RestoreMemory, type VmmOptions, vmmAlive } from './vmm.js';

// Snapshot and restore of a VM (Cloud Hypervisor's vm.snapshot / vm.restore with file:// URLs). The VM's record
// lists its snapshots; `pending` is written before any file or VMM state changes, so reconcile can clean up.

/** What the snapshot functions need from the manager that owns the VM (its lock is held by the caller). */
export interface SnapshotInternals {
  readonly host: VmHost;
  /** Runs `steps` as one recorded operation that undoes itself on failure. */
  run(record: VmRecord, op: VmOperation, steps: PipelineStep[], options: OperationOptions): Promise<void>;
  /** The host checks `start` makes (kernel, disks, VMM binary, network and storage configured). */
  checkSpec(record: VmRecord, signal?: AbortSignal): Promise<void>;
  /** Whatever a dead VMM left (socket, shares, run dir); the record becomes stopped. */
  cleanupRuntime(record: VmRecord): Promise<void>;
  emit(event: VmEvent): void;
}

/** Files every Cloud Hypervisor snapshot has (and the simulator writes); memory files come with real guests. */
const SNAPSHOT_FILES = ['config.json', 'state.json'] as const;
/** Room beyond the guest memory for config.json, state.json and device state. */
const SNAPSHOT_OVERHEAD = 1024 * 1024;
const NO_SPACE_HINT = 'free some space, or snapshot to a directory on another file system (--to)';

const io = (signal?: AbortSignal) => (signal ? { signal } : {});
const now = (): string => new Date().toISOString();

/** Pauses (if running), snapshots into a new 0700 directory, resumes unless `leavePaused`, and records it. */
export async function takeSnapshot(
  internals: SnapshotInternals,
  record: VmRecord,
  options: OperationOptions & { to?: string; leavePaused?: boolean } = {},
): Promise<VmSnapshot> {
  const { host } = internals;
  if ((record.status !== 'running' && record.status !== 'paused') || !vmmAlive(record.resources.vmm)) {
    throw wrongState(record, 'snapshot', 'it is not running');
  }
  const id = snapshotId();
  const parent = options.to ?? join(host.store.vmDir(record.name), SNAPSHOTS_DIR);
  if (options.to === undefined) ensurePrivateDir(parent, 'the snapshot directory');
  else await assertSnapshotParent(options.to);
  const dir = options.to === undefined ? join(parent, id) : join(parent, `${record.name}-${id}`);
  // A VMM under Landlock writes only into its own snapshot directory: elsewhere, it writes there, and the result
  // is moved. A confined VMM must get to where it writes (refused here, before anything changes).
  const own = join(host.store.vmDir(record.name), SNAPSHOTS_DIR);
  const stage = host.confiner.landlockAllows(record, dir) ? dir : join(own, id);
  if (record.resources.confinement) await host.confiner.letThrough(dirname(stage), 'to');
  await assertRoom(parent, record.spec.memory + SNAPSHOT_OVERHEAD, record.name);
  if (stage !== dir) await assertRoom(own, record.spec.memory + SNAPSHOT_OVERHEAD, record.name);

  const before = record.status;
  const { ChvClient } = await loadChvClient();
  await using client = new ChvClient({ socketPath: record.resources.vmm!.socketPath });
  // Recorded first: after a crash, reconcile removes the directory (it is in no snapshot) and unpauses the VM.
  record.pending = { op: 'snapshot', step: `vm.snapshot ${stage}`, since: now() };
  await host.store.write(record);
  let paused = false;
  let sizeBytes: number;
  try {
    await fs.mkdir(stage, { mode: 0o700 });
    await host.confiner.lend(record, stage);
    if (before === 'running') {
      await client.vmPause(io(options.signal));
      paused = true;
    }
    await snapshotWhenLoaded(client, stage, options.signal).catch((error: unknown) => {
      throw stepError(error, record.name, 'vm.snapshot');
    });
    // What the VMM wrote must be a snapshot restore accepts, and on disk before the record names it.
    await host.confiner.takeBack(record, stage);
    if (stage !== dir) {
      record.pending = { op: 'snapshot', step: `vm.snapshot ${dir}`, since: now() };
      await host.store.write(record);
      await moveSnapshot(stage, dir);
      await host.confiner.takeBack(record, dir);
    }
    sizeBytes = await syncSnapshot(dir);
    await checkSnapshotFiles(record, { id, path: dir, sizeBytes, spec: record.spec });
    await syncDirectory(parent);
    if (paused && !options.leavePaused) {
      await client.vmResume(io(options.signal));
      paused = false;
    }
  } catch (error) {
    await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    await fs.rm(stage, { recursive: true, force: true }).catch(() => undefined);
    if (paused) await client.vmResume().catch(() => undefined);
    delete record.pending;
    await host.store.write(record);
    throw snapshotError(error, record.name, 'vm.snapshot');
  }
  const snapshot: VmSnapshot = {
    id,
    path: dir,
    createdAt: now(),
    sizeBytes,
    status: before,
    spec: structuredClone(record.spec),
  };
  record.snapshots = [...(record.snapshots ?? []), snapshot];
  record.status = paused ? 'paused' : before;
  delete record.pending;
  await host.store.write(record);
  if (record.status !== before) internals.emit({ type: 'status', vm: record.name, status: record.status });
  return snapshot;
}

/** Moves a snapshot written in the VM's own directory to where it was asked for: renamed, or copied across file systems. */
async function moveSnapshot(from: string, to: string): Promise<void> {
  try {
    await fs.rename(from, to);
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
  }
  await fs.cp(from, to, { recursive: true, errorOnExist: true, force: false });
  await fs.rm(from, { recursive: true, force: true });
}

/** Forgets the snapshot and removes its directory. NOT_FOUND when the VM has no snapshot `id`. */
export async function removeSnapshot(
  internals: SnapshotInternals,
  record: VmRecord,
  id: string,
): Promise<VmSnapshot> {
  const snapshot = findSnapshot(record, id);
  // Forgotten first, removed second: a crash in between leaves a directory reconcile removes (pending names it).
  record.pending = { op: 'snapshot', step: `snapshot-rm ${snapshot.path}`, since: now() };
  record.snapshots = (record.snapshots ?? []).filter((s) => s !== snapshot);
  await internals.host.store.write(record);
  await fs.rm(snapshot.path, { recursive: true, force: true });
  delete record.pending;
  // Nothing left to restore from: no standby for it either.
  if (record.snapshots.length === 0) await dropStandby(internals.host, record);
  await internals.host.store.write(record);
  return snapshot;
}

/** Removes the directories of every snapshot of a VM being deleted (those under its state dir go with it). */
export async function removeAllSnapshots(record: VmRecord): Promise<void> {
  for (const snapshot of record.snapshots ?? []) await fs.rm(snapshot.path, { recursive: true, force: true });
}

/**
 * Restores the VM from a snapshot (the latest by default): every check first (snapshot files intact, taken with
 * the spec the VM has now, host ready), so a refused restore leaves a running VM running; then stops the VM,
 * re-asserts its network and shares (the snapshot's config names its TAP and share sockets), starts a fresh VMM,
 * `vm.restore`s and resumes it. A failure after the stop leaves the VM stopped.
 */
export async function restoreSnapshot(
  internals: SnapshotInternals,
  record: VmRecord,
  options: OperationOptions & { from?: string } = {},
): Promise<VmSnapshot> {
  if (record.status !== 'running' && record.status !== 'paused' && record.status !== 'stopped') {
    throw wrongState(record, 'restore', 'run `myhv gc` to repair it first');
  }
  const snapshot = findSnapshot(record, options.from);
  const changed = changedFields(snapshot.spec, record.spec);
  if (changed.length > 0) {
    throw new VmManagerError(
      'CONFLICT',
      `snapshot ${snapshot.id} of ${record.name} was taken with another ${changed.join(', ')}`,
      {
        details: {
          vm: record.name,
          snapshot: snapshot.id,
          fields: changed,
          hint: 'restore a snapshot taken with the current spec, or take a new one',
        },
      },
    );
  }
  await checkSnapshotFiles(record, snapshot);
  await internals.checkSpec(record, options.signal);

  const running =
    (record.status === 'running' || record.status === 'paused') && vmmAlive(record.resources.vmm);
  if (!running) await internals.cleanupRuntime(record);
  // Without shares, the running VMM dies while the next one starts (their virtiofsd would have to go first), or
  // while its standby takes over (standby.ts).
  const shareless = record.spec.shares.length === 0 && record.resources.shares.length === 0;
  const standby = running && shareless ? liveStandby(record) : undefined;
  // One that died, or that this restore cannot use, goes (recorded by the first write).
  if (!standby && record.resources.standby) await dropStandby(internals.host, record);
  const replace = running && shareless ? replaceSteps(internals.host, record, standby) : undefined;
  const steps: PipelineStep[] = [
    // One recorded operation from the stop on. The snapshot replaces the running guest's state, so there is nothing
    // for a shutdown to keep: the VMM is killed, not taken down the stop ladder.
    ...(replace ? [replace.stop] : running ? haltSteps(internals.host, record, 0, true) : []),
    ...confinementSteps(internals.host, record, false),
    // Shares and a fresh VMM, as start makes them (with their undo); vm.restore replaces create and boot. The VM's
    // network is re-asserted while the VMM starts: it needs its TAP only when it restores the devices.
    ...bootSteps(internals.host, record).flatMap((s) =>
      s.name === 'shares'
        ? [s]
        : s.name === 'vmm'
          ? withAlongside(
              // After vmm-stop's write (see replaceSteps), nothing new to record before the next VMM starts; with a
              // standby, vmm-stop made it the VM's VMM (its held relay is released after vm.restore).
              standby ? adoptStep(internals.host, record) : replace ? { ...s, recordBefore: false } : s,
              [...reassertSteps(internals.host, record), ...(replace ? [replace.gone] : [])],
            )
          : [],
    ),
    {
      name: 'vm.restore',
      recordBefore: false,
      run: async (signal) => {
        const { ChvClient } = await loadChvClient();
        await using client = new ChvClient({ socketPath: record.resources.vmm!.socketPath });
        if (record.resources.confinement) {
          // A confined VMM reads it through its group, whoever took it.
          await internals.host.confiner.letThrough(dirname(snapshot.path), 'from');
          await internals.host.confiner.takeBack(record, snapshot.path);
        }
        await restoreMemory(client, snapshot.path, memoryMode(internals.host.vmm, record), signal);
        const info = await client.vmInfo(io(signal));
        if (info.state !== 'Running') {
          throw new VmManagerError(
            'VMM_FAILED',
            `${record.name}: the VMM reports ${info.state} after restore`,
            {
              details: { vm: record.name, step: 'vm.restore' },
            },
          );
        }
      },
    },
    ...(standby ? [relayStep(internals.host, record)] : []),
    finalStep(internals.host, record, 'running'),
  ];
  await internals.run(record, 'restore', steps, options);
  return snapshot;
}

/**
 * How a restore brings the guest's memory back (`VmmOptions.restoreMemory`; see there): on demand where the VMM
 * may use userfaultfd — it runs as root, unconfined; confined with `confinement.userfaultfd`; or the host lets
 * unprivileged processes use it — else copied.
 */
export function memoryMode(options: VmmOptions, record: VmRecord): RestoreMemory {
  if (options.restoreMemory) return options.restoreMemory;
  const confinement = record.resources.confinement;
  const allowed = confinement ? confinement.userfaultfd === true : process.getuid?.() === 0;
  return allowed || unprivilegedUserfaultfd() ? 'on-demand' : 'copy';
}

function unprivilegedUserfaultfd(): boolean {
  try {
    return readFileSync('/proc/sys/vm/unprivileged_userfaultfd', 'utf8').trim() === '1';
  } catch {
    return false;
  }
}

/**
 * `vm.restore` of `dir`, resumed by the VMM itself. On demand, a VMM refused userfaultfd (a host that forbids it
 * even to root, in a container without CAP_SYS_PTRACE) is asked again to copy: a failed restore leaves it empty.
 */
async function restoreMemory(
  client: ChvClient,
  dir: string,
  mode: RestoreMemory,
  signal: AbortSignal | undefined,
): Promise<void> {
  const source_url = pathToFileURL(dir).href;
  if (mode === 'on-demand') {
    try {
      await client.vmRestore({ source_url, memory_restore_mode: 'OnDemand', resume: true }, io(signal));
      return;
    } catch (error) {
      if (!mentions(error, /userfaultfd/i)) throw error;
    }
  }
  await client.vmRestore({ source_url, memory_restore_mode: 'Copy', resume: true }, io(signal));
}

/** How long a snapshot waits for an on-demand restore to finish loading the guest's memory (a few 100 ms here). */
const LOADING_WAIT_MS = 60_000;

/**
 * `vm.snapshot` to `dir`. Right after an on-demand restore the VMM refuses while it is still loading the guest's
 * memory in the background ("on-demand memory restore is still in progress"): asked again until it has.
 */
async function snapshotWhenLoaded(
  client: ChvClient,
  dir: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  const until = performance.now() + LOADING_WAIT_MS;
  for (;;) {
    try {
      await client.vmSnapshot({ destination_url: pathToFileURL(dir).href }, io(signal));
      return;
    } catch (error) {
      if (!mentions(error, /on-demand memory restore is still in progress/i) || performance.now() > until)
        throw error;
    }
    await sleep(50, undefined, io(signal));
  }
}

function mentions(error: unknown, pattern: RegExp): boolean {
  const messages = (error as { messages?: unknown }).messages;
  return Array.isArray(messages) && messages.some((m) => typeof m === 'string' && pattern.test(m));
}

/**
 * Reconcile's part: a snapshot or snapshot removal interrupted by a crash. The directory it names is removed
 * unless a recorded snapshot owns it; a VMM the snapshot paused is resumed when the record says running.
 * Returns what was done.
 */
export async function settleInterruptedSnapshot(
  record: VmRecord,
  vmmState: (record: VmRecord) => Promise<'running' | 'paused' | undefined>,
): Promise<string> {
  const match = /^(?:vm\.snapshot|snapshot-rm) (\/.+)$/.exec(record.pending?.step ?? '');
  const dir = match?.[1];
  const done: string[] = [];
  if (dir && !(record.snapshots ?? []).some((s) => s.path === dir) && isSnapshotDirName(basename(dir))) {
    await fs.rm(dir, { recursive: true, force: true });
    done.push(`removed ${dir}`);
  }
  if (record.pending?.step.startsWith('vm.snapshot') && vmmAlive(record.resources.vmm)) {
    const state = await vmmState(record);
    if (state === 'paused' && record.status === 'running') {
      const { ChvClient } = await loadChvClient();
      await using client = new ChvClient({ socketPath: record.resources.vmm!.socketPath });
      await client.vmResume({ signal: AbortSignal.timeout(5_000) });
      done.push('resumed the VM');
    } else if (state) record.status = state;
  }
  delete record.pending;
  return done.length > 0 ? done.join('; ') : 'nothing left to undo';
}

/** The spec fields a snapshot depends on that differ between `taken` and `now` (empty when it can be restored). */
export function changedFields(taken: VmSpec, now: VmSpec): string[] {
  const net = (s: VmSpec) => ({
    enabled: s.network.enabled,
    name: s.network.name,
    queues: s.network.queues,
    mycelium: s.network.mycelium,
  });
  const disks = (s: VmSpec) => s.disks.map((d) => ({ path: d.path, readOnly: d.readOnly }));
  const shares = (s: VmSpec) =>
    s.shares.map((d) => ({ tag: d.tag, hostPath: d.hostPath, readOnly: d.readOnly }));
  const fields: [string, (s: VmSpec) => unknown][] = [
    ['cpus', (s) => s.cpus],
    ['memory', (s) => s.memory],
    ['disks', disks],
    ['shares', shares],
    ['network', net],
    // The snapshot's config names each NIC's TAP and MAC: another set of NICs cannot be restored into.
    ['nics', (s) => (s.nics ?? []).map((n) => n.id)],
  ];
  return fields
    .filter(([, pick]) => JSON.stringify(pick(taken)) !== JSON.stringify(pick(now)))
    .map(([f]) => f);
}

/**
 * CORRUPT_STATE unless the snapshot directory holds what the VMM wrote: Cloud Hypervisor's config.json and
 * state.json, parseable, the config matching the spec it was taken with, and the same total size as recorded.
 */
export async function checkSnapshotFiles(
  record: VmRecord,
  snapshot: Pick<VmSnapshot, 'id' | 'path' | 'sizeBytes' | 'spec'>,
): Promise<void> {
  const corrupt = (reason: string, cause?: unknown) =>
    new VmManagerError('CORRUPT_STATE', `snapshot ${snapshot.id} of ${record.name} ${reason}`, {
      ...(cause === undefined ? {} : { cause }),
      details: {
        vm: record.name,
        snapshot: snapshot.id,
        path: snapshot.path,
        reason,
        hint: 'take a new snapshot; `myhv vm snapshot rm` forgets this one',
      },
    });
  assertTrustedDir(snapshot.path, 'the snapshot directory');
  // In this thread, like the trust check: a few small local files, on the way to every restore.
  const stat = lstatSync(snapshot.path, { throwIfNoEntry: false });
  if (!stat?.isDirectory()) throw corrupt(`is missing (${snapshot.path})`);
  const parsed: Record<string, unknown> = {};
  for (const file of SNAPSHOT_FILES) {
    let raw: string | undefined;
    try {
      raw = readFileSync(join(snapshot.path, file), 'utf8');
    } catch {}
    if (raw === undefined) throw corrupt(`has no ${file}`);
    try {
      parsed[file] = JSON.parse(raw);
    } catch (error) {
      throw corrupt(`has a damaged ${file}`, error);
    }
  }
  const config = parsed['config.json'] as { cpus?: { boot_vcpus?: unknown }; memory?: { size?: unknown } };
  if (config?.cpus?.boot_vcpus !== snapshot.spec.cpus || config?.memory?.size !== snapshot.spec.memory) {
    throw corrupt('has a config.json that does not match the spec it was taken with');
  }
  const size = directorySize(snapshot.path);
  if (size !== snapshot.sizeBytes) {
    throw corrupt(`changed since it was taken (${size} bytes, ${snapshot.sizeBytes} recorded)`);
  }
}

function findSnapshot(record: VmRecord, id: string | undefined): VmSnapshot {
  const snapshots = record.snapshots ?? [];
  const snapshot = id === undefined ? snapshots.at(-1) : snapshots.find((s) => s.id === id);
  if (snapshot) return snapshot;
  throw new VmManagerError(
    'NOT_FOUND',
    id === undefined ? `${record.name} has no snapshot` : `${record.name} has no snapshot ${id}`,
    { details: { vm: record.name, ...(id === undefined ? {} : { snapshot: id }) } },
  );
}

/** `--to`: an absolute path to an existing directory that only root (or this user) can write. */
async function assertSnapshotParent(dir: string): Promise<void> {
  if (typeof dir !== 'string' || !isAbsolute(dir)) throw invalidSpec('to', 'must be an absolute path');
  const stat = await fs.stat(dir).catch(() => undefined);
  if (!stat) throw invalidSpec('to', `${dir} does not exist`);
  if (!stat.isDirectory()) throw invalidSpec('to', `${dir} is not a directory`);
  assertTrustedDir(dir, 'the snapshot directory');
}

/** NO_SPACE, before the VM is touched, when the file system cannot hold the guest's memory. */
async function assertRoom(dir: string, bytes: number, vm: string): Promise<void> {
  const stats = await fs.statfs(dir);
  const free = stats.bavail * stats.bsize;
  if (free < bytes) {
    throw new VmManagerError(
      'NO_SPACE',
      `${vm}: a snapshot needs about ${mib(bytes)} MiB but ${dir} has ${mib(free)} MiB free`,
      { details: { vm, path: dir, needed: bytes, free, hint: NO_SPACE_HINT } },
    );
  }
}

/** Fsyncs every file of the snapshot; returns their total size. */
async function syncSnapshot(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const handle = await fs.open(
      join(entry.parentPath, entry.name),
      constants.O_RDONLY | constants.O_NOFOLLOW,
    );
    try {
      await handle.datasync();
      total += (await handle.stat()).size;
    } finally {
      await handle.close();
    }
  }
  await syncDirectory(dir);
  return total;
}

/** The bytes of the regular files under `dir` (a snapshot: a handful of files), read in this thread. */
function directorySize(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += lstatSync(join(entry.parentPath, entry.name)).size;
  }
  return total;
}

/** Time-ordered and unique enough: `20261206-040022-3fa9`. */
function snapshotId(): string {
  const stamp = now().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

/** Reconcile removes only directories named the way `takeSnapshot` names them. */
function isSnapshotDirName(name: string): boolean {
  return /(^|-)\d{8}-\d{6}-[0-9a-f]{4}$/.test(name);
}

/** ENOSPC from our own writes becomes NO_SPACE; the rest keeps (or gets) the step's code. */
function snapshotError(error: unknown, vm: string, step: string): VmManagerError {
  if ((error as NodeJS.ErrnoException)?.code === 'ENOSPC') {
    return new VmManagerError('NO_SPACE', `${vm}: no space left for the snapshot`, {
      cause: error,
      details: { vm, step, hint: NO_SPACE_HINT },
    });
  }
  return stepError(error, vm, step);
}

function mib(bytes: number): number {
  return Math.ceil(bytes / (1024 * 1024));
}

function wrongState(record: VmRecord, op: string, hint: string): VmManagerError {
  return new VmManagerError('WRONG_STATE', `cannot ${op} ${record.name}: ${hint}`, {
    details: { vm: record.name, status: record.status },
  });
}
