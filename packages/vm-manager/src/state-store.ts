import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  promises as fs,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  type Stats,
  statSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { isTempFile, syncDirectory, writeFileAtomic } from '@my-hypervisor/host-utils';
import type { PortForwardRule, VmNetworkAttachment } from '@my-hypervisor/net-ops';
import type { ConfinementState } from './confinement.js';
import {
  assertTrustedDir,
  ensurePrivateDir,
  type UnsafePermission,
  unsafePermission,
  unsafePermissionsError,
} from './dir-trust.js';
import { VmManagerError } from './errors.js';
import {
  CHANGES_FILE,
  DEFAULT_SETTLE_MS,
  FileStamps,
  isListingCacheTemp,
  LISTING_CACHE_FILE,
  type ListingEntry,
  readListingCache,
  writeChangesToken,
  writeListingCache,
} from './listing-cache.js';
import type { VmSpec } from './spec.js';

/** The lifecycle status recorded for a VM. */
export type VmStatus = 'creating' | 'stopped' | 'running' | 'paused' | 'deleting';
/** The operation a VM record is in the middle of (or last ran). */
export type VmOperation =
  | 'create'
  | 'start'
  | 'stop'
  | 'restart'
  | 'delete'
  | 'pause'
  | 'resume'
  | 'forward-add'
  | 'resize'
  | 'forward-rm'
  | 'snapshot'
  | 'restore'
  | 'disk-add'
  | 'disk-rm'
  | 'share-add'
  | 'share-rm'
  | 'nic-add'
  | 'nic-rm';

/** What the VMM process is, so a later process can find it again (and never mistake a recycled pid for it). */
export interface VmmRecord {
  readonly socketPath: string;
  readonly pidFile: string;
  readonly logFile: string;
  readonly pid?: number;
  /** Kernel start time of `pid` (/proc/<pid>/stat field 22). */
  readonly startTime?: number;
  /** The VM's serial relay (serial-console.ts): it ends with the VMM's serial socket, and is stopped with it. */
  readonly serialRelay?: { readonly pid: number; readonly startTime?: number };
}

/** A share's storage record, as the storage backend returned it (opaque JSON), plus what we asked for. */
export interface ShareState {
  readonly id: string;
  readonly tag: string;
  readonly record?: unknown;
}

/** Everything a VM owns on the host. Each field is written before the step that creates the resource runs. */
export interface VmResources {
  ip?: string;
  /** The TAP name is recorded before attach; the full attachment after. */
  tap?: string;
  network?: VmNetworkAttachment;
  forwards: PortForwardRule[];
  shares: ShareState[];
  vmm?: VmmRecord;
  /** An idle VMM ready for the VM's next restore (`VmmOptions.standby`; standby.ts). */
  standby?: VmmRecord;
  /** The VM's uid and cgroup when its VMM runs confined (confinement.ts). */
  confinement?: ConfinementState;
  /** Its extra NICs (`spec.nics`): the TAP is recorded before attach, the address and attachment after. */
  nics?: NicState[];
}

/** One extra NIC of a VM: its TAP, its address on the VM's network, and what the backend attached. */
export interface NicState {
  readonly id: string;
  readonly tap: string;
  ip?: string;
  network?: VmNetworkAttachment;
}

/** A VM's state file: its spec, status, the operation in progress and every host resource it owns. */
export interface VmRecord {
  readonly schema: 1;
  readonly id: string;
  readonly name: string;
  spec: VmSpec;
  status: VmStatus;
  readonly createdAt: string;
  updatedAt: string;
  /** The step in progress, recorded before it runs: after a crash, `reconcile` knows where to pick up. */
  pending?: { op: VmOperation; step: string; since: string };
  resources: VmResources;
  /** Snapshots taken of this VM, oldest first (snapshots.ts). */
  snapshots?: VmSnapshot[];
  lastError?: { code: string; message: string; step?: string; at: string };
}

