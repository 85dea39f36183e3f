import { type JsonRpcErrorObject, jsonRpcErrorCodes, jsonSafeRecord } from '@my-hypervisor/json-rpc';
import { VmManagerError, type VmManagerErrorCode } from '@my-hypervisor/vm-manager';

/**
 * The JSON-RPC error code of each VmManagerError code: INVALID_ARGUMENT is JSON-RPC's own INVALID_PARAMS, the rest
 * sit in the range JSON-RPC leaves to servers. `data.code` always carries the VmManagerError code by name, and
 * `data.details` its details, so a client rebuilds the same error.
 */
export const daemonErrorCodes = {
  INVALID_ARGUMENT: jsonRpcErrorCodes.INVALID_PARAMS,
  NOT_FOUND: -32001,
  ALREADY_EXISTS: -32002,
  WRONG_STATE: -32003,
  BUSY: -32004,
  CONFLICT: -32005,
  EXHAUSTED: -32006,
  NETWORK_FAILED: -32007,
  STORAGE_FAILED: -32008,
  VMM_FAILED: -32009,
  CORRUPT_STATE: -32010,
  UNSAFE_PERMISSIONS: -32011,
  NO_SPACE: -32012,
  TIMEOUT: -32013,
  ABORTED: -32014,
} as const satisfies Record<VmManagerErrorCode, number>;

const codeNames = new Set<string>(Object.keys(daemonErrorCodes));

/** The JSON-RPC error the daemon answers for `error`. Anything but a VmManagerError is INTERNAL_ERROR. */
export function rpcErrorFromError(error: unknown): JsonRpcErrorObject {
  if (VmManagerError.isInstance(error)) {
    return {
      code: daemonErrorCodes[error.code],
      message: error.message,
      data: { code: error.code, details: jsonSafeRecord(error.details) },
    };
  }
  return {
    code: jsonRpcErrorCodes.INTERNAL_ERROR,
    message: error instanceof Error ? error.message : 'internal error',
  };
}

/**
 * The VmManagerError a JSON-RPC error stands for, or undefined when it is none of the daemon's (a protocol
 * error, an internal error).
 */
export function managerErrorFromRpcError(error: JsonRpcErrorObject): VmManagerError | undefined {
  const data = error.data as { code?: unknown; details?: unknown } | undefined;
  if (
    typeof data !== 'object' ||
    data === null ||
    typeof data.code !== 'string' ||
    !codeNames.has(data.code)
  ) {
    return undefined;
  }
  const details =
    typeof data.details === 'object' && data.details !== null
      ? (data.details as Record<string, unknown>)
      : {};
  return new VmManagerError(data.code as VmManagerErrorCode, error.message, { details });
}
