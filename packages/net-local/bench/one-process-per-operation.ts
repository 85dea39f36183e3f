import type {
  AddPortForwardResult,
  BridgeOps,
  BridgePort,
  CreateTapResult,
  DeleteTapResult,
  EnsureBridgeResult,
  NatOps,
  PortForwardRule,
  RemovePortForwardResult,
  TapOps,
  TapSpec,
} from '@my-hypervisor/net-ops';
import type { CommandRunner } from '../src/index.js';
import { localOpsCapabilities } from '../src/index.js';

/**
 * The benchmark's baseline: the operations LocalOps performs for a VM, but each as its own process, the way a
 * straightforward implementation would run them (`ip tuntap add`, `ip link set … mtu … master`, `ip link set …
 * hairpin on`, `ip link set … up`, `nft create element …`): the same commands, not batched. The bridge and nft table are prepared beforehand.
 */
export class OneProcessPerOperation implements BridgeOps, TapOps, NatOps {
  readonly specificationVersion = 'v1' as const;
  readonly capabilities = localOpsCapabilities;
  readonly #netns: string;
  readonly #runner: CommandRunner;
  readonly #bridgeMtu = 1500;

  constructor({ netns, runner }: { netns: string; runner: CommandRunner }) {
    this.#netns = netns;
    this.#runner = runner;
  }

  async #ip(...args: string[]): Promise<void> {
    const result = await this.#runner('ip', ['-n', this.#netns, ...args]);
    if (result.exitCode !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr}`);
  }

  async #nft(command: string): Promise<void> {
    const result = await this.#runner('ip', ['netns', 'exec', this.#netns, 'nft', command]);
    if (result.exitCode !== 0) throw new Error(`nft ${command}: ${result.stderr}`);
  }

  async ensureBridge(spec: { name: string }): Promise<EnsureBridgeResult> {
    return { name: spec.name, created: false }; // prepared by LocalOps before timing starts
  }

  async listBridgePorts(): Promise<BridgePort[]> {
    throw new Error('not used by the benchmark');
  }

  async createTap(spec: TapSpec): Promise<CreateTapResult> {
    await this.#ip('tuntap', 'add', 'dev', spec.name, 'mode', 'tap');
    // Like LocalOps, skip setting the MTU a new TAP already has (1500).
    if (spec.mtu !== undefined && spec.mtu !== 1500) {
      await this.#ip('link', 'set', 'dev', spec.name, 'mtu', String(spec.mtu));
    }
    return { name: spec.name, created: true };
  }

  async addToBridge(tap: string, bridge: string): Promise<void> {
    await this.#ip('link', 'set', 'dev', tap, 'mtu', String(this.#bridgeMtu), 'master', bridge);
    await this.#ip('link', 'set', 'dev', tap, 'type', 'bridge_slave', 'hairpin', 'on');
  }

  async bringUp(tap: string): Promise<void> {
    await this.#ip('link', 'set', 'dev', tap, 'up');
  }

  async deleteTap(name: string): Promise<DeleteTapResult> {
    await this.#ip('link', 'del', 'dev', name);
    return { name, existed: true };
  }

  async addPortForward(rule: PortForwardRule): Promise<AddPortForwardResult> {
    await this.#nft(
      `create element inet myhv forwards { ${rule.protocol} . ${rule.hostPort} : ${rule.guestIp} . ${rule.guestPort} }`,
    );
    return { created: true };
  }

  async removePortForward(rule: PortForwardRule): Promise<RemovePortForwardResult> {
    await this.#nft(`delete element inet myhv forwards { ${rule.protocol} . ${rule.hostPort} }`);
    return { existed: true };
  }

  async listPortForwards(): Promise<PortForwardRule[]> {
    throw new Error('not used by the benchmark');
  }
}
