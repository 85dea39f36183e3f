import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, hostname, totalmem } from 'node:os';
import { join } from 'node:path';
import type { HostInfo, RegisterOptions } from '@my-hypervisor/cluster';
import { HOST_ID_RULE, isHostId } from '@my-hypervisor/cluster/core';
import type { DaemonClusterOptions } from '@my-hypervisor/daemon';
import { parseIPv4Cidr } from '@my-hypervisor/net-ops';
import { ensurePrivateDir, VmManagerError } from '@my-hypervisor/vm-manager';
import type { CliConfig } from './config.js';
import { usesLocalOps } from './config.js';
import { invalidValue } from './errors.js';
import { parseKeyValueArgs } from './key-value-arg.js';
import { resolveNetworks, subnetsOverlap } from './networks.js';

/** The network cluster VMs join on each host: its subnet is the host's share of the cluster pool. */
export const CLUSTER_NETWORK = 'cluster';
const CLUSTER_BRIDGE = 'myhv-cluster';

/** `myhvd --cluster …`'s own options, checked before any work. */
export interface ClusterJoinOptions {
  readonly host: HostInfo;
  readonly register: RegisterOptions;
  /** VMs the host agent works on at once (`--cluster-concurrency`). */
  readonly concurrency?: number;
}

/** vCPUs a host offers per CPU it has, unless `--host-vcpus` says otherwise: microVMs are mostly idle. */
const VCPUS_PER_CPU = 4;

