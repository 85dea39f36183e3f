import { NetOpsError, parseVmSubnet, validateInterfaceName } from '@my-hypervisor/net-ops';
import {
  DEFAULT_NETWORK,
  type NetworkRecord,
  networkName,
  VmManagerError,
  validateNetworkName,
  vmIdOfForwardOwner,
} from '@my-hypervisor/vm-manager';
import { type HostNetOps, openManager, openNetOps } from '../backends.js';
import { type CliConfig, netBackends, resolveConfig, usesLocalOps } from '../config.js';
import type { CommandContext } from '../context.js';
import { CliError, invalidValue } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { formatForward } from '../format.js';
import { interruptible } from '../interruptible.js';
import { type ResolvedNetworks, recordDefaultNetwork, resolveNetworks, subnetsOverlap } from '../networks.js';
import type { CommandHandler } from '../run.js';
import { forwardJson } from '../vm-view.js';

/** The bridge's gateway address with prefix: network + 1 of the subnet. */
export function gatewayCidr(subnet: string): string {
  const cidr = parseVmSubnet(subnet);
  return `${cidr.gateway}/${cidr.prefixLength}`;
}

/** A network as the settings or a record describe it: what `net` commands show and act on. */
interface NetworkView {
  readonly name: string;
  readonly bridge: string;
  readonly subnet: string;
  readonly gateway: string;
  readonly backend: string;
  readonly nat: string | null;
  readonly netns: string | null;
  /** False for the default network before its first VM or `net ensure` recorded it. */
  readonly recorded: boolean;
  readonly createdAt: string | null;
}

function view(record: NetworkRecord): NetworkView {
  return {
    name: record.name,
    bridge: record.bridge,
    subnet: record.subnet,
    gateway: record.gateway,
    backend: record.backend,
    nat: record.nat ?? null,
    netns: record.netns ?? null,
    recorded: true,
    createdAt: record.createdAt,
  };
}

/** Every network: the default (recorded, or as the settings say it would be made) and the named ones. */
function networksOf(resolved: ResolvedNetworks): NetworkView[] {
  const { config } = resolved;
  const fallback: NetworkView = {
    name: DEFAULT_NETWORK,
    bridge: config.bridge,
    subnet: config.subnet,
    gateway: parseVmSubnet(config.subnet).gateway,
    backend: config.netBackend,
    nat: usesLocalOps(config.netBackend) ? config.nat : null,
    netns: config.netns ?? null,
    recorded: false,
    createdAt: null,
  };
  return [resolved.defaultNetwork ? view(resolved.defaultNetwork) : fallback, ...resolved.named.map(view)];
}

async function withOps<T>(ctx: CommandContext, config: CliConfig, run: (ops: HostNetOps) => Promise<T>) {
  const ops = await openNetOps(config);
  ctx.defer(async () => ops.close?.());
  return run(ops);
}

/** `myhv net ensure`: every network's bridge with its gateway address, created if missing (idempotent). */
export const netEnsure: CommandHandler = async (ctx) => {
  const resolved = await recordDefaultNetwork(await resolveNetworks(await ctx.config()));
  const { config } = resolved;
  const results = await withOps(ctx, config, async (ops) => {
    const out: { name: string; address: string; subnet: string; network: string; created: boolean }[] = [];
    for (const network of networksOf(resolved)) {
      const address = gatewayCidr(network.subnet);
      const result = await interruptible(ctx, (signal) =>
        ops.ensureBridge({ name: network.bridge, address }, { signal }),
      );
      out.push({
        name: network.bridge,
        address,
        subnet: network.subnet,
        network: network.name,
        created: result.created,
      });
    }
    return out;
  });
  const json = {
    backend: config.netBackend,
    netns: config.netns ?? null,
    bridge: results[0]!,
    networks: results,
  };
  ctx.out.result(json, () => {
    for (const r of results) {
      ctx.out.print(
        ctx.out.ok(
          `bridge ${r.name} (${r.address}, network ${r.network}) ${r.created ? 'created' : 'already there'}${config.netns ? ` in netns ${config.netns}` : ''}`,
        ),
      );
    }
  });
  return ExitCode.OK;
};

