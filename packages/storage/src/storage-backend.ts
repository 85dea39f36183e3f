/** Options every async operation takes, last. */
export interface StorageOperationOptions {
  readonly signal?: AbortSignal;
}

/** How the daemon caches file data and metadata. `never` keeps the host page cache out (Cloud Hypervisor's advice). */
export type ShareCache = 'never' | 'auto' | 'always';

/** One shared folder as the VM manager asks for it. */
export interface ShareSpec {
  /** Unique per share on this host, e.g. `${vmId}-${tag}`; names the socket and pid files. [A-Za-z0-9_.-], ≤ 64 bytes. */
  readonly id: string;
  /** An absolute path that exists and is a directory once symlinks are resolved. */
  readonly hostPath: string;
  /** What the guest mounts (`mount -t virtiofs <tag> /mnt`): 1–36 bytes of [A-Za-z0-9_.-]. */
  readonly tag: string;
  /** Serve the folder read-only. Rejected with UNSUPPORTED where the backend cannot enforce it. */
  readonly readOnly?: boolean;
  /** Default `never`. */
  readonly cache?: ShareCache;
}

/** A JSON value: what a ShareRecord may carry in `details`. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/**
 * A JSON-serialisable description of a prepared share. The VM manager stores it and passes it back to `adopt()` or
 * `release()`, possibly from another process. Backends put what they need to find their daemon in `details`.
 */
export interface ShareRecord {
  /** Which backend wrote the record (`virtiofsd`, `memory`, …); a backend rejects records that are not its own. */
  readonly backend: string;
  readonly id: string;
  /** The guest tag; empty only for leftovers `list()` found without their record. */
  readonly tag: string;
  readonly socketPath: string;
  /** The resolved (symlink-free) host path. */
  readonly hostPath: string;
  readonly readOnly: boolean;
  readonly cache: ShareCache;
  /** The daemon's process id, where there is one. */
  readonly pid?: number;
  /** ISO 8601 time the share was prepared. */
  readonly preparedAt: string;
  /** Backend-specific data (binary, flavour, process start time, …). */
  readonly details?: { readonly [key: string]: JsonValue };
}

/** A share whose daemon is listening: everything the VMM needs to attach it. */
export interface PreparedShare {
  readonly id: string;
  readonly tag: string;
  /** What Cloud Hypervisor's `fs[]` entry needs (`{ tag, socket: socketPath }`). */
  readonly socketPath: string;
  /** vhost-user devices need the guest memory shared: the VMM must set `memory.shared = true`. */
  readonly requiresSharedMemory: true;
  readonly pid?: number;
  /** JSON-serialisable record the VM manager stores and later passes to adopt()/release(). */
  readonly record: ShareRecord;
}

/** What `release()` cleaned up. All false when there was nothing left to clean. */
export interface ReleaseResult {
  /** A running daemon was found and stopped. */
  readonly stopped: boolean;
  /** It ignored SIGTERM within the grace period and was sent SIGKILL. */
  readonly killed: boolean;
  readonly socketRemoved: boolean;
  readonly pidFileRemoved: boolean;
  readonly logRemoved: boolean;
}

/**
 * Shared folders for VMs, one daemon per share. Contract v1.
 *
 * Errors are `StorageError`s with stable codes; an aborted signal rejects with ABORTED (TIMEOUT for
 * `AbortSignal.timeout()`) and leaves nothing behind.
 */
export interface StorageBackend {
  readonly specificationVersion: 'v1';
  /**
   * Validates `share`, starts its daemon and resolves once the socket listens. INVALID_ARGUMENT for bad input,
   * ALREADY_EXISTS while a live share with the same id exists, UNSUPPORTED for an option the backend cannot honour.
   * Leftovers of a dead share with the same id are cleaned first.
   */
  prepare(share: ShareSpec, options?: StorageOperationOptions): Promise<PreparedShare>;
  /**
   * Stops the daemon (if still running) and removes its files. Idempotent: releasing a released or dead share
   * reports nothing stopped and still removes leftovers.
   */
  release(share: PreparedShare | ShareRecord, options?: StorageOperationOptions): Promise<ReleaseResult>;
  /** Takes over a share prepared earlier, possibly by another process. NOT_FOUND when its daemon is gone. */
  adopt(record: ShareRecord, options?: StorageOperationOptions): Promise<PreparedShare>;
  /** Every share not yet released, live or dead, so reconcile can release the ones no VM owns. */
  list(options?: StorageOperationOptions): Promise<ShareRecord[]>;
}
