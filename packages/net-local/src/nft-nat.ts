import {
  type AddPortForwardResult,
  NetOpsError,
  type PortForwardRule,
  portForwardKey,
  type RemovePortForwardResult,
  samePortForward,
} from '@my-hypervisor/net-ops';
import { commandError } from './command-error.js';
import type { HostCommands } from './host-commands.js';
import { IptablesBatcher } from './iptables-batcher.js';
import { forwardConflict, type IptablesNames } from './iptables-model.js';
import type { BridgeNatSpec, NatDriver } from './nat-driver.js';
import { NftBatcher } from './nft-batcher.js';
import {
  nftAddForwardLines,
  nftBridgeLines,
  nftRemoveForwardLines,
  nftStructure,
  parseNftForwards,
} from './nft-ruleset.js';
import { SharedRead } from './shared-read.js';

const isCode = (error: unknown, code: string) => NetOpsError.isInstance(error) && error.code === code;

/**
 * NAT through our own nftables table (`inet myhv`; never `flush ruleset`, never another table): every forward is one
 * element of one map, so adding or removing one costs the same with 10 or 10,000 installed. Where an iptables
 * FORWARD chain would drop our traffic anyway (Docker sets its policy to DROP), the bridge also gets accepts in a
 * `MYHV-FORWARD` iptables chain: an accept in our table cannot overrule a drop in another.
 */
export class NftNat implements NatDriver {
  readonly #host: HostCommands;
  readonly #table: string;
  readonly #batcher: NftBatcher;
  readonly #iptables: IptablesBatcher;
  readonly #forwards: SharedRead<PortForwardRule[]>;

  constructor(host: HostCommands, { table, iptables }: { table: string; iptables: IptablesNames }) {
    this.#host = host;
    this.#table = table;
    this.#batcher = new NftBatcher(host, () => nftStructure(table));
    this.#iptables = new IptablesBatcher(host, iptables);
    this.#forwards = new SharedRead(() => this.#readForwards());
  }

  async prepareBridge(spec: BridgeNatSpec, signal?: AbortSignal): Promise<void> {
    await Promise.all([
      this.#batcher.run(
        nftBridgeLines(this.#table, spec.bridge, spec.subnet, spec.staleSubnets),
        'always',
        signal,
      ),
      this.#acceptWhereIptablesDrops(spec, signal),
    ]);
  }

  async #acceptWhereIptablesDrops(spec: BridgeNatSpec, signal?: AbortSignal): Promise<void> {
    try {
      await this.#iptables.run((model) => {
        if (model.forwardDrops) model.prepareBridge(spec.bridge, spec.subnet, { filterOnly: true });
      }, signal);
    } catch (error) {
      // No iptables on this host: then no iptables FORWARD chain can drop our traffic either.
      if (NetOpsError.isInstance(error) && error.details.missingProgram !== undefined) return;
      throw error;
    }
  }

  async addPortForward(rule: PortForwardRule, signal?: AbortSignal): Promise<AddPortForwardResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#batcher.run(nftAddForwardLines(this.#table, rule), 'if-not-applied', signal);
        return { created: true };
      } catch (error) {
        // The table vanished under us (someone deleted it): load the structure again, once.
        if (isCode(error, 'NOT_FOUND') && attempt === 0) {
          this.#batcher.invalidateStructure();
          continue;
        }
        if (!isCode(error, 'ALREADY_EXISTS')) throw error;
      }
      const installed = (await this.#forwards.get()).find((r) => portForwardKey(r) === portForwardKey(rule));
      if (installed) {
        if (samePortForward(installed, rule)) return { created: false };
        throw forwardConflict(portForwardKey(rule), installed, 'add');
      }
      // Removed between our create and our read: try again, a few times.
      if (attempt >= 3) throw new NetOpsError('BACKEND_FAILURE', `${portForwardKey(rule)} keeps changing`);
      signal = undefined;
    }
  }

  async removePortForward(rule: PortForwardRule, signal?: AbortSignal): Promise<RemovePortForwardResult> {
    const installed = (await this.#forwards.get(signal)).find(
      (r) => portForwardKey(r) === portForwardKey(rule),
    );
    if (!installed) return { existed: false };
    if (!samePortForward(installed, rule)) throw forwardConflict(portForwardKey(rule), installed, 'remove');
    try {
      await this.#batcher.run(nftRemoveForwardLines(this.#table, installed), 'if-not-applied');
      return { existed: true };
    } catch (error) {
      // Removed by a concurrent call between our read and our delete.
      if (isCode(error, 'NOT_FOUND')) return { existed: false };
      throw error;
    }
  }

  listPortForwards(signal?: AbortSignal): Promise<PortForwardRule[]> {
    return this.#forwards.get(signal);
  }

  async #readForwards(): Promise<PortForwardRule[]> {
    const outcome = await this.#host.run('nft', ['-j', 'list', 'table', 'inet', this.#table]);
    if (outcome.exitCode === 0) return parseNftForwards(outcome.stdout);
    const error = commandError(this.#host.failure(outcome));
    // No table yet: no forwards.
    if (error.code === 'NOT_FOUND') return [];
    throw error;
  }
}
