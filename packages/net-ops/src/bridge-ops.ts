import type { NetOpsCapabilities, OperationOptions } from './capabilities.js';

/** The bridge `BridgeOps.ensureBridge` makes sure of: name, gateway address, MTU, IPv6 address. */
export interface BridgeSpec {
  /** Interface name, 1–15 bytes of `[A-Za-z0-9_.-]`. */
  readonly name: string;
  /** The gateway address with its prefix, e.g. `10.62.0.1/24`: set on the bridge, replacing a different one. */
  readonly address: string;
  /** Explicit MTU; without it a bridge follows its smallest port. */
  readonly mtu?: number;
  /**
   * An extra IPv6 gateway address with prefix (e.g. `<prefix>::1/64`), where `capabilities.ipv6` (UNSUPPORTED
   * otherwise). Omitted: the bridge's IPv6 addresses are left as they are.
   */
  readonly ipv6Address?: string;
}

/** What `BridgeOps.ensureBridge` did: the bridge name and whether it was created. */
export interface EnsureBridgeResult {
  readonly name: string;
  /** False when a bridge of that name already existed (and was brought to the spec). */
  readonly created: boolean;
}

/** One interface enslaved to a bridge, as `BridgeOps.listBridgePorts` lists it. */
export interface BridgePort {
  /** The enslaved interface (a TAP, a veth, …). */
  readonly name: string;
}

/** Host bridges. Contract v1. */
export interface BridgeOps {
  readonly specificationVersion: 'v1';
  readonly capabilities: NetOpsCapabilities;
  /**
   * Creates the bridge if missing, sets its address (idempotently), MTU, and brings it up. Calling it again with
   * the same spec changes nothing. Rejects with CONFLICT if `name` exists and is not a bridge.
   */
  ensureBridge(spec: BridgeSpec, options?: OperationOptions): Promise<EnsureBridgeResult>;
  /** The interfaces attached to `bridge`; NOT_FOUND if it does not exist, UNSUPPORTED without the capability. */
  listBridgePorts(bridge: string, options?: OperationOptions): Promise<BridgePort[]>;
}
