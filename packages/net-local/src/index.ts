export type { CommandResult, CommandRunner, CommandRunOptions } from './command-runner.js';
export { execaRunner } from './command-runner.js';
export { LocalOps, localOpsCapabilities } from './local-ops.js';
export type { LocalOpsOptions } from './local-ops-options.js';
export { NamespaceNetwork, type NamespaceNetworkOptions } from './namespace-network.js';
export type { HostPort } from './namespace-ruleset.js';
export { VERSION } from './version.js';
