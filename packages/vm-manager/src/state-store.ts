import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { PortForwardRule, VmNetworkAttachment } from '@my-hypervisor/net-ops';
import { isTempFile, syncDirectory, writeFileAtomic } from './atomic-file.js';
import { VmManagerError } from './errors.js';
import type { VmSpec } from './spec.js';

export type VmStatus = 'creating' | 'stopped' | 'running' | 'paused' | 'deleting';
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

/**
 * One directory per VM under `<stateDir>/vms/<name>/` holding state.json (written atomically), the lock, logs and
 * pid files. Sockets live elsewhere, in a short run directory, because of the 108-byte limit.
 */
export class StateStore {
  readonly root: string;

  constructor(stateDir: string) {
    this.root = resolve(stateDir, 'vms');
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
   * Every readable record. Synchronous reads on purpose: for a thousand small files they are several times faster
   * than a thousand promises, and `myhv vm ls` is all about start-up latency.
   */
  list(): { records: VmRecord[]; unreadable: string[] } {
    const records: VmRecord[] = [];
    const unreadable: string[] = [];
    for (const name of this.names()) {
      let raw: string;
      try {
        raw = readFileSync(`${this.root}/${name}/${STATE_FILE}`, 'utf8');
      } catch {
        unreadable.push(name);
        continue;
      }
      try {
        records.push(parseRecord(raw, name));
      } catch {
        unreadable.push(name);
      }
    }
    return { records, unreadable };
  }

  /** Removes the VM's directory (logs included) and its lock's leftovers. */
  async remove(name: string): Promise<void> {
    await fs.rm(this.vmDir(name), { recursive: true, force: true });
    await syncDirectory(this.root).catch(() => undefined);
  }

  /** Temp files left in VM directories by writers that died mid-write. */
  async sweepTempFiles(): Promise<string[]> {
    const removed: string[] = [];
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

function parseRecord(raw: string, name: string): VmRecord {
  try {
    const record = JSON.parse(raw) as VmRecord;
    if (record.schema !== 1 || record.name !== name || typeof record.id !== 'string')
      throw new Error('bad shape');
    return record;
  } catch (error) {
    throw new VmManagerError('CORRUPT_STATE', `the state file of ${name} cannot be read`, {
      cause: error,
      details: { vm: name },
    });
  }
}
