export {
  type ChvCallOptions,
  ChvClient,
  type ChvClientOptions,
  DEFAULT_LONG_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
} from './chv-client.js';
export {
  ChvProcess,
  type ChvProcessAttachOptions,
  type ChvProcessExit,
  type ChvProcessSpawnOptions,
  type StopOptions,
  type StopResult,
  type StopRung,
} from './chv-process.js';
export { API_ROOT, type ChvEndpoint, type ChvResponseKind, chvEndpoints, findEndpoint } from './endpoints.js';
export { classifyApiError, parseErrorBody } from './error-classify.js';
export {
  ChvApiError,
  type ChvApiErrorOptions,
  type ChvErrorCode,
  type ChvErrorDetails,
  chvErrorCodes,
} from './errors.js';
export {
  type ChvEvent,
  type ChvEventStream,
  type ChvEventStreamOptions,
  parseEventStream,
} from './event-stream.js';
export { type WaitForApiReadyOptions, waitForApiReady } from './readiness.js';
export * from './schemas/index.js';
export {
  type ChvErrorGeneration,
  type ChvServerVersion,
  errorGeneration,
  parseServerVersion,
} from './server-version.js';
export { MAX_SOCKET_PATH_BYTES, validateSocketPath } from './socket-path.js';
export { VERSION } from './version.js';
export { type CheckVmmBinaryOptions, checkVmmBinary, type VmmBinaryInfo } from './vmm-binary.js';
