import { createHash } from 'node:crypto';
import type { BridgeOps } from './bridge-ops.js';
import type { OperationOptions } from './capabilities.js';
import { NetOpsError, throwIfAborted } from './errors.js';
import type { MyceliumNode } from './mycelium-node.js';
import type {
  NetworkBackend,
  VmIpv6,
  VmNetworkAttachment,
  VmNetworkDetachRequest,
  VmNetworkDetachResult,
  VmNetworkRequest,
} from './network-backend.js';
import type { AddPortForwardResult, PortForwardRule, RemovePortForwardResult } from './port-forward.js';
import { raceSignal } from './race-signal.js';
import type { TapNetwork } from './tap-network.js';
import { formatIPv6, type Ipv6Cidr, parseIPv6Cidr } from './validation.js';

/** Every mycelium address lies in 400::/7; a VM needs a route to it via the bridge. */
export const MYCELIUM_RANGE = '400::/7';

/** What a `MyceliumNetwork` builds on: the IPv4 `TapNetwork` and the host mycelium node. */
export interface MyceliumNetworkOptions {
  /** The IPv4 network VMs join; attach and detach go through it. */
  readonly network: TapNetwork;
  /** Tells the host node's /64. */
  readonly node: MyceliumNode;
  /** Puts `<prefix>::1/64` on the bridge; the network's own BridgeOps by default. Needs `capabilities.ipv6`. */
  readonly bridge?: BridgeOps;
}

/**
 * Parses a node subnet and checks it is a /64 inside 400::/7; anything else is BACKEND_FAILURE (the node answered
 * something a mycelium node never does).
 */
export function parseMyceliumSubnet(value: unknown): Ipv6Cidr {
  let cidr: Ipv6Cidr;
  try {
    cidr = parseIPv6Cidr(value, 'nodeSubnet');
  } catch (error) {
    throw new NetOpsError(
      'BACKEND_FAILURE',
      `the mycelium node subnet ${JSON.stringify(value)} is not a CIDR`,
      {
        cause: error,
        details: { nodeSubnet: value },
      },
    );
  }
  const inRange = (cidr.networkGroups[0]! & 0xfe00) === 0x0400;
  if (cidr.prefixLength !== 64 || !inRange) {
    throw new NetOpsError(
      'BACKEND_FAILURE',
      `the mycelium node subnet ${JSON.stringify(value)} is not a /64 inside ${MYCELIUM_RANGE}`,
      { details: { nodeSubnet: value } },
    );
  }
  return cidr;
}

/**
 * The VM's mycelium address: the node's /64 plus a 64-bit interface id hashed from the VM id. Stable across
 * restarts; never `::0` (the subnet-router anycast) or `::1` (the bridge's gateway).
 */
export function deriveMyceliumAddress(nodeSubnet: string, vmId: string): string {
  if (typeof vmId !== 'string' || vmId.length === 0) throw new TypeError('vmId must be a non-empty string');
  const { networkGroups } = parseMyceliumSubnet(nodeSubnet);
  const hash = createHash('sha256').update(`mycelium:${vmId}`).digest();
  const iid = [0, 2, 4, 6].map((i) => hash.readUInt16BE(i));
  if (iid[0] === 0 && iid[1] === 0 && iid[2] === 0 && iid[3]! <= 1) iid[3] = iid[3]! + 2;
  return formatIPv6([...networkGroups.slice(0, 4), ...iid]);
}

/**
 * A TapNetwork whose VMs also get a mycelium IPv6: an address in the host node's /64, the gateway `<prefix>::1`
 * on the bridge, and a route to 400::/7 via it. The host needs IPv6 forwarding.
 */
export class MyceliumNetwork implements NetworkBackend {
  readonly specificationVersion = 'v1' as const;
  readonly network: TapNetwork;
  readonly #node: MyceliumNode;
  readonly #bridgeOps: BridgeOps;
  #ready: Promise<Ipv6Cidr> | undefined;

  constructor(options: MyceliumNetworkOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    if (typeof options.network?.attach !== 'function')
      throw new TypeError('options.network must be a TapNetwork');
    if (typeof options.node?.nodeSubnet !== 'function')
      throw new TypeError('options.node must implement nodeSubnet');
    this.network = options.network;
    this.#node = options.node;
    this.#bridgeOps = options.bridge ?? options.network.ops.bridge;
    if (typeof this.#bridgeOps?.ensureBridge !== 'function')
      throw new TypeError('options.bridge must implement ensureBridge');
  }

  get bridge(): string {
    return this.network.bridge;
  }

  get subnet(): string {
    return this.network.subnet;
  }

  /** As the IPv4 network's: attach goes through it. */
  get setsTapOwner(): boolean {
    return this.network.setsTapOwner;
  }

  /**
   * Reads the node subnet and puts `<prefix>::1/64` on the bridge, once per instance (shared by concurrent callers,
   * retried after a failure). Returns the node subnet.
   */
  async ensureIpv6(options?: OperationOptions): Promise<Ipv6Cidr> {
    throwIfAborted(options?.signal);
    this.#requireIpv6();
    if (!this.#ready) {
      const ready = (async () => {
        const subnet = parseMyceliumSubnet(await this.#node.nodeSubnet());
        const gateway = formatIPv6([...subnet.networkGroups.slice(0, 7), 1]);
        await this.#bridgeOps.ensureBridge({ ...this.network.bridgeSpec, ipv6Address: `${gateway}/64` });
        return subnet;
      })();
      this.#ready = ready;
      ready.catch(() => {
        if (this.#ready === ready) this.#ready = undefined;
      });
    }
    return raceSignal(this.#ready, options?.signal);
  }

  /**
   * TapNetwork.attach (which validates the request before it touches anything), then the bridge's IPv6 gateway.
   * If the IPv6 step fails, a TAP this call created is detached again.
   */
  async attach(vm: VmNetworkRequest, options?: OperationOptions): Promise<VmNetworkAttachment> {
    throwIfAborted(options?.signal);
    this.#requireIpv6();
    const attachment = await this.network.attach(vm, options);
    let subnet: Ipv6Cidr;
    try {
      subnet = await this.ensureIpv6(options);
    } catch (error) {
      if (attachment.created) {
        const forwards = vm.forwards ? { forwards: vm.forwards } : {};
        // Best effort without the caller's signal: the original error is what the caller needs to see.
        await this.network.detach({ vmId: vm.vmId, tap: attachment.tap, ...forwards }).catch(() => {});
      }
      throw error;
    }
    const ipv6: VmIpv6 = {
      address: deriveMyceliumAddress(`${subnet.network}/64`, vm.vmId),
      prefixLength: 64,
      gateway: formatIPv6([...subnet.networkGroups.slice(0, 7), 1]),
      routes: [MYCELIUM_RANGE],
    };
    return { ...attachment, ipv6 };
  }

  #requireIpv6(): void {
    if (!this.#bridgeOps.capabilities.ipv6) {
      throw new NetOpsError(
        'UNSUPPORTED',
        'the bridge backend cannot put an IPv6 address on the bridge (ipv6)',
      );
    }
  }

  detach(vm: VmNetworkDetachRequest, options?: OperationOptions): Promise<VmNetworkDetachResult> {
    return this.network.detach(vm, options);
  }

  addForward(rule: PortForwardRule, options?: OperationOptions): Promise<AddPortForwardResult> {
    return this.network.addForward(rule, options);
  }

  removeForward(rule: PortForwardRule, options?: OperationOptions): Promise<RemovePortForwardResult> {
    return this.network.removeForward(rule, options);
  }
}
