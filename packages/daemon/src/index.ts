export { CLUSTER_LABEL, type DaemonClusterOptions } from './cluster-member.js';
export { createDaemon, type Daemon, type DaemonLogEntry, type DaemonOptions } from './daemon.js';
export { VERSION } from './version.js';
export type { WatcherStats } from './vmm-watcher.js';
