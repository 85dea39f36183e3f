import {
  type AddPortForwardResult,
  type BridgeOps,
  type BridgePort,
  type BridgeSpec,
  type CreateTapResult,
  type DeleteTapResult,
  type EnsureBridgeResult,
  type NatOps,
  type NetOpsCapabilities,
  NetOpsError,
  noCapabilities,
  type OperationOptions,
  type PortForwardRule,
  parsePortForwardRule,
  portForwardKey,
  type RemovePortForwardResult,
  samePortForward,
  type TapOps,
  type TapSpec,
  throwIfAborted,
  validateInterfaceName,
} from '@my-hypervisor/net-ops';

export interface FakeOpsCall {
  readonly op: string;
  readonly args: readonly unknown[];
}

/**
 * A small in-memory BridgeOps & TapOps & NatOps for unit tests: contract semantics for the cases the tests need,
 * every call recorded, optional latency, and capabilities to taste.
 */
export class FakeOps implements BridgeOps, TapOps, NatOps {
  readonly specificationVersion = 'v1' as const;
  capabilities: NetOpsCapabilities;
  readonly calls: FakeOpsCall[] = [];
  readonly bridges = new Map<string, BridgeSpec>();
  readonly taps = new Map<string, { bridge?: string; multiQueue: boolean; up: boolean }>();
  readonly forwards = new Map<string, PortForwardRule>();
  /** Milliseconds every call waits before acting (honouring the signal). */
  delayMs = 0;
  /** Thrown by the next call instead of acting. */
  failNext: unknown;

  constructor(capabilities: Partial<NetOpsCapabilities> = {}) {
    this.capabilities = {
      ...noCapabilities,
      listBridgePorts: true,
      listPortForwards: true,
      multiQueue: true,
      tapOwner: true,
      ipv6: true,
      ...capabilities,
    };
  }

  async ensureBridge(spec: BridgeSpec, options: OperationOptions = {}): Promise<EnsureBridgeResult> {
    await this.#enter('ensureBridge', [spec], options);
    validateInterfaceName(spec.name, 'name');
    if (this.taps.has(spec.name)) throw new NetOpsError('CONFLICT', `${spec.name} is not a bridge`);
    const created = !this.bridges.has(spec.name);
    this.bridges.set(spec.name, spec);
    return { name: spec.name, created };
  }

  async listBridgePorts(bridge: string, options: OperationOptions = {}): Promise<BridgePort[]> {
    await this.#enter('listBridgePorts', [bridge], options);
    if (!this.capabilities.listBridgePorts) throw new NetOpsError('UNSUPPORTED', 'no listing');
    if (!this.bridges.has(bridge)) throw new NetOpsError('NOT_FOUND', `no bridge ${bridge}`);
    return [...this.taps].filter(([, tap]) => tap.bridge === bridge).map(([name]) => ({ name }));
  }

  async createTap(spec: TapSpec, options: OperationOptions = {}): Promise<CreateTapResult> {
    await this.#enter('createTap', [spec], options);
    if (spec.bridge !== undefined && !this.bridges.has(spec.bridge)) {
      throw new NetOpsError('NOT_FOUND', `no bridge ${spec.bridge}`);
    }
    if (this.bridges.has(spec.name)) throw new NetOpsError('CONFLICT', `${spec.name} is a bridge`);
    const multiQueue = spec.multiQueue ?? false;
    const existing = this.taps.get(spec.name);
    if (existing && existing.multiQueue !== multiQueue) {
      throw new NetOpsError('CONFLICT', `${spec.name} has the other queue mode`);
    }
    this.taps.set(spec.name, { bridge: spec.bridge, multiQueue, up: spec.bridge !== undefined });
    return { name: spec.name, created: !existing };
  }

  async addToBridge(tap: string, bridge: string, options: OperationOptions = {}): Promise<void> {
    await this.#enter('addToBridge', [tap, bridge], options);
    const entry = this.taps.get(tap);
    if (!entry || !this.bridges.has(bridge)) throw new NetOpsError('NOT_FOUND', 'missing');
    entry.bridge = bridge;
  }

  async bringUp(tap: string, options: OperationOptions = {}): Promise<void> {
    await this.#enter('bringUp', [tap], options);
    const entry = this.taps.get(tap);
    if (!entry) throw new NetOpsError('NOT_FOUND', 'missing');
    entry.up = true;
  }

  async deleteTap(name: string, options: OperationOptions = {}): Promise<DeleteTapResult> {
    await this.#enter('deleteTap', [name], options);
    return { name, existed: this.taps.delete(name) };
  }

  async addPortForward(rule: PortForwardRule, options: OperationOptions = {}): Promise<AddPortForwardResult> {
    await this.#enter('addPortForward', [rule], options);
    const parsed = parsePortForwardRule(rule);
    const existing = this.forwards.get(portForwardKey(parsed));
    if (existing && !samePortForward(existing, parsed)) throw new NetOpsError('CONFLICT', 'port taken');
    this.forwards.set(portForwardKey(parsed), parsed);
    return { created: !existing };
  }

  async removePortForward(
    rule: PortForwardRule,
    options: OperationOptions = {},
  ): Promise<RemovePortForwardResult> {
    await this.#enter('removePortForward', [rule], options);
    const parsed = parsePortForwardRule(rule);
    const existing = this.forwards.get(portForwardKey(parsed));
    if (!existing) return { existed: false };
    if (!samePortForward(existing, parsed)) throw new NetOpsError('CONFLICT', 'someone else’s forward');
    this.forwards.delete(portForwardKey(parsed));
    return { existed: true };
  }

  async listPortForwards(options: OperationOptions = {}): Promise<PortForwardRule[]> {
    await this.#enter('listPortForwards', [], options);
    if (!this.capabilities.listPortForwards) throw new NetOpsError('UNSUPPORTED', 'no listing');
    return [...this.forwards.values()];
  }

  async #enter(op: string, args: readonly unknown[], options: OperationOptions): Promise<void> {
    this.calls.push({ op, args });
    throwIfAborted(options.signal);
    if (this.failNext !== undefined) {
      const error = this.failNext;
      this.failNext = undefined;
      throw error;
    }
    if (this.delayMs > 0) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, this.delayMs);
        options.signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(new NetOpsError('ABORTED', 'aborted', { cause: options.signal?.reason }));
        });
      });
    }
  }
}
