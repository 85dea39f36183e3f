import { parseVmSubnet } from '@my-hypervisor/net-ops';
import { DEFAULT_NETWORK, type NetworkRecord, NetworkStore, VmManagerError } from '@my-hypervisor/vm-manager';
import { type CliConfig, usesLocalOps } from './config.js';
import { invalidValue } from './errors.js';
import { flagName, type SettingKey, settings } from './settings.js';

/** The settings a network record pins: changing one under existing VMs would cut them off. */
const pinned = ['netBackend', 'nat', 'netns', 'bridge', 'subnet'] as const satisfies readonly SettingKey[];

/** The settings with the default network's record applied, and every recorded network. */
export interface ResolvedNetworks {
  /** `config` with bridge, subnet, backend, NAT driver and netns taken from the default network's record. */
  readonly config: CliConfig;
  /** The default network's record; undefined until the first VM or `net ensure` makes it. */
  readonly defaultNetwork?: NetworkRecord;
  /** The named networks (`myhv net create`). */
  readonly named: readonly NetworkRecord[];
  readonly store: NetworkStore;
}

function recordedValue(record: NetworkRecord, key: (typeof pinned)[number]): string | undefined {
  switch (key) {
    case 'netBackend':
      return record.backend;
    case 'nat':
      return usesLocalOps(record.backend) ? record.nat : undefined;
    case 'netns':
      return record.netns;
    case 'bridge':
      return record.bridge;
    case 'subnet':
      return record.subnet;
  }
}

function fieldOf(config: CliConfig, key: SettingKey): string {
  const def = settings.find((s) => s.key === key)!;
  return config.sources[key] === 'env'
    ? def.env
    : config.sources[key] === 'config'
      ? `config ${key}`
      : flagName(def);
}

/**
 * An explicit setting (flag, environment, config file) that differs from the record is refused, naming the
 * recorded value; an unset or default one takes the record's value.
 */
function applyRecord(config: CliConfig, record: NetworkRecord, path: string): CliConfig {
  const effective: Record<string, unknown> = { ...config };
  for (const key of pinned) {
    const recorded = recordedValue(record, key);
    if (key === 'nat' && !usesLocalOps(record.backend)) continue;
    const current = config[key];
    const explicit =
      config.sources[key] === 'flag' || config.sources[key] === 'env' || config.sources[key] === 'config';
    if (explicit && current !== recorded) {
      throw invalidValue(
        fieldOf(config, key),
        `the ${record.name} network was made with ${key} ${recorded ?? '(none)'} (recorded in ${path}), not ${current}`,
        record.name === DEFAULT_NETWORK
          ? 'drop the setting to use the recorded one; for another subnet or bridge, `myhv net create NAME --subnet …` and `vm create --network NAME`'
          : 'drop the setting to use the recorded one',
      );
    }
    if (recorded === undefined) delete effective[key];
    else effective[key] = recorded;
  }
  return effective as unknown as CliConfig;
}

/** Reads the network records and applies the default one to the settings (see `applyRecord`). */
export async function resolveNetworks(config: CliConfig): Promise<ResolvedNetworks> {
  const store = new NetworkStore(config.stateDir);
  const all = await store.list();
  const defaultNetwork = all.find((n) => n.name === DEFAULT_NETWORK);
  const named = all.filter((n) => n.name !== DEFAULT_NETWORK);
  const effective = defaultNetwork
    ? applyRecord(config, defaultNetwork, store.path(DEFAULT_NETWORK))
    : config;
  return { config: effective, ...(defaultNetwork ? { defaultNetwork } : {}), named, store };
}

/**
 * Records the default network from the settings when it is first made (by `vm create` or `net ensure`). Two
 * processes doing so at once: one record wins, and the other is checked against it.
 */
export async function recordDefaultNetwork(resolved: ResolvedNetworks): Promise<ResolvedNetworks> {
  if (resolved.defaultNetwork) return resolved;
  const { config, store } = resolved;
  try {
    const record = await store.create({
      name: DEFAULT_NETWORK,
      bridge: config.bridge,
      subnet: config.subnet,
      backend: config.netBackend,
      ...(usesLocalOps(config.netBackend) ? { nat: config.nat } : {}),
      ...(config.netns ? { netns: config.netns } : {}),
    });
    return { ...resolved, defaultNetwork: record };
  } catch (error) {
    if (!(VmManagerError.isInstance(error) && error.code === 'ALREADY_EXISTS')) throw error;
    return resolveNetworks(config);
  }
}

/** The subnets of two networks overlap when either contains the other's network address. */
export function subnetsOverlap(a: string, b: string): boolean {
  const x = parseVmSubnet(a);
  const y = parseVmSubnet(b);
  const toNumber = (ip: string) => ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
  const range = (c: typeof x) => {
    const size = 2 ** (32 - c.prefixLength);
    const start = toNumber(c.network);
    return [start, start + size - 1] as const;
  };
  const [a0, a1] = range(x);
  const [b0, b1] = range(y);
  return a0 <= b1 && b0 <= a1;
}
