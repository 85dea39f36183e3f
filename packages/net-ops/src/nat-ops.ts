import type { NetOpsCapabilities, OperationOptions } from './capabilities.js';
import type { AddPortForwardResult, PortForwardRule, RemovePortForwardResult } from './port-forward.js';

/** Host port forwarding (DNAT plus whatever makes it really work). Contract v1. */
export interface NatOps {
  readonly specificationVersion: 'v1';
  readonly capabilities: NetOpsCapabilities;
  /**
   * Installs the forward. The identical rule again is `created: false`; a different rule on the same protocol and
   * host port is CONFLICT.
   */
  addPortForward(rule: PortForwardRule, options?: OperationOptions): Promise<AddPortForwardResult>;
  /**
   * Removes the forward on the rule's protocol and host port. None there: `existed: false`. One there that
   * targets another guest address or port: CONFLICT (it belongs to someone else).
   */
  removePortForward(rule: PortForwardRule, options?: OperationOptions): Promise<RemovePortForwardResult>;
  /** Every installed forward; UNSUPPORTED without `capabilities.listPortForwards`. */
  listPortForwards(options?: OperationOptions): Promise<PortForwardRule[]>;
}
