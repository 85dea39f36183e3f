export {
  Cluster,
  ClusterError,
  type ClusterErrorCode,
  type ClusterEvent,
  type ClusterOptions,
  type HostInfo,
  type HostRecord,
  type LiveHost,
  type Membership,
  type RegisterOptions,
} from './cluster.js';
export { VERSION } from './version.js';
