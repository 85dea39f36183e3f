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
export type { Lenient } from './schemas/lenient.js';
export type {
  ConsoleMode,
  CoreSchedulingMode,
  ImageType,
  LockGranularity,
  MemoryRestoreMode,
  MigrationMode,
  TimeoutStrategy,
  VmState,
} from './schemas/primitives.js';
export type {
  ReceiveMigrationData,
  RestoreConfig,
  SendMigrationData,
  VmAddUserDevice,
  VmCoredumpData,
  VmMemoryZoneUpdateData,
  VmRemoveDevice,
  VmResize,
  VmResizeDisk,
  VmResizeZone,
  VmSnapshotConfig,
} from './schemas/requests.js';
export type { DeviceNode, PciDeviceInfo, VmCounters, VmInfo, VmmPingResponse } from './schemas/responses.js';
export type {
  BalloonConfig,
  ConsoleConfig,
  CpuAffinity,
  CpuFeatures,
  CpusConfig,
  CpuTopology,
  DebugConsoleConfig,
  DeviceConfig,
  DiskConfig,
  FsConfig,
  GenericVhostUserConfig,
  LandlockConfig,
  MemoryConfig,
  MemoryZoneConfig,
  NetConfig,
  NumaConfig,
  NumaDistance,
  PayloadConfig,
  PciSegmentConfig,
  PlatformConfig,
  PmemConfig,
  RateLimiterConfig,
  RateLimitGroupConfig,
  RngConfig,
  RtcConfig,
  SerialConfig,
  TokenBucket,
  TpmConfig,
  UserDeviceConfig,
  VdpaConfig,
  VirtQueueAffinity,
  VmConfig,
  VsockConfig,
} from './schemas/vm-config.js';
export type { ChvErrorGeneration, ChvServerVersion } from './server-version.js';
export { VERSION } from './version.js';
export { type CheckVmmBinaryOptions, checkVmmBinary, type VmmBinaryInfo } from './vmm-binary.js';
export { confineCommand, MAX_CONFINED_ID, type VmmConfinement, validateConfinement } from './vmm-confine.js';
