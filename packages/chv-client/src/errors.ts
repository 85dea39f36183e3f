const marker = Symbol.for('@my-hypervisor/chv-client/ChvApiError');

/**
 * Stable error codes: the API. Messages may change between releases; codes do not.
 *
 * The first eight normalise the VMM's answers across its three error generations; the rest describe the
 * transport and the supervised process.
 */
export type ChvErrorCode =
  /** The VM was never created (or was deleted): `vm.create` first. */
  | 'NOT_CREATED'
  /** No such endpoint, device, disk or memory zone. */
  | 'NOT_FOUND'
  /** Something of that identity already exists (a VM, a device id, a second vsock). */
  | 'CONFLICT'
  /** The request body or the configuration is invalid; nothing changed. */
  | 'INVALID_CONFIG'
  /** The VMM refused for now (a CPU removal is pending, too many connections): retry later. */
  | 'BUSY'
  /** The VM is in a state where the call makes no sense (pause a paused VM, boot a running one). */
  | 'WRONG_STATE'
  /** Any other failure the VMM reported (device setup, kernel, I/O). `messages` says what. */
  | 'INTERNAL'
  /** Our own time budget ran out (per call, or for readiness). */
  | 'TIMEOUT'
  /** The VMM cannot be reached: no socket, connection refused, or the connection died mid-call. */
  | 'UNAVAILABLE'
  /** The caller's AbortSignal fired. */
  | 'ABORTED'
  /** An argument is unusable (socket path too long, bad namespace name); nothing was started. */
  | 'INVALID_ARGUMENT'
  /** The VMM binary could not be started (not found, not executable). */
  | 'SPAWN_FAILED'
  /** The VMM process exited (before it was ready, or while we waited for it); `details` has the log tail. */
  | 'EXITED'
  /** `ChvProcess.attach` found a process that is not our VMM (a recycled pid, another socket). */
  | 'NOT_OURS';

/** Every `ChvErrorCode`, for exhaustive checks and docs. */
export const chvErrorCodes: readonly ChvErrorCode[] = [
  'NOT_CREATED',
  'NOT_FOUND',
  'CONFLICT',
  'INVALID_CONFIG',
  'BUSY',
  'WRONG_STATE',
  'INTERNAL',
  'TIMEOUT',
  'UNAVAILABLE',
  'ABORTED',
  'INVALID_ARGUMENT',
  'SPAWN_FAILED',
  'EXITED',
  'NOT_OURS',
];

/** What a failed call or process left behind, kept for logs (`ChvApiError.details`). */
export interface ChvErrorDetails {
  /** The argument at fault, for INVALID_ARGUMENT. */
  readonly field?: string;
  /** The raw response body, when the VMM answered. */
  readonly body?: string;
  readonly pid?: number;
  readonly exitCode?: number | null;
  readonly exitSignal?: string | null;
  /** The last lines of the VMM's log file and of its stderr, for EXITED and readiness TIMEOUT. */
  readonly logTail?: string;
  readonly stderrTail?: string;
  readonly command?: readonly string[];
  readonly [key: string]: unknown;
}

/** What a `ChvApiError` is built from: cause, HTTP status, endpoint and details. */
export interface ChvApiErrorOptions {
  readonly cause?: unknown;
  /** The HTTP status, when the VMM answered. */
  readonly status?: number;
  /** The VMM's error chain, outermost first (`["Error from API", "The VM could not boot", …]`). */
  readonly messages?: readonly string[];
  readonly method?: 'GET' | 'PUT';
  /** The endpoint path, e.g. `/api/v1/vm.boot`. */
  readonly path?: string;
  readonly details?: ChvErrorDetails;
}

/** The one error class of chv-client: API answers, transport failures and process supervision. */
export class ChvApiError extends Error {
  declare readonly [marker]: true;
  override readonly name = 'ChvApiError';
  readonly code: ChvErrorCode;
  readonly status: number | undefined;
  readonly messages: readonly string[];
  readonly method: 'GET' | 'PUT' | undefined;
  readonly path: string | undefined;
  readonly details: ChvErrorDetails;

  constructor(code: ChvErrorCode, message: string, options: ChvApiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
    this.messages = options.messages ?? [];
    this.method = options.method;
    this.path = options.path;
    this.details = options.details ?? {};
    Object.defineProperty(this, marker, { value: true });
  }

  /** True for a ChvApiError from any installed copy of this package. */
  static isInstance(error: unknown): error is ChvApiError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }

  /** The message plus the request, the VMM's chain and the process tails, for logs. */
  get longMessage(): string {
    const parts = [this.message];
    if (this.method && this.path) parts.push(`request: ${this.method} ${this.path}`);
    if (this.status !== undefined) parts.push(`status: ${this.status}`);
    if (this.messages.length > 0) parts.push(`vmm: ${this.messages.join(': ')}`);
    const { command, exitCode, exitSignal, logTail, stderrTail } = this.details;
    if (command) parts.push(`command: ${command.join(' ')}`);
    if (exitCode !== undefined || exitSignal !== undefined) {
      parts.push(`exit: ${exitSignal ? `signal ${exitSignal}` : `code ${exitCode}`}`);
    }
    if (logTail) parts.push(`log tail:\n${logTail.trimEnd()}`);
    if (stderrTail) parts.push(`stderr tail:\n${stderrTail.trimEnd()}`);
    return parts.join('\n');
  }
}

export function invalidArgument(field: string, message: string, cause?: unknown): ChvApiError {
  return new ChvApiError('INVALID_ARGUMENT', `${field}: ${message}`, { cause, details: { field } });
}

/** The error for an aborted call: TIMEOUT when our own timeout fired, ABORTED when the caller's signal did. */
export function abortError(
  callerSignal: AbortSignal | undefined,
  what: string,
  options: ChvApiErrorOptions = {},
): ChvApiError {
  if (callerSignal?.aborted) {
    return new ChvApiError('ABORTED', `${what} aborted`, { ...options, cause: callerSignal.reason });
  }
  return new ChvApiError('TIMEOUT', `${what} timed out`, options);
}

/** Throws ABORTED if `signal` is already aborted, so an aborted call changes nothing. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortError(signal, what);
}