/** `myhv net create NAME --subnet CIDR [--bridge NAME]`: records a named network and makes its bridge. */
export const netCreate: CommandHandler = async (ctx, [rawName]) => {
  const name = networkNameArg(rawName);
  if (name === DEFAULT_NETWORK)
    throw invalidValue(
      'name',
      'default is the network VMs join without --network; it is made by the first VM',
    );
  // `--subnet`/`--bridge` are also global settings, so commander hands them to the program: here they describe the
  // new network, and the settings are resolved without them.
  const own = ctx.options as { subnet?: string; bridge?: string };
  const options = { subnet: own.subnet ?? ctx.flags.subnet, bridge: own.bridge ?? ctx.flags.bridge };
  if (options.subnet === undefined) throw invalidValue('--subnet', 'missing', 'e.g. --subnet 10.63.0.0/24');
  let subnet: string;
  try {
    const cidr = parseVmSubnet(options.subnet, '--subnet');
    subnet = `${cidr.network}/${cidr.prefixLength}`;
  } catch (error) {
    throw invalidValue(
      '--subnet',
      (error as Error).message.replace(/^--subnet: /, ''),
      'e.g. --subnet 10.63.0.0/24',
      error,
    );
  }
  const bridge = options.bridge ?? `myhv-${name}`.slice(0, 15);
  try {
    validateInterfaceName(bridge, '--bridge');
  } catch (error) {
    throw invalidValue('--bridge', (error as Error).message.replace(/^--bridge: /, ''), undefined, error);
  }
  // --net-backend may differ from the default network's within the family sharing the host side (local and
  // namespace), so it is checked here rather than against the default network's record.
  const wanted = ctx.flags.netBackend;
  if (wanted !== undefined && !(netBackends as readonly string[]).includes(wanted)) {
    throw invalidValue(
      '--net-backend',
      `${JSON.stringify(wanted)} is not one of ${netBackends.join(', ')}`,
      `use one of: ${netBackends.join(', ')}`,
    );
  }
  const settingsOnly = await resolveConfig({
    flags: { ...ctx.flags, subnet: undefined, bridge: undefined, netBackend: undefined },
    env: ctx.env,
  });
  const resolved = await resolveNetworks(settingsOnly);
  const backend = wanted ?? resolved.config.netBackend;
  if (usesLocalOps(backend) !== usesLocalOps(resolved.config.netBackend)) {
    throw invalidValue(
      '--net-backend',
      `the default network uses the ${resolved.config.netBackend} backend; a named network shares its host side, so it cannot use ${backend}`,
      'local and namespace networks can be mixed; mosnet networks only with mosnet',
    );
  }
  for (const other of networksOf(resolved)) {
    if (other.name === name)
      throw invalidValue('name', `a network named ${name} already exists`, '`myhv net ls` lists them');
    if (other.bridge === bridge)
      throw invalidValue(
        '--bridge',
        `${bridge} is the bridge of network ${other.name}`,
        'choose another --bridge',
      );
    if (subnetsOverlap(other.subnet, subnet))
      throw invalidValue(
        '--subnet',
        `${subnet} overlaps ${other.subnet} of network ${other.name}`,
        'choose a subnet no other network uses',
      );
  }
  const { config, store } = resolved;
  const record = await store
    .create({
      name,
      bridge,
      subnet,
      backend,
      ...(usesLocalOps(backend) ? { nat: config.nat } : {}),
      ...(config.netns ? { netns: config.netns } : {}),
    })
    .catch((error: unknown) => {
      if (VmManagerError.isInstance(error) && error.code === 'ALREADY_EXISTS')
        throw invalidValue('name', `a network named ${name} already exists`, '`myhv net ls` lists them');
      throw error;
    });
  // Nothing half-made: a bridge that cannot be made takes its record with it.
  try {
    await withOps(ctx, config, (ops) =>
      interruptible(ctx, (signal) =>
        ops.ensureBridge({ name: bridge, address: gatewayCidr(subnet) }, { signal }),
      ),
    );
  } catch (error) {
    await store.remove(name);
    throw error;
  }
  ctx.out.result({ network: view(record) }, () =>
    ctx.out.print(ctx.out.ok(`network ${name}: bridge ${bridge}, ${subnet}, gateway ${record.gateway}`)),
  );
  return ExitCode.OK;
};

function networkNameArg(raw: unknown): string {
  try {
    return validateNetworkName(raw, 'name');
  } catch (error) {
    throw invalidValue('name', (error as Error).message.replace(/^name: /, ''), undefined, error);
  }
}

/** `myhv net ls`: every network with its bridge, subnet and how many VMs use it. Reads records only. */
export const netLs: CommandHandler = async (ctx) => {
  const resolved = await resolveNetworks(await ctx.config());
  const { manager } = await openManager(resolved.config, { kind: 'read' });
  const vms = await manager.list();
  const networks = networksOf(resolved).map((n) => ({
    ...n,
    vms: vms.filter((v) => v.spec.network.enabled && networkName(v.spec) === n.name).length,
  }));
  ctx.out.result({ networks }, () =>
    ctx.out.table(
      ['network', 'bridge', 'subnet', 'gateway', 'backend', 'vms'],
      networks.map((n) => [
        n.name,
        n.bridge,
        n.subnet,
        n.gateway,
        `${n.backend}${n.netns ? ` (netns ${n.netns})` : ''}`,
        String(n.vms),
      ]),
    ),
  );
  return ExitCode.OK;
};

/**
 * `myhv net inspect [NAME]`: the network's record, its bridge's ports and the installed forwards, each with the VM
 * owning it. A backend that cannot list something (mosnet has no port listing) says so in `unsupported`.
 */
