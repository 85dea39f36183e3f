import {
  JsonRpcClient,
  type JsonRpcError,
  type JsonRpcProtocolIssue,
  type JsonRpcProtocolIssueKind,
} from '@my-hypervisor/json-rpc';
import { NetOpsError, type NetOpsErrorCode } from '@my-hypervisor/net-ops';
import { netOpsCodeForRpcCode } from './rpc-errors.js';

/** Where mosnetd listens unless told otherwise. */
export const DEFAULT_SOCKET_PATH = '/var/run/mosnet.sock';
/** How long a call may take by default (ms), unless `timeoutMs` says otherwise. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** The longest response line the client reads by default (bytes); longer lines are dropped. */
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

/** What was wrong with a message from mosnetd that answers no pending call. */
export type MosnetProtocolIssueKind = JsonRpcProtocolIssueKind;

/** Something mosnetd sent that answers no pending call. Reported, never thrown. */
export type MosnetProtocolIssue = JsonRpcProtocolIssue;

/** Where mosnetd listens, the client's time and line limits, and who hears about protocol issues. */
export interface MosnetClientOptions {
  /** mosnetd's Unix socket. Default `/var/run/mosnet.sock`. */
  readonly socketPath?: string;
  /** Default per-call timeout in milliseconds (connecting included). Default 10 000. */
  readonly timeoutMs?: number;
  /** The longest response line accepted, in bytes. Default 1 MiB. */
  readonly maxLineBytes?: number;
  /** Told about lines that answer no pending call (garbage, unknown ids, notifications). Default: ignored. */
  readonly onProtocolError?: (issue: MosnetProtocolIssue) => void;
}

/** Per-call options: cancellation and a timeout for this one call. */
export interface MosnetCallOptions {
  readonly signal?: AbortSignal;
  /** Overrides the client's `timeoutMs` for this call. */
  readonly timeoutMs?: number;
}

const startHint =
  'start mosnetd with its socket there, or serve any BridgeOps/TapOps/NatOps with createMosnetServer() ' +
  'from @my-hypervisor/net-mosnet/server';

/**
 * A JSON-RPC 2.0 client for mosnetd: newline-delimited JSON over a Unix socket, params by name. Calls are pipelined
 * on one connection and matched by id; the connection opens on the first call and is reopened after the daemon
 * restarts. Every failure is a `NetOpsError`.
 */
export class MosnetClient implements AsyncDisposable {
  /** mosnetd's Unix socket. */
  readonly socketPath: string;
  /** The default per-call timeout in milliseconds. */
  readonly timeoutMs: number;
  /** The longest response line accepted, in bytes. */
  readonly maxLineBytes: number;
  readonly #client: JsonRpcClient;

  constructor(options: MosnetClientOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    const {
      socketPath = DEFAULT_SOCKET_PATH,
      timeoutMs = DEFAULT_TIMEOUT_MS,
      maxLineBytes = DEFAULT_MAX_LINE_BYTES,
      onProtocolError,
    } = options;
    this.#client = new JsonRpcClient({
      socketPath,
      timeoutMs,
      maxLineBytes,
      serviceName: 'mosnetd',
      unavailableHint: startHint,
      mapError: netOpsErrorFromJsonRpcError,
      ...(onProtocolError === undefined ? {} : { onProtocolError }),
    });
    this.socketPath = socketPath;
    this.timeoutMs = timeoutMs;
    this.maxLineBytes = maxLineBytes;
  }

  /** True while a connection to the daemon is open and usable. */
  get connected(): boolean {
    return this.#client.connected;
  }

  /** How many connections this client has opened; it grows on each reconnect. */
  get connectionCount(): number {
    return this.#client.connectionCount;
  }

  /** Calls sent and not yet answered. */
  get pendingCalls(): number {
    return this.#client.pendingCalls;
  }

  /**
   * Calls `method` with `params` by name and resolves with the `result`. Rejects with a NetOpsError: the daemon's
   * error mapped by code (see `netOpsCodeForRpcCode`), BACKEND_UNAVAILABLE when the socket cannot be reached
   * or the connection drops before the answer, TIMEOUT after `timeoutMs`, ABORTED when `signal` aborts.
   */
  call(
    method: string,
    params: Readonly<Record<string, unknown>> = {},
    options: MosnetCallOptions = {},
  ): Promise<unknown> {
    return this.#client.call(method, params, options);
  }

  /** Closes the connection; calls still pending reject with ABORTED. Idempotent. */
  close(): Promise<void> {
    return this.#client.close();
  }

  /** The same as `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#client.close();
  }
}

/**
 * The NetOpsError for a failure of the JSON-RPC client: the daemon's error by its JSON-RPC code, connection
 * trouble as BACKEND_UNAVAILABLE, a bad answer as BACKEND_FAILURE. Message and cause are kept; the method goes
 * to `details.command`.
 */
function netOpsErrorFromJsonRpcError(error: JsonRpcError): NetOpsError {
  const { method, ...rest } = error.details;
  const details = method === undefined ? rest : { command: method, ...rest };
  return new NetOpsError(netOpsCodeFor(error), error.message, {
    ...(error.cause === undefined ? {} : { cause: error.cause }),
    details,
  });
}

function netOpsCodeFor(error: JsonRpcError): NetOpsErrorCode {
  switch (error.code) {
    case 'REMOTE_ERROR':
      return netOpsCodeForRpcCode(error.details.rpcCode ?? Number.NaN);
    case 'UNAVAILABLE':
    case 'DISCONNECTED':
      return 'BACKEND_UNAVAILABLE';
    case 'INVALID_ARGUMENT':
    case 'PERMISSION_DENIED':
    case 'TIMEOUT':
    case 'ABORTED':
      return error.code;
    default:
      // MALFORMED_RESPONSE, and the server-side codes a client never sees.
      return 'BACKEND_FAILURE';
  }
}
