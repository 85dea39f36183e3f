export type { JsonRpcId } from '@my-hypervisor/json-rpc';
export { defaultMosnetCapabilities } from './discovery.js';
export { DISCOVER_METHOD, type MosnetMethodName, mosnetMethods } from './methods.js';
export {
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_SOCKET_PATH,
  DEFAULT_TIMEOUT_MS,
  type MosnetCallOptions,
  MosnetClient,
  type MosnetClientOptions,
  type MosnetProtocolIssue,
  type MosnetProtocolIssueKind,
} from './mosnet-client.js';
export { MosnetOps, type MosnetOpsOptions } from './mosnet-ops.js';
export {
  documentForCapabilities,
  type JsonSchema,
  MOSNET_CONTRACT_VERSION,
  type OpenrpcContentDescriptor,
  type OpenrpcDocument,
  type OpenrpcErrorObject,
  type OpenrpcMethod,
  openrpcDocument,
} from './openrpc-document.js';
export { type MosnetErrorCodeName, mosnetErrorCodes } from './rpc-errors.js';
export { VERSION } from './version.js';
