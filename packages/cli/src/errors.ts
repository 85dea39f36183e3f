const marker = Symbol.for('@my-hypervisor/cli/CliError');

/** Stable error codes: the API. Messages may change between releases; codes do not. */
export type CliErrorCode =
  /** The command line is wrong: a missing argument, conflicting flags. Exit 2. */
  | 'USAGE'
  /** A flag, environment variable, config file or spec file value is invalid; `details.field` names it. Exit 2. */
  | 'INVALID_ARGUMENT'
  /** The command needs root. Exit 1. */
  | 'NOT_ROOT'
  /** The command starts a VMM and none is chosen: no cloud-hypervisor on PATH, nothing configured. Exit 1. */
  | 'VMM_NOT_FOUND'
  /** The operation ran and failed (the demo could not make its namespace or clean up). Exit 1. */
  | 'FAILED'
  /** What the command would remove is still used (an image VMs were made from); `--force` overrides. Exit 1. */
  | 'IN_USE'
  /** A wait ran out (`--wait-ready`); what was started keeps running. Exit 1. */
  | 'TIMEOUT'
  /** SIGINT or SIGTERM stopped the command; it cleaned up first. Exit 130. */
  | 'INTERRUPTED'
  /** myhvd does not answer on its socket (`myhv daemon status`). Exit 1. */
  | 'DAEMON_UNAVAILABLE';

/** Every `CliErrorCode`, for exhaustive checks and docs. */
export const cliErrorCodes: readonly CliErrorCode[] = [
  'USAGE',
  'INVALID_ARGUMENT',
  'NOT_ROOT',
  'VMM_NOT_FOUND',
  'FAILED',
  'IN_USE',
  'TIMEOUT',
  'INTERRUPTED',
  'DAEMON_UNAVAILABLE',
];

/** What a `CliError` says besides its message: the field at fault and what to do about it. */
export interface CliErrorDetails {
  /** The flag, variable, config key or spec field at fault (`--memory`, `MYHV_SUBNET`, `network.forwards[0]`). */
  readonly field?: string;
  /** What to do about it, one line. */
  readonly hint?: string;
  readonly [key: string]: unknown;
}

export interface CliErrorOptions {
  readonly cause?: unknown;
  readonly details?: CliErrorDetails;
}

/** The one error class of the CLI. Errors of the libraries it drives pass through with their own codes. */
export class CliError extends Error {
  declare readonly [marker]: true;
  override readonly name = 'CliError';
  readonly code: CliErrorCode;
  readonly details: CliErrorDetails;

  constructor(code: CliErrorCode, message: string, options: CliErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
    Object.defineProperty(this, marker, { value: true });
  }

  /** True for a CliError from any installed copy of this package. */
  static isInstance(error: unknown): error is CliError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }
}

/** A bad value: names the field and says how to fix it. */
export function invalidValue(field: string, message: string, hint?: string, cause?: unknown): CliError {
  return new CliError('INVALID_ARGUMENT', `${field}: ${message}`, {
    cause,
    details: hint === undefined ? { field } : { field, hint },
  });
}

export function usageError(message: string, hint?: string): CliError {
  return new CliError('USAGE', message, hint === undefined ? {} : { details: { hint } });
}
