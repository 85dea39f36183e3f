import { ipv4ToNumber, NetOpsError, numberToIPv4, parseVmSubnet } from '@my-hypervisor/net-ops';
import { vmIdOfForwardOwner } from '@my-hypervisor/vm-manager';
import { openManager, openNetOps } from '../backends.js';
import { ExitCode } from '../exit-codes.js';
import { formatForward } from '../format.js';
import { interruptible } from '../interruptible.js';
import type { CommandHandler } from '../run.js';
import { forwardJson } from '../vm-view.js';

/** The bridge's gateway address with prefix: network + 1 of the subnet. */
export function gatewayCidr(subnet: string): string {
  const cidr = parseVmSubnet(subnet);
  return `${numberToIPv4(ipv4ToNumber(cidr.network) + 1)}/${cidr.prefixLength}`;
}

/** `myhv net ensure`: the bridge with its gateway address, created if missing (idempotent). */
export const netEnsure: CommandHandler = async (ctx) => {
  const config = await ctx.config();
  const ops = await openNetOps(config);
  ctx.defer(async () => ops.close?.());
  const address = gatewayCidr(config.subnet);
  const result = await interruptible(ctx, (signal) =>
    ops.ensureBridge({ name: config.bridge, address }, { signal }),
  );
  const json = {
    backend: config.netBackend,
    netns: config.netns ?? null,
    bridge: { name: config.bridge, address, subnet: config.subnet, created: result.created },
  };
  ctx.out.result(json, () =>
    ctx.out.print(
      ctx.out.ok(
        `bridge ${config.bridge} (${address}) ${result.created ? 'created' : 'already there'}${config.netns ? ` in netns ${config.netns}` : ''}`,
      ),
    ),
  );
  return ExitCode.OK;
};

/**
 * `myhv net ls`: the bridge's ports and the installed forwards, each with the VM that owns it (from the records).
 * A backend that cannot list something (mosnet has no port listing) says so in `unsupported`.
 */
export const netLs: CommandHandler = async (ctx) => {
  const config = await ctx.config();
  const ops = await openNetOps(config);
  ctx.defer(async () => ops.close?.());
  const { manager } = await openManager(config, { kind: 'read' });
  const vms = await manager.list();
  const byTap = new Map(vms.filter((v) => v.tap).map((v) => [v.tap!, v.name]));
  const byId = new Map(vms.map((v) => [v.id, v.name]));
  const unsupported: string[] = [];
  let exists = true;
  let ports: { name: string; vm: string | null }[] | null = null;
  if (ops.capabilities.listBridgePorts) {
    try {
      ports = (await ops.listBridgePorts(config.bridge)).map((p) => ({
        name: p.name,
        vm: byTap.get(p.name) ?? null,
      }));
    } catch (error) {
      if (!(NetOpsError.isInstance(error) && error.code === 'NOT_FOUND')) throw error;
      exists = false;
      ports = [];
    }
  } else unsupported.push('listBridgePorts');
  let forwards: (ReturnType<typeof forwardJson> & { owner: string | null; vm: string | null })[] | null =
    null;
  if (ops.capabilities.listPortForwards) {
    forwards = (await ops.listPortForwards()).map((rule) => {
      const owner = rule.owner ?? null;
      const id = vmIdOfForwardOwner(rule.owner);
      const vm = id === undefined ? null : (byId.get(id) ?? null);
      return { ...forwardJson(rule), owner, vm };
    });
  } else unsupported.push('listPortForwards');
  const json = {
    backend: config.netBackend,
    netns: config.netns ?? null,
    bridge: { name: config.bridge, subnet: config.subnet, exists, ports },
    forwards,
    unsupported,
  };
  ctx.out.result(json, () => {
    const { out } = ctx;
    const where = config.netns ? ` in netns ${config.netns}` : '';
    out.print(
      `bridge ${config.bridge} (${config.subnet}, ${config.netBackend} backend${where}): ${exists ? 'present' : 'missing (run `myhv net ensure`)'}`,
    );
    if (ports === null) out.print('ports: the backend cannot list them');
    else if (ports.length > 0)
      out.table(
        ['port', 'vm'],
        ports.map((p) => [p.name, p.vm ?? '(no VM: `myhv gc` removes it)']),
      );
    if (forwards === null) out.print('forwards: the backend cannot list them');
    else if (forwards.length > 0) {
      out.table(
        ['forward', 'vm'],
        forwards.map((f) => [formatForward(f), f.vm ?? `(owner ${f.owner ?? 'unknown'})`]),
      );
    }
  });
  return ExitCode.OK;
};