/** A snapshot of a VM: where its files are, and the spec fields it was taken with (checked at restore). */
export interface VmSnapshot {
  readonly id: string;
  /** The snapshot directory (Cloud Hypervisor's `config.json`, `state.json`, memory files). */
  readonly path: string;
  readonly createdAt: string;
  /** Bytes of every file in `path` when it was taken; a different total at restore means it was changed. */
  readonly sizeBytes: number;
  /** The VM's status when it was taken. */
  readonly status: VmStatus;
  readonly spec: VmSpec;
}

const STATE_FILE = 'state.json';

/** How long `list()` may answer from memory while the changes token stays the same, by default (see `list`). */
const LIST_RECHECK_MS = 1000;

/** Where the changes token is read into: it is 32 hex digits. */
const tokenBuffer = Buffer.alloc(64);

/** Freezes `value` and everything in it; returns it. Records a listing shares between its callers are frozen. */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  return Object.freeze(value);
}

/** How many state files' text `read()` keeps (a few KiB each): enough for every VM of a large host. */
const RECENT_RECORDS = 10_000;

/** A state file's text as read, and the stamp (inode, size, mtime, ctime) of the version it came from. */
interface KeptRecord {
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly text: string;
  /** The record parsed from `text`, frozen, once `readShared` asked for it. */
  record: VmRecord | undefined;
}

function sameStamp(kept: KeptRecord, stat: Stats): boolean {
  return (
    kept.ino === stat.ino &&
    kept.size === stat.size &&
    kept.mtimeMs === stat.mtimeMs &&
    kept.ctimeMs === stat.ctimeMs
  );
}

/** A VM directory whose record cannot be used: never hidden, so that `myhv vm ls` and `gc` can name it. */
export interface UnreadableRecord {
  /** The VM directory's name. */
  readonly name: string;
  /** The file or directory at fault. */
  readonly path: string;
  /** CORRUPT_STATE: missing, unreadable or not a record; UNSAFE_PERMISSIONS: others own it or could write it. */
  readonly code: 'CORRUPT_STATE' | 'UNSAFE_PERMISSIONS';
  readonly reason: string;
}

/** How a `StateStore` lists VMs (listing cache on or off, settle time). */
export interface StateStoreOptions {
  /**
   * Keep `<stateDir>/vms/.listing-cache.json` so that `list()` costs one stat per VM and one file read instead of a
   * read and parse per VM. Every cached record is checked against a fresh stat of its state file. Default true.
   */
  readonly listingCache?: boolean;
  /**
   * State files changed less than this long ago are re-read at every `list()` rather than cached, so a change
   * within one file-system timestamp tick can never hide behind an equal stamp. Default 2000 ms.
   */
  readonly settleMs?: number;
  /**
   * `list()` returns frozen records, the same objects while their state files are unchanged, and answers from memory
   * while no record changed through a StateStore (see `list`): for a long-running process. Default false: every
   * call parses records of the caller's own.
   */
  readonly shareRecords?: boolean;
  /**
   * How long `list()` may answer from memory while the changes token stays the same, that is while no record was
   * changed through a StateStore; changes made otherwise (a state file edited by hand, a mode changed) are seen
   * after at most this long. 0 checks every state file at every listing. Default 1000 ms.
   */
  readonly listRecheckMs?: number;
}

/** How long a passed trust walk of the state directory is relied on while the directories keep their stamps. */
const TRUST_RECHECK_MS = 1000;

/** A directory's identity and permissions as an lstat gives them; undefined when it is missing. */
type DirStamp = Stats | undefined;

const dirStamp = (path: string): DirStamp => lstatSync(path, { throwIfNoEntry: false });

/** True when both stamps are of the same directory (device, inode) with the same owner, mode and change time. */
function sameDir(a: DirStamp, b: DirStamp): boolean {
  if (a === undefined || b === undefined) return a === b;
  return (
    a.ino === b.ino && a.dev === b.dev && a.uid === b.uid && a.mode === b.mode && a.ctimeMs === b.ctimeMs
  );
}

