export {
  type ConfinementMode,
  type ConfinementOptions,
  type ConfinementState,
  type ConfinementSupport,
  confinementSupport,
  DEFAULT_UID_BASE,
  DEFAULT_UID_COUNT,
  ownsVmmUid,
  type VmLimits,
  vmLimits,
} from './confinement.js';
export { ensurePrivateDir, findUnsafePermissions, type UnsafePermission } from './dir-trust.js';
export { VmManagerError, type VmManagerErrorCode, type VmManagerErrorDetails } from './errors.js';
export type { JournalEvent, JournalOptions, JournalReadOptions, JournalStats } from './event-journal.js';
export type { JournalEntry, StatusEvent, StepEvent, VmEvent, VmmEvent } from './events.js';
export { vmIdOfForwardOwner } from './forward-owner.js';
export type { HostProbe } from './host-probe.js';
export type { DiskRequest, NicRequest, ShareRequest, VmDevices } from './hotplug.js';
export { VmManager } from './manager.js';
export type { OperationOptions, VmManagerOptions } from './manager-options.js';
export type { NetworkDrift } from './network-drift.js';
export {
  DEFAULT_NETWORK,
  type NetworkRecord,
  NetworkStore,
  validateNetworkName,
} from './network-store.js';
export type { ReconcileChange, ReconcileKind, ReconcileReport } from './reconcile.js';
export type { ResizeRequest } from './resize.js';
export { runSerialRelayCli } from './serial-console.js';
export {
  type ForwardSpec,
  networkName,
  parseForwardSpec,
  parseVmSpec,
  type VmSpec,
  type VmSpecInput,
  vmSpecSchema,
} from './spec.js';
export type {
  ShareState,
  UnreadableRecord,
  VmmRecord,
  VmOperation,
  VmRecord,
  VmResources,
  VmSnapshot,
  VmStatus,
} from './state-store.js';
export { VERSION } from './version.js';
export type { VmInfo } from './vm-info.js';
export type { ProcessStats, VmStats } from './vm-stats.js';
export type { RestoreMemory, VmmOptions } from './vmm.js';
