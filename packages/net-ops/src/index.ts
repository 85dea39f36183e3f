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
  type AddPortForwardResult,
  type PortForwardRule,
  parsePortForwardRule,
  portForwardKey,
  portForwardRuleSchema,
  type RemovePortForwardResult,
  samePortForward,
} from './port-forward.js';
export type { CreateTapResult, DeleteTapResult, TapOps, TapSpec } from './tap-ops.js';
export {
  formatIPv6,
  type Ipv4Cidr,
  ipv4InCidr,
  ipv4ToNumber,
  isIPv4,
  isIPv6,
  MAX_INTERFACE_NAME_BYTES,
  numberToIPv4,
  parseIPv4Cidr,
  parseIPv6,
  parseVmSubnet,
  validateInterfaceName,
  validateIPv4,
  validateIPv6,
  validateMac,
  validatePort,
} from './validation.js';
export { VERSION } from './version.js';