/**
 * One directory per VM under `<stateDir>/vms/<name>/` holding state.json (written atomically), the lock, logs and
 * pid files. Sockets live elsewhere, in a short run directory, because of the 108-byte limit.
 */
export class StateStore {
  readonly stateDir: string;
  readonly root: string;
  readonly #listingCache: boolean;
  readonly #settleMs: number;
  readonly #listRecheckMs: number;
  readonly #shareRecords: boolean;
  /** What the last full trust walk saw of the two directories, and when: see `assertTrusted`. */
  #trusted: { readonly stateDir: DirStamp; readonly root: DirStamp; readonly at: number } | undefined;
  /** State files `read()` parsed, by VM name, with the stamp of the version read (see `#readSync`). */
  readonly #recent = new Map<string, KeptRecord>();
  /** The entries of the last listing, by VM name (records frozen): what the cache file holds, parsed. */
  #entries: Map<string, ListingEntry<VmRecord>> | undefined;
  /** The last listing, the changes token read before it was made, and when (see `list`). */
  #listed:
    | {
        readonly token: string;
        readonly at: number;
        readonly records: readonly VmRecord[];
        readonly unreadable: readonly UnreadableRecord[];
      }
    | undefined;

  constructor(stateDir: string, options: StateStoreOptions = {}) {
    this.stateDir = resolve(stateDir);
    this.root = resolve(stateDir, 'vms');
    this.#listingCache = options.listingCache ?? true;
    this.#settleMs = options.settleMs ?? DEFAULT_SETTLE_MS;
    this.#listRecheckMs = options.listRecheckMs ?? LIST_RECHECK_MS;
    this.#shareRecords = options.shareRecords ?? false;
  }

  // Names are validated VM names (no `/`, no `..`), so concatenation is safe and much cheaper than path.join
  // when listing thousands of VMs.
  vmDir(name: string): string {
    return `${this.root}/${name}`;
  }

  lockPath(name: string): string {
    return `${this.root}/${name}.lock`;
  }

  /** Creates the state directory and `vms/` (0700); UNSAFE_PERMISSIONS when others own or could write them. */
  async init(): Promise<void> {
    ensurePrivateDir(this.stateDir, 'the state directory');
    ensurePrivateDir(this.root, 'the VM records directory');
  }

  /** UNSAFE_PERMISSIONS when the state directory, `vms/` or a directory on the way is not safe to read from. */
  assertTrusted(): void {
    // Every query checks this, and the full walk (an lstat per component of both paths) was a third of a daemon's
    // `vm.get`. Once a walk passed, every directory on the way is owned by root (or us) and writable by nobody
    // else, so only root or we could change them; a directory replaced or re-permissioned changes its stamp. The
    // walk is still redone at least every TRUST_RECHECK_MS, for an ancestor a trusted user loosened by mistake.
    const stateDir = dirStamp(this.stateDir);
    const root = dirStamp(this.root);
    const now = performance.now();
    const last = this.#trusted;
    if (
      last &&
      now - last.at < TRUST_RECHECK_MS &&
      sameDir(last.root, root) &&
      sameDir(last.stateDir, stateDir)
    ) {
      return;
    }
    this.#trusted = undefined;
    assertTrustedDir(this.stateDir, 'the state directory');
    assertTrustedDir(this.root, 'the VM records directory');
    this.#trusted = { stateDir, root, at: now };
  }