export const netInspect: CommandHandler = async (ctx, [rawName]) => {
  const name = rawName === undefined ? DEFAULT_NETWORK : networkNameArg(rawName);
  const resolved = await resolveNetworks(await ctx.config());
  const network = networksOf(resolved).find((n) => n.name === name);
  if (!network) {
    throw new CliError('FAILED', `there is no network named ${name}`, {
      details: { field: 'name', hint: '`myhv net ls` lists the networks' },
    });
  }
  const { config } = resolved;
  const { manager } = await openManager(config, { kind: 'read' });
  const vms = await manager.list();
  const members = vms.filter((v) => v.spec.network.enabled && networkName(v.spec) === name);
  const byTap = new Map(
    vms.flatMap((v) =>
      [...(v.tap ? [v.tap] : []), ...(v.nics ?? []).map((n) => n.tap)].map((tap) => [tap, v.name]),
    ),
  );
  const byId = new Map(vms.map((v) => [v.id, v.name]));
  const { subnet } = network;
  const unsupported: string[] = [];
  let exists = true;
  let ports: { name: string; vm: string | null }[] | null = null;
  let forwards: (ReturnType<typeof forwardJson> & { owner: string | null; vm: string | null })[] | null =
    null;
  await withOps(ctx, config, async (ops) => {
    if (ops.capabilities.listBridgePorts) {
      try {
        ports = (await ops.listBridgePorts(network.bridge)).map((p) => ({
          name: p.name,
          vm: byTap.get(p.name) ?? null,
        }));
      } catch (error) {
        if (!(NetOpsError.isInstance(error) && error.code === 'NOT_FOUND')) throw error;
        exists = false;
        ports = [];
      }
    } else unsupported.push('listBridgePorts');
    if (ops.capabilities.listPortForwards) {
      const cidr = parseVmSubnet(subnet);
      const inSubnet = (ip: string) =>
        parseVmSubnet(`${ip}/${cidr.prefixLength}`, 'ip').network === cidr.network;
      forwards = (await ops.listPortForwards())
        .filter((rule) => inSubnet(rule.guestIp))
        .map((rule) => {
          const owner = rule.owner ?? null;
          const id = vmIdOfForwardOwner(rule.owner);
          const vm = id === undefined ? null : (byId.get(id) ?? null);
          return { ...forwardJson(rule), owner, vm };
        });
    } else unsupported.push('listPortForwards');
  });
  const json = {
    network,
    // The network's own record decides (named networks may differ from the settings), as in openManager.
    backend: network.backend,
    netns: config.netns ?? null,
    bridge: { name: network.bridge, subnet, exists, ports },
    forwards,
    vms: members.map((v) => v.name),
    unsupported,
  };
  ctx.out.result(json, () => {
    const { out } = ctx;
    const where = config.netns ? ` in netns ${config.netns}` : '';
    out.print(
      `network ${name}${network.recorded ? '' : ' (not made yet)'}: ${members.length} VM${members.length === 1 ? '' : 's'}`,
    );
    out.print(
      `bridge ${network.bridge} (${subnet}, ${network.backend} backend${where}): ${exists ? 'present' : 'missing (run `myhv net ensure`)'}`,
    );
    const shownPorts = ports as { name: string; vm: string | null }[] | null;
    if (shownPorts === null) out.print('ports: the backend cannot list them');
    else if (shownPorts.length > 0)
      out.table(
        ['port', 'vm'],
        shownPorts.map((p) => [p.name, p.vm ?? '(no VM: `myhv gc` removes it)']),
      );
    const shownForwards = forwards as
      | (ReturnType<typeof forwardJson> & { owner: string | null; vm: string | null })[]
      | null;
    if (shownForwards === null) out.print('forwards: the backend cannot list them');
    else if (shownForwards.length > 0) {
      out.table(
        ['forward', 'vm'],
        shownForwards.map((f) => [formatForward(f), f.vm ?? `(owner ${f.owner ?? 'unknown'})`]),
      );
    }
  });
  return ExitCode.OK;
};

/** `myhv net rm NAME`: forgets a named network no VM uses. Its bridge stays (empty) until `ip link del`. */
export const netRm: CommandHandler = async (ctx, [rawName]) => {
  const name = networkNameArg(rawName);
  const resolved = await resolveNetworks(await ctx.config());
  const record = [resolved.defaultNetwork, ...resolved.named].find((n) => n?.name === name);
  if (!record) {
    throw new CliError('FAILED', `there is no network named ${name}`, {
      details: { field: 'name', hint: '`myhv net ls` lists the networks' },
    });
  }
  const { manager } = await openManager(resolved.config, { kind: 'read' });
  const users = (await manager.list())
    .filter((v) => v.spec.network.enabled && networkName(v.spec) === name)
    .map((v) => v.name);
  if (users.length > 0) {
    throw new VmManagerError('CONFLICT', `network ${name} is used by ${users.join(', ')}`, {
      details: { field: 'name', network: name, vms: users },
    });
  }
  await resolved.store.remove(name);
  ctx.out.result({ removed: view(record) }, () =>
    ctx.out.print(
      ctx.out.ok(
        `removed network ${name} (its bridge ${record.bridge} stays until \`ip link del ${record.bridge}\`)`,
      ),
    ),
  );
  return ExitCode.OK;
};
