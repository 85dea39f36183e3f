import type { OperationOptions } from './capabilities.js';
import type { VmNetworkPolicy, VmPolicyCounters } from './network-policy.js';
import type { AddPortForwardResult, PortForwardRule, RemovePortForwardResult } from './port-forward.js';

/** What the VM manager asks for when a VM joins the network. IP allocation happens before, outside. */
export interface VmNetworkRequest {
  /** Stable VM id; the TAP name and MAC derive from it unless given. */
  readonly vmId: string;
  /** The guest IPv4 the caller allocated, inside the backend's subnet. */
  readonly ipv4: string;
  /** Override the derived TAP name. */
  readonly tap?: string;
  /** Override the derived MAC. */
  readonly mac?: string;
  /** A multi-queue TAP, for VMs with more than one queue pair. */
  readonly multiQueue?: boolean;
  /** Guest hostname for the kernel `ip=` argument. */
  readonly hostname?: string;
  /**
   * Port forwards to install once the TAP is up, each with `guestIp` equal to `ipv4`. If one fails, attach removes
   * the forwards it added and the TAP it created before rethrowing.
   */
  readonly forwards?: readonly PortForwardRule[];
  /**
   * Isolation and egress. Backends whose `enforcesPolicy` is not true reject anything but the open policy with
   * UNSUPPORTED, so a VM is never believed isolated when it is not.
   */
  readonly policy?: VmNetworkPolicy;
  /**
   * The TAP is created persistent and owned by this uid/gid (an existing one of another owner is made again), so an
   * unprivileged VMM running as them can attach to it without CAP_NET_ADMIN. Backends whose `setsTapOwner` is not
   * true reject it with UNSUPPORTED, so a VMM is never started unable to reach its TAP.
   */
  readonly tapOwner?: { readonly uid: number; readonly gid: number };
}

/** A VM's IPv6 address: address, prefix length, gateway and the routes the guest needs. */
export interface VmIpv6 {
  readonly address: string;
  readonly prefixLength: number;
  readonly gateway: string;
  /** Routes the guest needs via `gateway`, e.g. `400::/7` for mycelium. */
  readonly routes: readonly string[];
}

/** Everything the VMM config and the guest need about a VM's network. */
export interface VmNetworkAttachment {
  readonly tap: string;
  readonly mac: string;
  readonly bridge: string;
  readonly ipv4: string;
  readonly gateway: string;
  readonly prefixLength: number;
  readonly netmask: string;
  /** `ip=<guest>::<gw>:<mask>:<host>:eth0:off`, for the kernel command line. */
  readonly kernelIpArg: string;
  readonly ipv6?: VmIpv6;
  /** False when the TAP already existed (a repeated attach) and was adopted. */
  readonly created: boolean;
  /** The network namespace the TAP is in, where the VMM must run; absent: the manager's own. */
  readonly netns?: string;
}

/** What `NetworkBackend.detach` removes: the TAP and the forwards given to `attach`. */
export interface VmNetworkDetachRequest {
  readonly vmId: string;
  readonly tap?: string;
  /** Port forwards to remove before the TAP (those given to `attach`); missing ones are skipped. */
  readonly forwards?: readonly PortForwardRule[];
  /** The address `attach` was given; backends that key per-VM state by it look it up when it is absent. */
  readonly ipv4?: string;
}

/** What `NetworkBackend.detach` did: the TAP and whether it existed. */
export interface VmNetworkDetachResult {
  readonly tap: string;
  /** False when the TAP was already gone. */
  readonly existed: boolean;
}

/** The per-VM network API the VM manager uses. Contract v1. */
export interface NetworkBackend {
  readonly specificationVersion: 'v1';
  /** The bridge VMs join. */
  readonly bridge: string;
  /** The IPv4 subnet VMs are addressed from (the caller allocates inside it; network + 1 is the gateway). */
  readonly subnet: string;
  /** Ensures the bridge, creates the VM's TAP and attaches it; undoes its own partial work on failure. */
  attach(vm: VmNetworkRequest, options?: OperationOptions): Promise<VmNetworkAttachment>;
  /** Deletes the VM's TAP; a TAP that is already gone is not an error. */
  detach(vm: VmNetworkDetachRequest, options?: OperationOptions): Promise<VmNetworkDetachResult>;
  addForward(rule: PortForwardRule, options?: OperationOptions): Promise<AddPortForwardResult>;
  removeForward(rule: PortForwardRule, options?: OperationOptions): Promise<RemovePortForwardResult>;
  /** True when `attach` honours `tapOwner`. */
  readonly setsTapOwner?: boolean;
  /** True when `attach` enforces `policy` (isolation, egress). */
  readonly enforcesPolicy?: boolean;
  /** What the policy dropped for a VM so far; where `enforcesPolicy`. A VM without state reads as zeros. */
  policyCounters?(vmId: string, options?: OperationOptions): Promise<VmPolicyCounters>;
  /**
   * The VM ids this backend holds per-VM state for beyond bridge ports (e.g. a network namespace), so a sweep can
   * detach the ones no record owns.
   */
  listAttached?(options?: OperationOptions): Promise<string[]>;
}
