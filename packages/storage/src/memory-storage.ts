import { setTimeout as sleep } from 'node:timers/promises';
import { abortError, invalidArgument, StorageError, throwIfAborted } from './errors.js';
import { parseShareRecord, recordOf } from './share-record.js';
import { parseShareSpec, resolveHostPath } from './share-spec.js';
import { shareSocketPath } from './socket-path.js';
import type {
  PreparedShare,
  ReleaseResult,
  ShareRecord,
  ShareSpec,
  StorageBackend,
  StorageOperationOptions,
} from './storage-backend.js';

/** `ShareRecord.backend` of the in-memory reference. */
export const MEMORY_BACKEND = 'memory';

/** How `createMemoryStorage()` behaves; every option has a default. */
export interface MemoryStorageOptions {
  /** Where the (never created) socket paths point. Default `/run/myhv-memory`. */
  readonly runDir?: string;
  /** Simulated time until a share is ready, in ms; abortable. Default 0. */
  readonly startDelayMs?: number;
  /** Whether `readOnly` shares are served; when false they are rejected with UNSUPPORTED. Default true. */
  readonly supportsReadOnly?: boolean;
  /** Called before each start: return a StorageError to make that prepare fail (rollback tests). */
  readonly failPrepare?: (share: ShareSpec) => StorageError | undefined;
}

/** The in-memory reference StorageBackend, plus hooks that simulate what real daemons do. */
export interface MemoryStorage extends StorageBackend {
  /** Simulates the daemon exiting on its own (its front-end disconnected): adopt → NOT_FOUND, release still cleans. */
  crash(id: string): boolean;
  /** Ids whose simulated daemon is running. */
  running(): string[];
}

interface Entry {
  readonly record: ShareRecord;
  running: boolean;
}

const releasedNothing: ReleaseResult = Object.freeze({
  stopped: false,
  killed: false,
  socketRemoved: false,
  pidFileRemoved: false,
  logRemoved: false,
});

/**
 * An in-memory StorageBackend that validates like a real one (the host path must exist) but starts no
 * process. For the VM manager's unit tests and as the conformance kit's reference.
 */
export function createMemoryStorage(options: MemoryStorageOptions = {}): MemoryStorage {
  const { runDir = '/run/myhv-memory', startDelayMs = 0, supportsReadOnly = true, failPrepare } = options;
  const entries = new Map<string, Entry>();
  const starting = new Set<string>();

  const parseOwnRecord = (input: unknown): ShareRecord => {
    const record = parseShareRecord(input);
    if (record.backend !== MEMORY_BACKEND) {
      throw invalidArgument('record.backend', `${JSON.stringify(record.backend)} is not a memory record`);
    }
    if (record.socketPath !== shareSocketPath(runDir, record.id)) {
      throw invalidArgument('record.socketPath', 'the record belongs to another runDir');
    }
    return record;
  };

  const toPrepared = (record: ShareRecord): PreparedShare => ({
    id: record.id,
    tag: record.tag,
    socketPath: record.socketPath,
    requiresSharedMemory: true,
    record,
  });

  return {
    specificationVersion: 'v1',

    async prepare(share: ShareSpec, { signal }: StorageOperationOptions = {}): Promise<PreparedShare> {
      throwIfAborted(signal);
      const spec = parseShareSpec(share);
      const socketPath = shareSocketPath(runDir, spec.id);
      const hostPath = await resolveHostPath(spec.hostPath);
      if (spec.readOnly && !supportsReadOnly) {
        throw new StorageError('UNSUPPORTED', 'readOnly: this backend cannot serve read-only shares', {
          details: { field: 'readOnly' },
        });
      }
      if (entries.get(spec.id)?.running || starting.has(spec.id)) {
        throw new StorageError('ALREADY_EXISTS', `share ${spec.id} is already prepared`, {
          details: { field: 'id', id: spec.id },
        });
      }
      throwIfAborted(signal);
      starting.add(spec.id);
      try {
        const injected = failPrepare?.(share);
        if (injected) throw injected;
        if (startDelayMs > 0) {
          await sleep(startDelayMs, undefined, signal ? { signal } : {}).catch(() => {
            throw abortError(signal!, { id: spec.id });
          });
        }
        throwIfAborted(signal);
        const record: ShareRecord = {
          backend: MEMORY_BACKEND,
          id: spec.id,
          tag: spec.tag,
          socketPath,
          hostPath,
          readOnly: spec.readOnly,
          cache: spec.cache,
          preparedAt: new Date().toISOString(),
        };
        entries.set(spec.id, { record, running: true });
        return toPrepared(record);
      } finally {
        starting.delete(spec.id);
      }
    },

    async release(
      share: PreparedShare | ShareRecord,
      { signal }: StorageOperationOptions = {},
    ): Promise<ReleaseResult> {
      throwIfAborted(signal);
      const record = parseOwnRecord(recordOf(share));
      const entry = entries.get(record.id);
      if (!entry) return releasedNothing;
      entries.delete(record.id);
      // The simulated daemon had a socket and a pid file; it logs nowhere.
      return {
        stopped: entry.running,
        killed: false,
        socketRemoved: true,
        pidFileRemoved: true,
        logRemoved: false,
      };
    },

    async adopt(input: ShareRecord, { signal }: StorageOperationOptions = {}): Promise<PreparedShare> {
      throwIfAborted(signal);
      const record = parseOwnRecord(input);
      const entry = entries.get(record.id);
      if (!entry?.running) {
        throw new StorageError('NOT_FOUND', `share ${record.id} is not running`, {
          details: { id: record.id },
        });
      }
      return toPrepared(entry.record);
    },

    async list({ signal }: StorageOperationOptions = {}): Promise<ShareRecord[]> {
      throwIfAborted(signal);
      return [...entries.values()]
        .map((entry) => entry.record)
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    },

    crash(id: string): boolean {
      const entry = entries.get(id);
      if (!entry?.running) return false;
      entry.running = false;
      return true;
    },

    running(): string[] {
      return [...entries.values()].filter((entry) => entry.running).map((entry) => entry.record.id);
    },
  };
}
