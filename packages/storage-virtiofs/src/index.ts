export {
  C_VIRTIOFSD_PATH,
  detectVirtiofsd,
  findVirtiofsd,
  INSTALL_HINT,
  LIBEXEC_VIRTIOFSD_PATH,
  virtiofsdCandidates,
} from './detect-virtiofsd.js';
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
export { MAX_SOCKET_PATH_BYTES, type SharePaths, sharePaths } from './run-dir.js';
export { parseShareRecord, shareRecordSchema } from './share-record.js';
export {
  MAX_SHARE_ID_BYTES,
  MAX_TAG_BYTES,
  parseShareSpec,
  resolveHostPath,
  shareSpecSchema,
  type ValidShareSpec,
} from './share-spec.js';
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
export { VIRTIOFSD_BACKEND, VirtioFsStorage, type VirtioFsStorageOptions } from './virtiofs-storage.js';
export { buildVirtiofsdArgs, type VirtiofsdArgsInput } from './virtiofsd-args.js';
export {
  parseVirtiofsdInfo,
  type VirtiofsdFlavour,
  type VirtiofsdInfo,
  type VirtiofsdSandbox,
} from './virtiofsd-info.js';
