import type { z } from 'zod';
import * as p from './primitives.js';
import * as q from './requests.js';
import * as r from './responses.js';
import * as c from './vm-config.js';

/**
 * Our strict schema for every component of the official OpenAPI description, by its name there. The contract
 * test walks this map against the description; users can validate their own documents with it.
 */
export const chvSchemas = {
  VmmPingResponse: r.vmmPingResponseSchema,
  VmState: p.vmStateSchema,
  VmInfo: r.vmInfoSchema,
  DeviceNode: r.deviceNodeSchema,
  VmCounters: r.vmCountersSchema,
  PciDeviceInfo: r.pciDeviceInfoSchema,
  PayloadConfig: c.payloadConfigSchema,
  VmConfig: c.vmConfigSchema,
  CpuAffinity: c.cpuAffinitySchema,
  CpuFeatures: c.cpuFeaturesSchema,
  CpuTopology: c.cpuTopologySchema,
  CoreSchedulingMode: p.coreSchedulingModeSchema,
  CpusConfig: c.cpusConfigSchema,
  PciSegmentConfig: c.pciSegmentConfigSchema,
  PlatformConfig: c.platformConfigSchema,
  MemoryZoneConfig: c.memoryZoneConfigSchema,
  MemoryConfig: c.memoryConfigSchema,
  TokenBucket: c.tokenBucketSchema,
  RateLimiterConfig: c.rateLimiterConfigSchema,
  RateLimitGroupConfig: c.rateLimitGroupConfigSchema,
  VirtQueueAffinity: c.virtQueueAffinitySchema,
  ImageType: p.imageTypeSchema,
  LockGranularity: p.lockGranularitySchema,
  DiskConfig: c.diskConfigSchema,
  NetConfig: c.netConfigSchema,
  RngConfig: c.rngConfigSchema,
  RtcConfig: c.rtcConfigSchema,
  BalloonConfig: c.balloonConfigSchema,
  FsConfig: c.fsConfigSchema,
  GenericVhostUserConfig: c.genericVhostUserConfigSchema,
  PmemConfig: c.pmemConfigSchema,
  ConsoleMode: p.consoleModeSchema,
  ConsoleConfig: c.consoleConfigSchema,
  SerialConfig: c.serialConfigSchema,
  DebugConsoleConfig: c.debugConsoleConfigSchema,
  DeviceConfig: c.deviceConfigSchema,
  UserDeviceConfig: c.userDeviceConfigSchema,
  TpmConfig: c.tpmConfigSchema,
  VdpaConfig: c.vdpaConfigSchema,
  VsockConfig: c.vsockConfigSchema,
  NumaDistance: c.numaDistanceSchema,
  NumaConfig: c.numaConfigSchema,
  VmResize: q.vmResizeSchema,
  VmResizeDisk: q.vmResizeDiskSchema,
  VmResizeZone: q.vmResizeZoneSchema,
  VmRemoveDevice: q.vmRemoveDeviceSchema,
  VmSnapshotConfig: q.vmSnapshotConfigSchema,
  VmCoredumpData: q.vmCoredumpDataSchema,
  MemoryRestoreMode: p.memoryRestoreModeSchema,
  RestoreConfig: q.restoreConfigSchema,
  ReceiveMigrationData: q.receiveMigrationDataSchema,
  MigrationMode: p.migrationModeSchema,
  VmMemoryZoneUpdateData: q.vmMemoryZoneUpdateDataSchema,
  TimeoutStrategy: p.timeoutStrategySchema,
  SendMigrationData: q.sendMigrationDataSchema,
  VmAddUserDevice: q.vmAddUserDeviceSchema,
  LandlockConfig: c.landlockConfigSchema,
} as const satisfies Record<string, z.ZodType>;

export type ChvSchemaName = keyof typeof chvSchemas;
