export { writeFileAtomic } from './atomic-file.js';
export { CRASH_AFTER_ENV } from './crash-hook.js';
export { VmManagerError, type VmManagerErrorCode, type VmManagerErrorDetails } from './errors.js';
export type { StatusEvent, StepEvent, VmEvent } from './events.js';
export { FileLock } from './file-lock.js';
export { FORWARD_OWNER_PREFIX, forwardOwner, vmIdOfForwardOwner } from './forward-owner.js';
export { allocateBridgeIp, IpAllocator, type IpReservation } from './ip-allocator.js';
export {
  type OperationOptions,
  type VmInfo,
  VmManager,
  type VmManagerOptions,
} from './manager.js';
export type { ReconcileChange, ReconcileKind, ReconcileReport } from './reconcile.js';
export {
  type ForwardSpec,
  MIN_MEMORY_BYTES,
  parseForwardSpec,
  parseMemorySize,
  parseVmSpec,
  type VmSpec,
  type VmSpecInput,
  vmSpecSchema,
} from './spec.js';
export type { ShareState, VmmRecord, VmOperation, VmRecord, VmResources, VmStatus } from './state-store.js';
export { StateStore, type StateStoreOptions } from './state-store.js';
export { VERSION } from './version.js';
export { buildVmConfig, kernelCmdline } from './vm-config.js';
export type { VmmOptions } from './vmm.js';
