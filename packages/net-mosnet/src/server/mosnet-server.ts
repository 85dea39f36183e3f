import { JsonRpcError, serveJsonRpc } from '@my-hypervisor/json-rpc';
import { abortError, NetOpsError, type NetOpsErrorCode, type OperationOptions } from '@my-hypervisor/net-ops';
import { DEFAULT_MAX_LINE_BYTES } from '../mosnet-client.js';
import { rpcErrorFromError } from '../rpc-errors.js';
import { createMethodHandlers, type MosnetServerOps } from './handlers.js';

/** What a mosnet server serves (`ops`), where it listens, its socket mode and line limit. */
export interface MosnetServerOptions {
  /** The ops to expose, e.g. `createMemoryNetOps()` or `new LocalOps()`. */
  readonly ops: MosnetServerOps;
  /** Where to listen. A stale socket there is replaced; a live one or any other file is an error. */
  readonly socketPath: string;
  /** The socket file's mode: who may call. Default 0o600 (the owner only). */
  readonly mode?: number;
  /** The longest request line accepted, in bytes. Default 1 MiB. */
  readonly maxLineBytes?: number;
}

/** A listening mosnet server. */
export interface MosnetServer extends AsyncDisposable {
  readonly socketPath: string;
  /** Open client connections. */
  readonly connections: number;
  /** Stops listening, aborts calls in progress, waits for them, closes connections and removes the socket. */
  close(): Promise<void>;
}

/** How a listen failure of the shared server reads as a NetOpsError. */
const listenCodes: Readonly<Record<string, NetOpsErrorCode>> = {
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  ADDRESS_IN_USE: 'ALREADY_EXISTS',
  NOT_A_SOCKET: 'CONFLICT',
  PERMISSION_DENIED: 'PERMISSION_DENIED',
};

/**
 * Serves `ops` over mosnet's protocol (newline-delimited JSON-RPC 2.0 on a Unix socket, params by name) and
 * resolves once listening. Use it as the peer for `MosnetClient` in tests, or as a mosnet-compatible daemon on
 * hosts without mosnet. Many connections and pipelined requests are served concurrently.
 */
export async function createMosnetServer(
  options: MosnetServerOptions,
  callOptions: OperationOptions = {},
): Promise<MosnetServer> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { ops, socketPath, mode = 0o600, maxLineBytes = DEFAULT_MAX_LINE_BYTES } = options;
  if (typeof ops !== 'object' || ops === null || typeof ops.ensureBridge !== 'function') {
    throw new TypeError('ops must implement BridgeOps, TapOps and NatOps');
  }
  const { signal } = callOptions;
  if (signal?.aborted) throw abortError(signal);
  const handlerFor = createMethodHandlers(ops);
  try {
    return await serveJsonRpc({
      socketPath,
      mode,
      maxLineBytes,
      tempPrefix: '.mosnet-',
      methods: (method) => {
        const handler = handlerFor(method);
        // mosnet has no $/cancel: the connection's signal (closed, or the server closing) is the one that matters.
        return handler && ((params, context) => handler(params, context.connection.signal));
      },
      errorFor: rpcErrorFromError,
      closingReason: () => new NetOpsError('ABORTED', 'the mosnet server is closing'),
    });
  } catch (error) {
    if (!JsonRpcError.isInstance(error)) throw error;
    throw new NetOpsError(listenCodes[error.code] ?? 'BACKEND_FAILURE', error.message, {
      cause: error,
      details: { ...error.details },
    });
  }
}
