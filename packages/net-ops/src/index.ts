export type { BridgeOps, BridgePort, BridgeSpec, EnsureBridgeResult } from './bridge-ops.js';
export { type NetOpsCapabilities, noCapabilities, type OperationOptions } from './capabilities.js';
export { DEFAULT_TAP_PREFIX, deriveMac, deriveTapName, formatKernelIpArg } from './derive.js';
export {
  abortError,
  invalidArgument,
  NetOpsError,
  type NetOpsErrorCode,
  type NetOpsErrorDetails,
  type NetOpsErrorOptions,
  netOpsErrorCodes,
  throwIfAborted,
} from './errors.js';
export {
  createMemoryNetOps,
  type MemoryBridgeState,
  type MemoryNetOps,
  type MemoryNetOpsCall,
  type MemoryNetOpsOperation,
  type MemoryNetOpsOptions,
  type MemoryNetOpsSnapshot,
  type MemoryTapState,
} from './memory-net-ops.js';
export {
  DEFAULT_MYCELIUM_ADMIN_URL,
  MyceliumAdminApi,
  type MyceliumAdminApiOptions,
} from './mycelium-admin-api.js';
export {
  deriveMyceliumAddress,
  MYCELIUM_RANGE,
  MyceliumNetwork,
  type MyceliumNetworkOptions,
  parseMyceliumSubnet,
} from './mycelium-network.js';
export type { MyceliumNode } from './mycelium-node.js';
export type { NatOps } from './nat-ops.js';
export type {
  NetworkBackend,
  VmIpv6,
  VmNetworkAttachment,
  VmNetworkDetachRequest,
  VmNetworkDetachResult,
  VmNetworkRequest,
} from './network-backend.js';
export {
  type EgressRule,
  egressRuleSchema,
  isOpenPolicy,
  networkPolicySchema,
  parseNetworkPolicy,
  type VmNetworkPolicy,
  type VmPolicyCounters,
} from './network-policy.js';
export {
  type AddPortForwardResult,
  type PortForwardRule,
  parsePortForwardRule,
  portForwardKey,
  portForwardRuleSchema,
  type RemovePortForwardResult,
  samePortForward,
} from './port-forward.js';
export { type ParsedVmNetworkRequest, TapNetwork, type TapNetworkOptions } from './tap-network.js';
export type { CreateTapResult, DeleteTapResult, TapOps, TapSpec } from './tap-ops.js';
export {
  formatIPv6,
  type Ipv4Cidr,
  type Ipv6Cidr,
  ipv4InCidr,
  ipv4ToNumber,
  isIPv4,
  isIPv6,
  MAX_INTERFACE_NAME_BYTES,
  MAX_MTU,
  MIN_MTU,
  numberToIPv4,
  parseIPv4Cidr,
  parseIPv6,
  parseIPv6Cidr,
  parseVmSubnet,
  type TapOwner,
  validateHostname,
  validateInterfaceName,
  validateIPv4,
  validateIPv6,
  validateMac,
  validateMtu,
  validatePort,
  validateTapOwner,
} from './validation.js';
export { VERSION } from './version.js';
