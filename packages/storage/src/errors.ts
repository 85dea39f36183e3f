const marker = Symbol.for('@my-hypervisor/storage/StorageError');

/** Stable error codes: the API. Messages may change between releases; codes do not. */
export type StorageErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'UNSUPPORTED'
  | 'BINARY_MISSING'
  | 'START_FAILED'
  | 'STOP_FAILED'
  | 'TIMEOUT'
  | 'ABORTED';

/** Every StorageErrorCode, for exhaustive checks and docs. */
export const storageErrorCodes: readonly StorageErrorCode[] = [
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'UNSUPPORTED',
  'BINARY_MISSING',
  'START_FAILED',
  'STOP_FAILED',
  'TIMEOUT',
  'ABORTED',
];

/** What a failed start or stop left behind, kept for logs (`StorageError.details`). */
export interface StorageErrorDetails {
  /** The input field at fault, for INVALID_ARGUMENT and UNSUPPORTED (`tag`, `hostPath`, `readOnly`, …). */
  readonly field?: string;
  /** The argv of the daemon or command that failed. */
  readonly command?: readonly string[];
  readonly pid?: number;
  readonly exitCode?: number | null;
  readonly signal?: string | null;
  /** The last lines the daemon wrote to stderr (its log file in detached mode). */
  readonly stderr?: string;
  /** Anything else worth keeping (the share id, the socket path, a partial release result). */
  readonly [key: string]: unknown;
}

/** The optional parts of a StorageError: the error it wraps and what to keep for logs. */
export interface StorageErrorOptions {
  readonly cause?: unknown;
  readonly details?: StorageErrorDetails;
}

/** The one error class of the storage contract: every StorageBackend rejects with it. */
export class StorageError extends Error {
  declare readonly [marker]: true;
  override readonly name = 'StorageError';
  readonly code: StorageErrorCode;
  readonly details: StorageErrorDetails;

  constructor(code: StorageErrorCode, message: string, options: StorageErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
    Object.defineProperty(this, marker, { value: true });
  }

  /** True for a StorageError from any installed copy of this package. */
  static isInstance(error: unknown): error is StorageError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }

  /** The message plus the command, exit status and stderr, for logs; `message` stays short for the CLI. */
  get longMessage(): string {
    const { command, exitCode, signal, stderr } = this.details;
    const parts = [this.message];
    if (command !== undefined) parts.push(`command: ${command.join(' ')}`);
    if (exitCode !== undefined && exitCode !== null) parts.push(`exit code: ${exitCode}`);
    if (signal) parts.push(`signal: ${signal}`);
    if (stderr) parts.push(`stderr: ${stderr.trim()}`);
    return parts.join('\n');
  }
}

/** INVALID_ARGUMENT naming `field` in `details.field` and in the message (`field: message`). */
export function invalidArgument(field: string, message: string, cause?: unknown): StorageError {
  return new StorageError('INVALID_ARGUMENT', `${field}: ${message}`, { cause, details: { field } });
}

/**
 * Throws ABORTED (or TIMEOUT when the reason is a TimeoutError) if `signal` is aborted. Call it before starting
 * any work, so an aborted call changes nothing.
 */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** The StorageError for an aborted signal: TIMEOUT for `AbortSignal.timeout()`, ABORTED otherwise. */
export function abortError(signal: AbortSignal, details?: StorageErrorDetails): StorageError {
  const reason: unknown = signal.reason;
  const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
  return new StorageError(
    timedOut ? 'TIMEOUT' : 'ABORTED',
    timedOut ? 'operation timed out' : 'operation aborted',
    { cause: reason, ...(details ? { details } : {}) },
  );
}
