import type {
  AddPortForwardResult,
  Ipv4Cidr,
  PortForwardRule,
  RemovePortForwardResult,
} from '@my-hypervisor/net-ops';

/** A bridge whose VMs get NAT: egress masquerade of `subnet`, hairpin, 127.0.0.1 forwards and forward accepts. */
export interface BridgeNatSpec {
  readonly bridge: string;
  readonly subnet: Ipv4Cidr;
  /** Subnets the bridge had before `ensureBridge` replaced its address: their rules go. */
  readonly staleSubnets: readonly Ipv4Cidr[];
}

/** What the nft and iptables drivers each implement; LocalOps validates input before calling them. */
export interface NatDriver {
  prepareBridge(spec: BridgeNatSpec, signal?: AbortSignal): Promise<void>;
  addPortForward(rule: PortForwardRule, signal?: AbortSignal): Promise<AddPortForwardResult>;
  removePortForward(rule: PortForwardRule, signal?: AbortSignal): Promise<RemovePortForwardResult>;
  listPortForwards(signal?: AbortSignal): Promise<PortForwardRule[]>;
}