  /**
   * `assertTrusted` for a call that only reads one record (`VmManager.get`), which a daemon answers thousands of
   * times a second: between full walks (at most TRUST_RECHECK_MS apart) only `vms/` is checked for being the same
   * directory with the same owner and mode. That is enough for reading: a `vms/` put in its place (by someone a
   * loosened state directory let in) has another inode, and the record read is checked on its own (its directory
   * and file owned by root or us, writable by nobody else, no link). A loosened state directory itself is refused
   * by the next full walk, and at once by `assertTrusted` (every listing and every change).
   */
  assertTrustedToRead(): void {
    const last = this.#trusted;
    if (last && performance.now() - last.at < TRUST_RECHECK_MS && sameDir(last.root, dirStamp(this.root)))
      return;
    this.assertTrusted();
  }

  /** Claims the name: mkdir is atomic, so of two processes creating the same VM exactly one wins. */
  async claim(name: string): Promise<void> {
    try {
      await fs.mkdir(this.vmDir(name), { mode: 0o700 });
      await syncDirectory(this.root);
      this.#changed();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new VmManagerError('ALREADY_EXISTS', `a VM named ${name} already exists`, {
          details: { vm: name },
        });
      }
      throw error;
    }
  }

  /** Replaces the VM's state file atomically (a new inode every time, which the listing cache relies on). */
  async write(record: VmRecord): Promise<void> {
    record.updatedAt = new Date().toISOString();
    this.#recent.delete(record.name);
    await writeFileAtomic(join(this.vmDir(record.name), STATE_FILE), `${JSON.stringify(record, null, 2)}\n`);
    this.#changed();
  }

  /**
   * The record, or undefined when the VM does not exist (or has no state file yet). UNSAFE_PERMISSIONS when the
   * VM's directory or state file is owned by another user or writable by others (or the file is a symbolic link);
   * CORRUPT_STATE when it is no record. (The state directory itself is checked by `init`/`assertTrusted`.)
   */
  async read(name: string): Promise<VmRecord | undefined> {
    return this.#readSync(name, false);
  }

  /**
   * `read()` for callers that only look: the record frozen, and the same object for every call while its state file
   * is unchanged (and settled), like the records of `list()`. Synchronous (see `#readSync`).
   */
  readShared(name: string): VmRecord | undefined {
    return this.#readSync(name, true);
  }

  /**
   * `read()` without the thread pool: a record is a few KiB on a local file system, and five asynchronous round
   * trips (stat, open, fstat, read, close) cost far more than the reads themselves, which is what a daemon
   * answering thousands of `get`s a second pays. A state file read before, unchanged since (same stamp) and
   * settled (see `StateStoreOptions.settleMs`), is taken from memory: two stats instead of five calls. `shared`:
   * the kept record, frozen; otherwise one parsed for this caller from the kept text, its own to change.
   */
  #readSync(name: string, shared: boolean): VmRecord | undefined {
    const dir = this.vmDir(name);
    const path = `${dir}/${STATE_FILE}`;
    const missing = (error: unknown) => {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      if (code === 'ELOOP') throw unsafePermissionsError(symlinkProblem(path), `the record of VM ${name}`);
      throw error;
    };
    // Taken before any stat: a file is kept only if it last changed well before this instant.
    const now = Date.now();
    let dirStat: Stats | undefined;
    try {
      dirStat = statSync(dir);
    } catch (error) {
      this.#recent.delete(name);
      return missing(error);
    }
    const dirProblem = unsafePermission(dir, dirStat);
    if (dirProblem) throw unsafePermissionsError(dirProblem, `the record of VM ${name}`, path);
    const kept = this.#recent.get(name);
    if (kept) {
      const stat = lstatOrUndefined(path);
      if (stat?.isFile() && sameStamp(kept, stat) && !unsafePermission(path, stat)) {
        if (!shared) return parseRecord(kept.text, name);
        kept.record ??= deepFreeze(parseRecord(kept.text, name));
        return kept.record;
      }
      this.#recent.delete(name);
    }
    // O_NOFOLLOW, then fstat: what is checked is what is read.
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (error) {
      return missing(error);
    }
    try {
      const stat = fstatSync(fd);
      const problem = unsafePermission(path, stat);
      if (problem) throw unsafePermissionsError(problem, `the record of VM ${name}`);
      const text = readFileSync(fd, 'utf8');
      const record = parseRecord(text, name);
      if (shared) deepFreeze(record);
      if (stat.isFile() && stat.ctimeMs < now - this.#settleMs) {
        this.#keep(name, stat, text, shared ? record : undefined);
      }
      return record;
    } finally {
      closeSync(fd);
    }
  }

  /** Keeps a settled state file's text for `#readSync`, at most RECENT_RECORDS of them (oldest dropped first). */
  #keep(name: string, stat: Stats, text: string, record: VmRecord | undefined): void {
    if (this.#recent.size >= RECENT_RECORDS) {
      const oldest = this.#recent.keys().next().value;
      if (oldest !== undefined) this.#recent.delete(oldest);
    }
    this.#recent.set(name, {
      ino: stat.ino,
      size: stat.size,
      mtimeMs: stat.mtimeMs,
      ctimeMs: stat.ctimeMs,
      text,
      record,
    });
  }

  /** Names of VM directories, including ones without a state file (a create that died right after claiming). */
  names(): string[] {
    try {
      return readdirSync(this.root, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  /**
   * Every readable record, sorted by name, and every VM directory whose record cannot be used (`unreadable`: no
   * state file, not a record, or others own or could write it). UNSAFE_PERMISSIONS when the state directory is not
   * safe. Synchronous on purpose: for a thousand small files sync calls are several times faster than a thousand
   * promises, and `myhv vm ls` is all about start-up latency.
   *
   * With the listing cache (the default) a VM whose state file has the stamp (inode, size, mtime, ctime) recorded
   * in the cache is not read again; any other is read, and the cache is rewritten when what it should hold changed.
   * With `shareRecords` the records are frozen and shared by the calls that return them while they are unchanged,
   * and a store that listed less than `listRecheckMs` ago answers from memory when the changes token (`vms/.changes`, replaced by
   * every record change of any myhv process) is the one it read then: a daemon answers a listing of a thousand VMs
   * without a stat per VM. Changes made behind myhv's back (a state file edited by hand, a mode changed) are seen
   * within `listRecheckMs`.
   */
  list(): { records: VmRecord[]; unreadable: UnreadableRecord[] } {
    this.assertTrusted();
    if (!this.#listingCache) return this.#listUncached();
    if (!this.#shareRecords) return this.#listCached(readListingCache(this.#cachePath(), isRecordShape));
    const token = this.#changesToken();
    const now = performance.now();
    const last = this.#listed;
    if (last && token !== undefined && last.token === token && now - last.at < this.#listRecheckMs) {
      return { records: [...last.records], unreadable: [...last.unreadable] };
    }
    const listed = this.#listCached(this.#entries ?? readListingCache(this.#cachePath(), isRecordShape));
    this.#listed = token === undefined ? undefined : { token, at: now, ...listed };
    return { records: [...listed.records], unreadable: [...listed.unreadable] };
  }

  #listUncached(): { records: VmRecord[]; unreadable: UnreadableRecord[] } {
    const records: VmRecord[] = [];
    const unreadable: UnreadableRecord[] = [];
    for (const name of this.names()) {
      const checked = this.#check(name);
      if (checked === undefined) continue;
      const record = 'unreadable' in checked ? checked.unreadable : readRecord(this.#statePath(name), name);
      if ('code' in record) unreadable.push(record);
      else records.push(record);
    }
    return { records, unreadable };
  }

  #cachePath(): string {
    return `${this.root}/${LISTING_CACHE_FILE}`;
  }

  /**
   * The listing from the stamps of every state file and `cached`: the cache file's entries, or (`shareRecords`) the
   * entries of this store's last listing, whose records are frozen and handed out again.
   */
  #listCached(cached: Map<string, ListingEntry<VmRecord>>): {
    records: VmRecord[];
    unreadable: UnreadableRecord[];
  } {
    const names = this.names();
    const records: VmRecord[] = [];
    const unreadable: UnreadableRecord[] = [];
    const share = this.#shareRecords;
    // Taken before any stat: a file is cached only if it last changed well before this instant.
    const now = Date.now();
    // Every stat before the cache is parsed: their garbage is then collected while few objects are alive.
    // Stat, then read: should a file be replaced in between, the stamp kept is older than the record, and the next
    // list sees a newer stamp and reads again. (Read, then stat, could pair an old record with a new stamp.)
    const stamps = new FileStamps(names.length);
    // Directories that vanished since readdir (removed meanwhile) are skipped; unsafe ones are never read.
    const skip: (UnreadableRecord | null | undefined)[] = new Array(names.length);
    for (let i = 0; i < names.length; i++) {
      const checked = this.#check(names[i]!);
      if (checked === undefined) skip[i] = null;
      else if ('unreadable' in checked) skip[i] = checked.unreadable;
      else stamps.set(i, checked.stat);
    }
    const next: ListingEntry<VmRecord>[] = [];
    let changed = false;
    let added = false;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const entry = cached.get(name);
      const skipped = skip[i];
      if (skipped !== undefined) {
        if (entry) changed = true;
        if (skipped) unreadable.push(skipped);
        continue;
      }
      if (entry) {
        if (stamps.matches(i, entry)) {
          records.push(share ? deepFreeze(entry[5]) : entry[5]);
          next.push(entry);
          continue;
        }
        changed = true;
      }
      const record = readRecord(this.#statePath(name), name);
      if ('code' in record) {
        unreadable.push(record);
        continue;
      }
      records.push(share ? deepFreeze(record) : record);
      if (stamps.settled(i, now, this.#settleMs)) {
        next.push(stamps.entry(i, name, record));
        added = true;
      }
    }
    // Entries of VMs that are gone are dropped too. A sharing store (a daemon, whose queries the CLI sends to it
    // rather than reading the file) rewrites the file only to add entries: a stale or orphaned entry is harmless,
    // since every entry is checked against its file's stamp, and the listing right after a change stays cheap.
    if (share ? added : added || changed || next.length !== cached.size) {
      writeListingCache(this.#cachePath(), next);
    }
    // The entries are as good as the file's (each is checked against its stamp on use) and need no parse.
    if (share) this.#entries = new Map(next.map((entry) => [entry[0], entry]));
    return { records, unreadable };
  }

  /** The changes token (see CHANGES_FILE): '' when there is none yet, undefined when it cannot be read. */
  #changesToken(): string | undefined {
    let fd: number;
    try {
      fd = openSync(`${this.root}/${CHANGES_FILE}`, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ENOENT' ? '' : undefined;
    }
    try {
      const bytes = readSync(fd, tokenBuffer, 0, tokenBuffer.length, 0);
      return tokenBuffer.toString('latin1', 0, bytes);
    } catch {
      return undefined;
    } finally {
      closeSync(fd);
    }
  }

  /** Tells every store listing these VMs (this one and other processes') that a record changed. */
  #changed(): void {
    this.#listed = undefined;
    writeChangesToken(`${this.root}/${CHANGES_FILE}`, randomBytes(16).toString('hex'));
  }

  #statePath(name: string): string {
    return `${this.root}/${name}/${STATE_FILE}`;
  }

  /**
   * The stat of a VM's state file when the VM directory and the file are safe to read (one lstat each);
   * `unreadable` when not (or the file is missing); undefined when the directory itself is gone.
   */
  #check(name: string): { stat: Stats } | { unreadable: UnreadableRecord } | undefined {
    const dir = this.vmDir(name);
    const dirStat = lstatOrUndefined(dir);
    if (!dirStat) return undefined;
    const dirProblem = unsafePermission(dir, dirStat);
    if (dirProblem) return { unreadable: unsafeRecord(name, dirProblem) };
    const path = this.#statePath(name);
    const stat = lstatOrUndefined(path);
    if (!stat)
      return { unreadable: corruptRecord(name, path, 'no state file (a create that stopped early?)') };
    if (stat.isSymbolicLink()) return { unreadable: unsafeRecord(name, symlinkProblem(path)) };
    const problem = unsafePermission(path, stat);
    if (problem) return { unreadable: unsafeRecord(name, problem) };
    if (!stat.isFile()) return { unreadable: corruptRecord(name, path, 'not a regular file') };
    return { stat };
  }

  /** Removes the VM's directory (logs included) and its lock's leftovers. */
  async remove(name: string): Promise<void> {
    this.#recent.delete(name);
    await fs.rm(this.vmDir(name), { recursive: true, force: true });
    await syncDirectory(this.root).catch(() => undefined);
    this.#changed();
  }

  /** Temp files left in VM directories by writers that died mid-write (and by listing-cache writers). */
  async sweepTempFiles(): Promise<string[]> {
    const removed: string[] = [];
    for (const entry of await fs.readdir(this.root).catch(() => [] as string[])) {
      if (!isListingCacheTemp(entry)) continue;
      await fs.rm(join(this.root, entry), { force: true });
      removed.push(join(this.root, entry));
    }
    for (const name of this.names()) {
      const dir = this.vmDir(name);
      for (const entry of await fs.readdir(dir).catch(() => [] as string[])) {
        if (!isTempFile(entry)) continue;
        await fs.rm(join(dir, entry), { force: true });
        removed.push(join(dir, entry));
      }
    }
    return removed;
  }
}

/** The record in a state file (checked by `#check` first), or why it cannot be read or parsed. */
function readRecord(path: string, name: string): VmRecord | UnreadableRecord {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (error) {
    return corruptRecord(name, path, `cannot be read (${(error as NodeJS.ErrnoException).code ?? error})`);
  }
  try {
    return parseRecord(raw, name);
  } catch (error) {
    return corruptRecord(name, path, String((error as VmManagerError).details.reason));
  }
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

function corruptRecord(name: string, path: string, reason: string): UnreadableRecord {
  return { name, path, code: 'CORRUPT_STATE', reason };
}

function unsafeRecord(name: string, problem: UnsafePermission): UnreadableRecord {
  return {
    name,
    path: problem.path,
    code: 'UNSAFE_PERMISSIONS',
    reason: unsafePermissionsError(problem, `the record of VM ${name}`).message,
  };
}

/** Records are written by rename, never as links: a link could point anywhere. */
function symlinkProblem(path: string): UnsafePermission {
  const stat = lstatOrUndefined(path);
  return {
    path,
    uid: stat?.uid ?? -1,
    mode: (stat?.mode ?? 0) & 0o7777,
    problem: 'a symbolic link, not a file the manager wrote',
    fix: `rm ${path}, or replace it with the file it points to`,
  };
}

function isRecordShape(value: unknown, name: string): value is VmRecord {
  const record = value as Partial<VmRecord> | null;
  return (
    typeof record === 'object' &&
    record !== null &&
    record.schema === 1 &&
    record.name === name &&
    typeof record.id === 'string'
  );
}

function parseRecord(raw: string, name: string): VmRecord {
  let record: unknown;
  try {
    record = JSON.parse(raw);
  } catch (error) {
    throw corruptState(name, `not valid JSON (${(error as Error).message})`, error);
  }
  if (!isRecordShape(record, name)) throw corruptState(name, `not a VM record named ${name}`);
  return record;
}

function corruptState(name: string, reason: string, cause?: unknown): VmManagerError {
  return new VmManagerError('CORRUPT_STATE', `the state file of ${name} cannot be read: ${reason}`, {
    ...(cause === undefined ? {} : { cause }),
    details: { vm: name, reason },
  });
}
