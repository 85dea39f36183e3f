const marker = Symbol.for('@my-hypervisor/guest-image/GuestImageError');

/** Stable error codes: the API. Messages may change between releases; codes do not. */
export type GuestImageErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NO_PAYLOAD'
  | 'UNSUPPORTED_COMPRESSION'
  | 'DECOMPRESS_FAILED'
  | 'NOT_ELF'
  | 'NO_PVH_NOTE'
  | 'TRUNCATED'
  | 'TOO_LARGE'
  | 'TOOL_MISSING'
  | 'FETCH_FAILED'
  | 'BAD_PACKAGE'
  | 'MODULE_NOT_FOUND'
  | 'NOT_FOUND'
  | 'CORRUPT_IMAGE'
  | 'UNSAFE_PERMISSIONS'
  | 'ABORTED'
  | 'TIMEOUT';

/** Every GuestImageErrorCode, for exhaustive checks and docs. */
export const guestImageErrorCodes: readonly GuestImageErrorCode[] = [
  'INVALID_ARGUMENT',
  'NO_PAYLOAD',
  'UNSUPPORTED_COMPRESSION',
  'DECOMPRESS_FAILED',
  'NOT_ELF',
  'NO_PVH_NOTE',
  'TRUNCATED',
  'TOO_LARGE',
  'TOOL_MISSING',
  'FETCH_FAILED',
  'BAD_PACKAGE',
  'MODULE_NOT_FOUND',
  'NOT_FOUND',
  'CORRUPT_IMAGE',
  'UNSAFE_PERMISSIONS',
  'ABORTED',
  'TIMEOUT',
];

/** What to keep for logs (`GuestImageError.details`). */
export interface GuestImageErrorDetails {
  /** The input field at fault, for INVALID_ARGUMENT. */
  readonly field?: string;
  /** The argv of the command that failed. */
  readonly command?: readonly string[];
  readonly exitCode?: number | null;
  readonly signal?: string | null;
  readonly stderr?: string;
  /** Anything else worth keeping (a path, a package name, a module name). */
  readonly [key: string]: unknown;
}

/** The optional parts of a GuestImageError: the error it wraps and what to keep for logs. */
export interface GuestImageErrorOptions {
  readonly cause?: unknown;
  readonly details?: GuestImageErrorDetails;
}

/** The one error class of this package. */
export class GuestImageError extends Error {
  declare readonly [marker]: true;
  override readonly name = 'GuestImageError';
  readonly code: GuestImageErrorCode;
  readonly details: GuestImageErrorDetails;

  constructor(code: GuestImageErrorCode, message: string, options: GuestImageErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
    Object.defineProperty(this, marker, { value: true });
  }

  /** True for a GuestImageError from any installed copy of this package. */
  static isInstance(error: unknown): error is GuestImageError {
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
export function invalidArgument(field: string, message: string, cause?: unknown): GuestImageError {
  return new GuestImageError('INVALID_ARGUMENT', `${field}: ${message}`, { cause, details: { field } });
}

/** Throws ABORTED (or TIMEOUT for `AbortSignal.timeout()`) if `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** The GuestImageError for an aborted signal: TIMEOUT for `AbortSignal.timeout()`, ABORTED otherwise. */
export function abortError(signal: AbortSignal): GuestImageError {
  const reason: unknown = signal.reason;
  const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
  return new GuestImageError(
    timedOut ? 'TIMEOUT' : 'ABORTED',
    timedOut ? 'operation timed out' : 'operation aborted',
    { cause: reason },
  );
}
