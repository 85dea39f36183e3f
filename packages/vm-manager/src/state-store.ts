import { promises as fs, readdirSync, readFileSync, type Stats, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isTempFile, syncDirectory, writeFileAtomic } from '@my-hypervisor/host-utils';
import type { PortForwardRule, VmNetworkAttachment } from '@my-hypervisor/net-ops';
import { VmManagerError } from './errors.js';
import {
  DEFAULT_SETTLE_MS,
  FileStamps,
  isListingCacheTemp,
  LISTING_CACHE_FILE,
  type ListingEntry,
  readListingCache,
  writeListingCache,
} from './listing-cache.js';
import type { VmSpec } from './spec.js';

/** The lifecycle status recorded for a VM. */
export type VmStatus = 'creating' | 'stopped' | 'running' | 'paused' | 'deleting';
/** The operation a VM record is in the middle of (or last ran). */
export type VmOperation = 'create' | 'start' | 'stop' | 'delete';

/** What the VMM process is, so a later process can find it again (and never mistake a recycled pid for it). */
export interface VmmRecord {
  readonly socketPath: string;
  readonly pidFile: string;
  readonly logFile: string;
  readonly pid?: number;
  /** Kernel start time of `pid` (/proc/<pid>/stat field 22). */
  readonly startTime?: number;
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
  lastError?: { code: string; message: string; step?: string; at: string };
}

const STATE_FILE = 'state.json';

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
}

/**
 * One directory per VM under `<stateDir>/vms/<name>/` holding state.json (written atomically), the lock, logs and
 * pid files. Sockets live elsewhere, in a short run directory, because of the 108-byte limit.
 */
export class StateStore {
  readonly root: string;
  readonly #listingCache: boolean;
  readonly #settleMs: number;

  constructor(stateDir: string, options: StateStoreOptions = {}) {
    this.root = resolve(stateDir, 'vms');
    this.#listingCache = options.listingCache ?? true;
    this.#settleMs = options.settleMs ?? DEFAULT_SETTLE_MS;
  }

  // Names are validated VM names (no `/`, no `..`), so concatenation is safe and much cheaper than path.join
  // when listing thousands of VMs.
  vmDir(name: string): string {
    return `${this.root}/${name}`;
  }

  lockPath(name: string): string {
    return `${this.root}/${name}.lock`;
  }

  async init(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true, mode: 0o700 });
  }

  /** Claims the name: mkdir is atomic, so of two processes creating the same VM exactly one wins. */
  async claim(name: string): Promise<void> {
    try {
      await fs.mkdir(this.vmDir(name), { mode: 0o700 });
      await syncDirectory(this.root);
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
    await writeFileAtomic(join(this.vmDir(record.name), STATE_FILE), `${JSON.stringify(record, null, 2)}\n`);
  }

  /** The record, or undefined when the VM does not exist (or has no state file yet). */
  async read(name: string): Promise<VmRecord | undefined> {
    let raw: string;
    try {
      raw = await fs.readFile(join(this.vmDir(name), STATE_FILE), 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw error;
    }
    return parseRecord(raw, name);
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
   * Every readable record, sorted by name. Synchronous on purpose: for a thousand small files sync calls are
   * several times faster than a thousand promises, and `myhv vm ls` is all about start-up latency. With the
   * listing cache a VM whose state file has the stamp (inode, size, mtime, ctime) recorded in the cache is not
   * read again; any other is read, and the cache is rewritten when what it should hold changed.
   */
  list(): { records: VmRecord[]; unreadable: string[] } {
    const names = this.names();
    const records: VmRecord[] = [];
    const unreadable: string[] = [];
    if (!this.#listingCache) {
      for (const name of names) {
        const record = readRecord(`${this.root}/${name}/${STATE_FILE}`, name);
        if (record) records.push(record);
        else unreadable.push(name);
      }
      return { records, unreadable };
    }
    const cachePath = `${this.root}/${LISTING_CACHE_FILE}`;
    // Taken before any stat: a file is cached only if it last changed well before this instant.
    const now = Date.now();
    // Every stat before the cache is parsed: their garbage is then collected while few objects are alive.
    // Stat, then read: should a file be replaced in between, the stamp kept is older than the record, and the next
    // list sees a newer stamp and reads again. (Read, then stat, could pair an old record with a new stamp.)
    const stamps = new FileStamps(names.length);
    for (let i = 0; i < names.length; i++) {
      const stat = statOrUndefined(`${this.root}/${names[i]}/${STATE_FILE}`);
      if (stat) stamps.set(i, stat);
    }
    const cached = readListingCache(cachePath, isRecordShape);
    const next: ListingEntry<VmRecord>[] = [];
    let changed = false;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const entry = cached.get(name);
      if (entry) {
        if (stamps.matches(i, entry)) {
          records.push(entry[5]);
          next.push(entry);
          continue;
        }
        changed = true;
      }
      const record = readRecord(`${this.root}/${name}/${STATE_FILE}`, name);
      if (!record) {
        unreadable.push(name);
        continue;
      }
      records.push(record);
      if (stamps.settled(i, now, this.#settleMs)) {
        next.push(stamps.entry(i, name, record));
        changed = true;
      }
    }
    // Entries of VMs that are gone are dropped too.
    if (changed || next.length !== cached.size) writeListingCache(cachePath, next);
    return { records, unreadable };
  }

  /** Removes the VM's directory (logs included) and its lock's leftovers. */
  async remove(name: string): Promise<void> {
    await fs.rm(this.vmDir(name), { recursive: true, force: true });
    await syncDirectory(this.root).catch(() => undefined);
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

/** The record in a state file, or undefined when it cannot be read or parsed. */
function readRecord(path: string, name: string): VmRecord | undefined {
  try {
    return parseRecord(readFileSync(path, 'utf8'), name);
  } catch {
    return undefined;
  }
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
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
  try {
    const record: unknown = JSON.parse(raw);
    if (!isRecordShape(record, name)) throw new Error('bad shape');
    return record;
  } catch (error) {
    throw new VmManagerError('CORRUPT_STATE', `the state file of ${name} cannot be read`, {
      cause: error,
      details: { vm: name },
    });
  }
}
