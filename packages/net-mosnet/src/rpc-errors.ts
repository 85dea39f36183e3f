import { type JsonRpcErrorObject, jsonSafeRecord } from '@my-hypervisor/json-rpc';
import { NetOpsError, type NetOpsErrorCode, type NetOpsErrorDetails } from '@my-hypervisor/net-ops';

/**
 * The JSON-RPC error codes of the mosnet contract. The -327xx/-326xx codes are JSON-RPC's own; the server range
 * -32000…-32099 is generic BACKEND_FAILURE except the few codes below that name a NetOpsError code, so the
 * conformance-relevant outcomes (NOT_FOUND, CONFLICT, …) survive the trip over the socket.
 */
export const mosnetErrorCodes = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  BACKEND_FAILURE: -32000,
  NOT_FOUND: -32010,
  ALREADY_EXISTS: -32011,
  CONFLICT: -32012,
  PERMISSION_DENIED: -32013,
  UNSUPPORTED: -32014,
} as const;

/** The name of one JSON-RPC error code of the contract (a key of `mosnetErrorCodes`). */
export type MosnetErrorCodeName = keyof typeof mosnetErrorCodes;

const serverRangeCodes: ReadonlyMap<number, NetOpsErrorCode> = new Map([
  [mosnetErrorCodes.NOT_FOUND, 'NOT_FOUND'],
  [mosnetErrorCodes.ALREADY_EXISTS, 'ALREADY_EXISTS'],
  [mosnetErrorCodes.CONFLICT, 'CONFLICT'],
  [mosnetErrorCodes.PERMISSION_DENIED, 'PERMISSION_DENIED'],
  [mosnetErrorCodes.UNSUPPORTED, 'UNSUPPORTED'],
]);

/** The NetOpsError code a JSON-RPC error code stands for. Anything not named by the contract is BACKEND_FAILURE. */
export function netOpsCodeForRpcCode(code: number): NetOpsErrorCode {
  if (code === mosnetErrorCodes.METHOD_NOT_FOUND) return 'UNSUPPORTED';
  if (code === mosnetErrorCodes.INVALID_PARAMS) return 'INVALID_ARGUMENT';
  return serverRangeCodes.get(code) ?? 'BACKEND_FAILURE';
}

/** The JSON-RPC error code a server sends for a NetOpsError code. */
export function rpcCodeForNetOpsCode(code: NetOpsErrorCode): number {
  switch (code) {
    case 'INVALID_ARGUMENT':
      return mosnetErrorCodes.INVALID_PARAMS;
    case 'NOT_FOUND':
    case 'ALREADY_EXISTS':
    case 'CONFLICT':
    case 'PERMISSION_DENIED':
    case 'UNSUPPORTED':
      return mosnetErrorCodes[code];
    default:
      // BACKEND_FAILURE, BACKEND_UNAVAILABLE, TIMEOUT and ABORTED on the daemon's side are all failures of the
      // daemon as the caller sees it; the original code travels in `data.code`.
      return mosnetErrorCodes.BACKEND_FAILURE;
  }
}

/**
 * The NetOpsError for a JSON-RPC error answered to `method`. The daemon's message and `data` are kept
 * (`details.data`, `details.rpcCode`), and `data.field` of an INVALID_ARGUMENT becomes `details.field`.
 */
export function netOpsErrorFromRpcError(error: JsonRpcErrorObject, method: string): NetOpsError {
  const code = netOpsCodeForRpcCode(error.code);
  const data = error.data;
  const field =
    typeof data === 'object' && data !== null && typeof (data as { field?: unknown }).field === 'string'
      ? (data as { field: string }).field
      : undefined;
  const details: NetOpsErrorDetails = {
    command: method,
    rpcCode: error.code,
    ...(data === undefined ? {} : { data }),
    ...(field === undefined ? {} : { field }),
  };
  return new NetOpsError(code, `${method}: ${error.message}`, { details });
}

/** The JSON-RPC error object a server answers for `error` thrown by an ops call. */
export function rpcErrorFromError(error: unknown): JsonRpcErrorObject {
  if (NetOpsError.isInstance(error)) {
    return {
      code: rpcCodeForNetOpsCode(error.code),
      message: error.message,
      data: { ...jsonSafeRecord(error.details), code: error.code },
    };
  }
  return {
    code: mosnetErrorCodes.INTERNAL_ERROR,
    message: error instanceof Error ? error.message : 'internal error',
    data: { code: 'BACKEND_FAILURE' },
  };
}
