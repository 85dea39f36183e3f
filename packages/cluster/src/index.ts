export {
  type HostBackend,
  type HostVm,
  type HostVmState,
  runHostAgent,
  type VmStatusRecord,
} from './agent.js';
export {
  Cluster,
  ClusterError,
  type ClusterErrorCode,
  type ClusterEvent,
  type ClusterOptions,
  type ClusterVm,
  type HostInfo,
  type HostRecord,
  type LiveHost,
  type Membership,
  type RegisterOptions,
} from './cluster.js';
export { HOST_ID_RULE, isHostId } from './host-id.js';
export {
  type Assignment,
  type ClusterVmSpec,
  type Placement,
  type PlacementStats,
  runPlacement,
} from './placement.js';
export { VERSION } from './version.js';
