export { JsonRpcError, type JsonRpcErrorCode } from '@my-hypervisor/json-rpc';
export {
  createClient,
  type DaemonHello,
  type DaemonStatus,
  type DashboardLogin,
  MyhvClient,
  type MyhvClientOptions,
} from './client.js';
export { daemonErrorCodes, managerErrorFromRpcError, rpcErrorFromError } from './error-codes.js';
export {
  type DaemonMethodDefinition,
  type DaemonMethodName,
  DEFAULT_DAEMON_SOCKET,
  daemonMethodDefinitions,
  EVENT_NOTIFICATION,
  PROGRESS_NOTIFICATION,
} from './methods.js';
export { buildDaemonOpenrpcDocument, DAEMON_API_VERSION } from './openrpc-document.js';
export { VERSION } from './version.js';
