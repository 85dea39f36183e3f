export {
  abortError,
  invalidArgument,
  StorageError,
  type StorageErrorCode,
  type StorageErrorDetails,
  type StorageErrorOptions,
  storageErrorCodes,
  throwIfAborted,
} from './errors.js';
export {
  createMemoryStorage,
  MEMORY_BACKEND,
  type MemoryStorage,
  type MemoryStorageOptions,
} from './memory-storage.js';
export { parseShareRecord, recordOf, shareRecordSchema } from './share-record.js';
export {
  invalidArgumentFromZod,
  MAX_SHARE_ID_BYTES,
  MAX_TAG_BYTES,
  parseShareSpec,
  resolveHostPath,
  shareCacheSchema,
  shareSpecSchema,
  type ValidShareSpec,
} from './share-spec.js';
export { MAX_SOCKET_PATH_BYTES, shareSocketPath } from './socket-path.js';
export type {
  JsonValue,
  PreparedShare,
  ReleaseResult,
  ShareCache,
  ShareRecord,
  ShareSpec,
  StorageBackend,
  StorageOperationOptions,
} from './storage-backend.js';
export { VERSION } from './version.js';
