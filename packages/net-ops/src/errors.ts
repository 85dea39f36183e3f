const marker = Symbol.for('@my-hypervisor/net-ops/NetOpsError');

/** Stable error codes: the API. Messages may change between releases; codes do not. */
export type NetOpsErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'CONFLICT'
  | 'UNSUPPORTED'
  | 'PERMISSION_DENIED'
  | 'BACKEND_UNAVAILABLE'
  | 'BACKEND_FAILURE'
  | 'TIMEOUT'
  | 'ABORTED';

/** Every `NetOpsErrorCode`, for exhaustive checks and docs. */
export const netOpsErrorCodes: readonly NetOpsErrorCode[] = [
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'CONFLICT',
  'UNSUPPORTED',
  'PERMISSION_DENIED',
  'BACKEND_UNAVAILABLE',
  'BACKEND_FAILURE',
  'TIMEOUT',
  'ABORTED',
];

/** What a failed command or call left behind, kept for logs (`NetOpsError.details`). */
export interface NetOpsErrorDetails {
  /** The input field at fault, for INVALID_ARGUMENT (`name`, `rule.hostPort`, …). */
  readonly field?: string;
  /** The argv of the command that failed, or the RPC method. */
  readonly command?: readonly string[] | string;
  readonly exitCode?: number;
  readonly stderr?: string;
  /** Anything else a backend wants to keep (an RPC error's `data`, the batch line). */
  readonly [key: string]: unknown;
}

/** What a `NetOpsError` carries besides code and message: the cause and details. */
export interface NetOpsErrorOptions {
  readonly cause?: unknown;
  readonly details?: NetOpsErrorDetails;
}

/** The one error class of net-ops and of every networking backend. */
export class NetOpsError extends Error {
  declare readonly [marker]: true;
  override readonly name = 'NetOpsError';
  readonly code: NetOpsErrorCode;
  readonly details: NetOpsErrorDetails;

  constructor(code: NetOpsErrorCode, message: string, options: NetOpsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
    Object.defineProperty(this, marker, { value: true });
  }

  /** True for a NetOpsError from any installed copy of this package. */
  static isInstance(error: unknown): error is NetOpsError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }

  /** The message plus the command and stderr, for logs; `message` stays short for the CLI. */
  get longMessage(): string {
    const { command, exitCode, stderr } = this.details;
    const parts = [this.message];
    if (command !== undefined) parts.push(`command: ${Array.isArray(command) ? command.join(' ') : command}`);
    if (exitCode !== undefined) parts.push(`exit code: ${exitCode}`);
    if (stderr) parts.push(`stderr: ${stderr.trim()}`);
    return parts.join('\n');
  }
}

/** An `INVALID_ARGUMENT` NetOpsError naming `field` in its message and `details.field`; for backends. */
export function invalidArgument(field: string, message: string, cause?: unknown): NetOpsError {
  return new NetOpsError('INVALID_ARGUMENT', `${field}: ${message}`, { cause, details: { field } });
}

/**
 * Throws ABORTED (or TIMEOUT when the reason is a TimeoutError) if `signal` is aborted. Call it before starting
 * any work, so an aborted call changes nothing.
 */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** The NetOpsError for an aborted signal: TIMEOUT for `AbortSignal.timeout()`, ABORTED otherwise. */
export function abortError(signal: AbortSignal): NetOpsError {
  const reason: unknown = signal.reason;
  const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
  return new NetOpsError(
    timedOut ? 'TIMEOUT' : 'ABORTED',
    timedOut ? 'operation timed out' : 'operation aborted',
    {
      cause: reason,
    },
  );
}
