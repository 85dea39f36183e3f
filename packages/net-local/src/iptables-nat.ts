import {
  type AddPortForwardResult,
  type PortForwardRule,
  portForwardKey,
  type RemovePortForwardResult,
  samePortForward,
} from '@my-hypervisor/net-ops';
import type { HostCommands } from './host-commands.js';
import { IptablesBatcher } from './iptables-batcher.js';
import { forwardConflict, type IptablesNames } from './iptables-model.js';
import type { BridgeNatSpec, NatDriver } from './nat-driver.js';

/**
 * NAT through iptables: our own chains (`MYHV-PREROUTING`, `-OUTPUT`, `-POSTROUTING` in nat, `MYHV-FORWARD` in
 * filter) jumped from the built-in ones, every rule tagged with a `myhv:` comment that also records the forward, so
 * the rules themselves are the state. Works on hosts without nftables and next to Docker.
 */
export class IptablesNat implements NatDriver {
  readonly #batcher: IptablesBatcher;

  constructor(host: HostCommands, names: IptablesNames) {
    this.#batcher = new IptablesBatcher(host, names);
  }

  prepareBridge(spec: BridgeNatSpec, signal?: AbortSignal): Promise<void> {
    return this.#batcher.run((model) => model.prepareBridge(spec.bridge, spec.subnet), signal);
  }

  addPortForward(rule: PortForwardRule, signal?: AbortSignal): Promise<AddPortForwardResult> {
    return this.#batcher.run((model): AddPortForwardResult => {
      const installed = model.forward(rule);
      if (installed) {
        if (samePortForward(installed.rule, rule)) return { created: false };
        throw forwardConflict(portForwardKey(rule), installed.rule, 'add');
      }
      model.addForward(rule);
      return { created: true };
    }, signal);
  }

  removePortForward(rule: PortForwardRule, signal?: AbortSignal): Promise<RemovePortForwardResult> {
    return this.#batcher.run((model): RemovePortForwardResult => {
      const installed = model.forward(rule);
      if (!installed) return { existed: false };
      if (!samePortForward(installed.rule, rule))
        throw forwardConflict(portForwardKey(rule), installed.rule, 'remove');
      model.removeForward(installed);
      return { existed: true };
    }, signal);
  }

  async listPortForwards(signal?: AbortSignal): Promise<PortForwardRule[]> {
    return (await this.#batcher.read(signal)).forwards();
  }
}
