export {
  JsonRpcError,
  type JsonRpcErrorCode,
  type JsonRpcErrorDetails,
  jsonRpcErrorCodes,
} from './errors.js';
export { jsonSafeRecord } from './json-safe.js';
export {
  idFromOversizedLine,
  LineSplitter,
  type LineSplitterHandlers,
  type OversizedLine,
} from './line-splitter.js';
export {
  type JsonSchema,
  jsonSchemaOf,
  type OpenrpcContentDescriptor,
  type OpenrpcDocument,
  type OpenrpcErrorObject,
  type OpenrpcMethod,
  paramsOf,
} from './openrpc.js';
export {
  JSON_RPC_VERSION,
  type JsonRpcErrorObject,
  type JsonRpcId,
  type JsonRpcRequest,
  type JsonRpcResponse,
  JsonText,
  jsonRpcErrorResponseSchema,
  jsonRpcRequestSchema,
  jsonRpcSuccessResponseSchema,
} from './protocol.js';
export {
  type JsonRpcCallOptions,
  JsonRpcClient,
  type JsonRpcClientOptions,
  type JsonRpcNotification,
  type JsonRpcProtocolIssue,
  type JsonRpcProtocolIssueKind,
} from './rpc-client.js';
export {
  type JsonRpcCallContext,
  type JsonRpcConnection,
  type JsonRpcMethodHandler,
  type JsonRpcServer,
  type JsonRpcServerLimits,
  type JsonRpcServerOptions,
  serveJsonRpc,
} from './rpc-server.js';
export { MAX_SOCKET_PATH_BYTES } from './unix-socket.js';
export { VERSION } from './version.js';
