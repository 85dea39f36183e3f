const marker = Symbol.for('@my-hypervisor/vm-manager/VmManagerError');

/** Stable error codes: the API. Messages may change between releases; codes do not. */
export type VmManagerErrorCode =
  /** The spec or an argument is invalid; `details.field` names it. Nothing was changed. */
  | 'INVALID_ARGUMENT'
  /** No VM of that name. */
  | 'NOT_FOUND'
  /** A VM of that name exists. */
  | 'ALREADY_EXISTS'
  /** The VM is in a state where the operation makes no sense (start a running VM). */
  | 'WRONG_STATE'
  /** Another process holds the VM's lock and did not release it in time. */
  | 'BUSY'
  /** A host resource conflicts (host port in use by another VM). */
  | 'CONFLICT'
  /** The subnet has no free address. */
  | 'EXHAUSTED'
  /** A network, storage or VMM step failed; the cause carries the backend's error. Completed steps were undone. */
  | 'NETWORK_FAILED'
  | 'STORAGE_FAILED'
  | 'VMM_FAILED'
  /** A state file could not be read. */
  | 'CORRUPT_STATE'
  /**
   * A state or run directory, an ancestor of one, or a file in one (record, lock, IP reservation) is owned by
   * another user or writable by group or others, so whoever can write it could make this process run their
   * programs. `details`: `path`, `uid`, `mode`, `problem`, `fix`. Nothing was read from it or changed.
   */
  | 'UNSAFE_PERMISSIONS'
  /** The file system has no room for what the operation writes (a snapshot). Nothing was changed. */
  | 'NO_SPACE'
  | 'TIMEOUT'
  | 'ABORTED';

/** Machine-readable context of a `VmManagerError`: the field, VM or step it concerns. */
export interface VmManagerErrorDetails {
  readonly field?: string;
  readonly vm?: string;
  readonly step?: string;
  readonly [key: string]: unknown;
}

/** The one error `@my-hypervisor/vm-manager` throws: a stable `code`, `details` and the backend error as `cause`. */
export class VmManagerError extends Error {
  declare readonly [marker]: true;
  override readonly name = 'VmManagerError';
  readonly code: VmManagerErrorCode;
  readonly details: VmManagerErrorDetails;

  constructor(
    code: VmManagerErrorCode,
    message: string,
    options: { cause?: unknown; details?: VmManagerErrorDetails } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
    Object.defineProperty(this, marker, { value: true });
  }

  /** True for a VmManagerError from any installed copy of this package. */
  static isInstance(error: unknown): error is VmManagerError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }
}

export function invalidSpec(field: string, message: string, cause?: unknown): VmManagerError {
  return new VmManagerError('INVALID_ARGUMENT', `${field}: ${message}`, { cause, details: { field } });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  const reason: unknown = signal.reason;
  const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
  throw new VmManagerError(
    timedOut ? 'TIMEOUT' : 'ABORTED',
    timedOut ? 'operation timed out' : 'operation aborted',
    {
      cause: reason,
    },
  );
}