/** The `daemon run` flags of cluster mode, checked (exit 2 naming the flag); undefined without `--cluster`. */
export function clusterJoinOptions(
  config: CliConfig,
  options: Readonly<Record<string, unknown>>,
): ClusterJoinOptions | undefined {
  const given = (
    [
      'hostId',
      'hostAddress',
      'hostLabel',
      'hostVcpus',
      'clusterPool',
      'clusterTtl',
      'clusterConcurrency',
    ] as const
  ).filter((key) => options[key] !== undefined);
  if (!config.cluster) {
    if (given.length > 0) {
      const flag = `--${given[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      throw invalidValue(flag, 'only with --cluster (this host joins no cluster)', 'add --cluster etcd=URL');
    }
    return undefined;
  }
  const id = options.hostId === undefined ? hostname().split('.')[0]! : String(options.hostId);
  if (!isHostId(id)) {
    throw invalidValue(
      '--host-id',
      `${JSON.stringify(id)} is not a host id: ${HOST_ID_RULE}`,
      options.hostId === undefined ? 'the hostname does not fit: give --host-id' : undefined,
    );
  }
  const labels = parseKeyValueArgs((options.hostLabel as string[] | undefined) ?? [], {
    flag: '--host-label',
    hint: 'e.g. zone=a',
    repeatedKey: 'last-wins',
    key: /^[a-z0-9][a-z0-9._/-]{0,62}$/,
    value: /^[A-Za-z0-9._-]{0,63}$/,
  });
  const pool = options.clusterPool === undefined ? '10.80.0.0/12' : String(options.clusterPool);
  try {
    const cidr = parseIPv4Cidr(pool, '--cluster-pool');
    if (cidr.prefixLength > 24) throw new Error('too small: it must hold at least one /24');
  } catch (error) {
    throw invalidValue(
      '--cluster-pool',
      `${JSON.stringify(pool)}: ${(error as Error).message.replace(/^--cluster-pool: /, '')}`,
      'e.g. 10.80.0.0/12',
    );
  }
  const ttlText = options.clusterTtl === undefined ? '10' : String(options.clusterTtl);
  const ttl = /^\d{1,4}$/.test(ttlText) ? Number(ttlText) : Number.NaN;
  if (!(ttl >= 2 && ttl <= 3_600)) {
    throw invalidValue('--cluster-ttl', `${JSON.stringify(ttlText)} is not 2–3600 seconds`, 'e.g. 10');
  }
  const vcpusText = options.hostVcpus === undefined ? undefined : String(options.hostVcpus);
  const vcpus = vcpusText === undefined ? VCPUS_PER_CPU * availableParallelism() : Number(vcpusText);
  if (vcpusText !== undefined && (!/^\d{1,6}$/.test(vcpusText) || vcpus < 1)) {
    throw invalidValue(
      '--host-vcpus',
      `${JSON.stringify(vcpusText)} is not a number of vCPUs (1 or more)`,
      'e.g. 64',
    );
  }
  const concurrencyText =
    options.clusterConcurrency === undefined ? undefined : String(options.clusterConcurrency);
  if (concurrencyText !== undefined && !/^([1-9]|[1-9]\d|[1-2]\d\d)$/.test(concurrencyText)) {
    throw invalidValue(
      '--cluster-concurrency',
      `${JSON.stringify(concurrencyText)} is not a number from 1 to 299`,
      'e.g. 8',
    );
  }
  return {
    ...(concurrencyText === undefined ? {} : { concurrency: Number(concurrencyText) }),
    host: {
      id,
      address: options.hostAddress === undefined ? hostname() : String(options.hostAddress),
      capacity: { cpus: vcpus, memoryBytes: totalmem() },
      labels,
    },
    register: { pool, ttlSeconds: ttl, instance: instanceToken(config.stateDir) },
  };
}

/**
 * Joins the cluster: registers the host (a restarted daemon takes its own record over), then makes sure the
 * `cluster` network has the host's subnet. What `createDaemon` then runs; the connection is the caller's to close
 * when the daemon does not start.
 */
export async function joinCluster(
  config: CliConfig,
  join: ClusterJoinOptions,
): Promise<Omit<DaemonClusterOptions, 'network' | 'concurrency'> & { subnet: string }> {
  const { Cluster } = await import('@my-hypervisor/cluster');
  const cluster = new Cluster({ endpoints: config.cluster ?? [] });
  try {
    const membership = await cluster.register(join.host, join.register);
    try {
      await ensureClusterNetwork(config, membership.host.subnet);
    } catch (error) {
      await membership.leave();
      throw error;
    }
    return { cluster, membership, host: join.host, register: join.register, subnet: membership.host.subnet };
  } catch (error) {
    cluster.close();
    throw error;
  }
}

/** The `cluster` network's record with this host's subnet: made the first time, checked after. */
async function ensureClusterNetwork(config: CliConfig, subnet: string): Promise<void> {
  const resolved = await resolveNetworks(config);
  const others = [...(resolved.defaultNetwork ? [resolved.defaultNetwork] : []), ...resolved.named].filter(
    (n) => n.name !== CLUSTER_NETWORK,
  );
  const existing = resolved.named.find((n) => n.name === CLUSTER_NETWORK);
  if (existing) {
    if (existing.subnet === subnet) return;
    throw new VmManagerError(
      'CONFLICT',
      `the cluster gave this host ${subnet}, but its network ${CLUSTER_NETWORK} has ${existing.subnet}`,
      {
        details: {
          hint: `remove its VMs and \`myhv net rm ${CLUSTER_NETWORK}\`, or join with the --host-id that has ${existing.subnet}`,
        },
      },
    );
  }
  for (const other of others) {
    if (subnetsOverlap(other.subnet, subnet)) {
      throw invalidValue(
        '--cluster-pool',
        `this host's cluster subnet ${subnet} overlaps ${other.subnet} of its network ${other.name}`,
        'give the cluster a pool no host network uses',
      );
    }
  }
  const backend = resolved.config.netBackend;
  await resolved.store
    .create({
      name: CLUSTER_NETWORK,
      bridge: CLUSTER_BRIDGE,
      subnet,
      backend,
      ...(usesLocalOps(backend) ? { nat: resolved.config.nat } : {}),
      ...(resolved.config.netns ? { netns: resolved.config.netns } : {}),
    })
    .catch((error: unknown) => {
      // Another process made it at the same moment: the record is what counts.
      if (!(VmManagerError.isInstance(error) && error.code === 'ALREADY_EXISTS')) throw error;
    });
}

/**
 * This installation's token (`<stateDir>/cluster-instance`, 0600): how a restarted daemon recognises its own
 * record in the cluster and takes it over instead of waiting out the lease.
 */
function instanceToken(stateDir: string): string {
  ensurePrivateDir(stateDir, 'the state directory');
  const path = join(stateDir, 'cluster-instance');
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = randomBytes(16).toString('hex');
  try {
    writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
    return token;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return readFileSync(path, 'utf8').trim();
  }
}
