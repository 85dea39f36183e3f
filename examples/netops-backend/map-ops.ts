// A third-party backend written against the published contracts: interfaces and forwards kept in two Maps.
import {
  type BridgeOps,
  type NatOps,
  NetOpsError,
  noCapabilities,
  type OperationOptions as Options,
  type PortForwardRule,
  parseIPv4Cidr,
  parsePortForwardRule,
  samePortForward,
  type TapOps,
  throwIfAborted,
  validateInterfaceName,
  validateMtu,
} from '@my-hypervisor/net-ops';

export function createMapOps(): BridgeOps & TapOps & NatOps {
  const links = new Map<string, 'bridge' | 'tap'>();
  const forwards = new Map<string, PortForwardRule>();
  const fail = (code: 'NOT_FOUND' | 'CONFLICT' | 'UNSUPPORTED', message: string): never => {
    throw new NetOpsError(code, message);
  };
  // The signal first, then every input, before anything changes.
  const begin = (options: Options | undefined, names: (string | undefined)[], mtu?: number) => {
    throwIfAborted(options?.signal);
    for (const name of names) if (name !== undefined) validateInterfaceName(name);
    if (mtu !== undefined) validateMtu(mtu);
  };
  const need = (name: string, kind: 'bridge' | 'tap') => {
    if (links.get(name) !== kind) fail('NOT_FOUND', `no ${kind} named ${name}`);
  };
  const forward = (input: PortForwardRule, options?: Options) => {
    throwIfAborted(options?.signal);
    const rule = parsePortForwardRule(input);
    const key = `${rule.protocol}/${rule.hostPort}`;
    const installed = forwards.get(key);
    if (installed && !samePortForward(installed, rule)) fail('CONFLICT', `${key} forwards elsewhere`);
    return { rule, key, installed };
  };
  // Whether the name exists; CONFLICT if it is the other kind of interface.
  const existsUnless = (name: string, kind: 'bridge' | 'tap') => {
    if (links.get(name) === kind) fail('CONFLICT', `${name} is a ${kind}`);
    return links.has(name);
  };

  return {
    specificationVersion: 'v1',
    capabilities: { ...noCapabilities, listPortForwards: true },
    async ensureBridge({ name, address, mtu, ipv6Address }, options) {
      begin(options, [name], mtu);
      parseIPv4Cidr(address, 'address');
      if (ipv6Address !== undefined) fail('UNSUPPORTED', 'no IPv6 here');
      const existed = existsUnless(name, 'tap');
      links.set(name, 'bridge');
      return { name, created: !existed };
    },
    async listBridgePorts(bridge, options) {
      begin(options, [bridge]);
      return fail('UNSUPPORTED', 'ports are not listed here');
    },
    async createTap({ name, mtu, multiQueue, owner, bridge }, options) {
      begin(options, [name, bridge], mtu);
      if (multiQueue || owner) fail('UNSUPPORTED', 'plain TAPs only');
      if (bridge !== undefined) need(bridge, 'bridge');
      const existed = existsUnless(name, 'bridge');
      links.set(name, 'tap');
      return { name, created: !existed };
    },
    async addToBridge(tap, bridge, options) {
      begin(options, [tap, bridge]);
      need(tap, 'tap');
      need(bridge, 'bridge');
    },
    async bringUp(tap, options) {
      begin(options, [tap]);
      need(tap, 'tap');
    },
    async deleteTap(name, options) {
      begin(options, [name]);
      const existed = existsUnless(name, 'bridge');
      links.delete(name);
      return { name, existed };
    },
    async addPortForward(input, options) {
      const { rule, key, installed } = forward(input, options);
      forwards.set(key, installed ?? rule);
      return { created: !installed };
    },
    async removePortForward(input, options) {
      const { key, installed } = forward(input, options);
      forwards.delete(key);
      return { existed: installed !== undefined };
    },
    async listPortForwards(options) {
      throwIfAborted(options?.signal);
      return [...forwards.values()];
    },
  };
}
