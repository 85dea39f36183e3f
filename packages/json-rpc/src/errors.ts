const marker = Symbol.for('@my-hypervisor/json-rpc/JsonRpcError');

/** Stable error codes: the API. Messages may change between releases; codes do not. */
export type JsonRpcErrorCode =
  /** An argument is invalid (a socket path too long for a Unix socket); `details.field` names it. */
  | 'INVALID_ARGUMENT'
  /** Another server is listening on the socket path. */
  | 'ADDRESS_IN_USE'
  /** Something other than a socket is at the socket path; it was left alone. */
  | 'NOT_A_SOCKET'
  /** The socket (or its directory) may not be created or connected to by this user. */
  | 'PERMISSION_DENIED'
  /** Listening failed for another reason; `cause` has the system error. */
  | 'LISTEN_FAILED'
  /** Nothing listens at the socket path (no socket, or connection refused). */
  | 'UNAVAILABLE'
  /** The connection closed before the answer came. */
  | 'DISCONNECTED'
  /** The peer answered with a JSON-RPC error; `details.rpcCode`, `details.data` carry it. */
  | 'REMOTE_ERROR'
  /** The peer's answer to this call was not a valid JSON-RPC response, or over the line limit. */
  | 'MALFORMED_RESPONSE'
  | 'TIMEOUT'
  /** The call's signal aborted, or the client was closed. */
  | 'ABORTED';

/** Machine-readable context of a `JsonRpcError`: the method, socket, remote error code and data. */
export interface JsonRpcErrorDetails {
  readonly method?: string;
  readonly socketPath?: string;
  readonly field?: string;
  /** The JSON-RPC error code the peer answered (REMOTE_ERROR). */
  readonly rpcCode?: number;
  /** The `data` member of the peer's error (REMOTE_ERROR). */
  readonly data?: unknown;
  readonly errno?: string;
  readonly [key: string]: unknown;
}

/** The one error `@my-hypervisor/json-rpc` throws: a stable `code`, `details` and the system error as `cause`. */
export class JsonRpcError extends Error {
  declare readonly [marker]: true;
  override readonly name = 'JsonRpcError';
  readonly code: JsonRpcErrorCode;
  readonly details: JsonRpcErrorDetails;

  constructor(
    code: JsonRpcErrorCode,
    message: string,
    options: { cause?: unknown; details?: JsonRpcErrorDetails } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
    Object.defineProperty(this, marker, { value: true });
  }

  /** True for a JsonRpcError from any installed copy of this package. */
  static isInstance(error: unknown): error is JsonRpcError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }
}

/**
 * JSON-RPC 2.0's own error codes (-327xx/-326xx), and the two this package's server adds in the range the spec
 * leaves to servers (-32000…-32099): RATE_LIMITED (over `limits.requestsPerSecond`) and OVERLOADED (over
 * `limits.maxConnections`). Applications keep the rest of that range for their own codes.
 */
export const jsonRpcErrorCodes = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  RATE_LIMITED: -32029,
  OVERLOADED: -32030,
} as const;
