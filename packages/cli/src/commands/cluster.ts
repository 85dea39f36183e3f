import type { Cluster, ClusterVm, ClusterVmSpec, LiveHost } from '@my-hypervisor/cluster';
import { parseVmSpec } from '@my-hypervisor/vm-manager';
import type { CommandContext } from '../context.js';
import { CliError, invalidValue } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { formatMemory } from '../format.js';
import { parseKeyValueArgs } from '../key-value-arg.js';
import type { CommandHandler } from '../run.js';
import { withSpecHint } from '../spec-hints.js';
import { type CreateFlags, createSpecInput } from '../spec-input.js';
import { parseVmName } from '../vm-name.js';

/** How long a fleet-wide command waits for the VM's host to report what it did. */
const REPORT_TIMEOUT_MS = 30_000;

/** A cluster VM as `vm ls --cluster` and `vm inspect --cluster` show it (`--json`). */
export interface ClusterVmJson {
  readonly name: string;
  /** What its host last reported for its current placement; `pending` until then (or while no host has room). */
  readonly status: string;
  readonly host: string | null;
  readonly ip: string | null;
  /** Grows with every (re)placement. */
  readonly epoch: number | null;
  /** Desired state: whether it should run. */
  readonly running: boolean;
  readonly cpus: number;
  readonly memoryBytes: number;
  readonly placement: { readonly policy: 'spread' | 'pack'; readonly labels: Record<string, string> };
  readonly restart: 'always' | 'no';
  /** When its host last reported. */
  readonly reportedAt: string | null;
  readonly error: string | null;
  /** The VmSpec input its host creates it from. */
  readonly spec: Readonly<Record<string, unknown>>;
}

export function clusterVmJson(vm: ClusterVm): ClusterVmJson {
  // A report counts only for the current placement: a stale one (an earlier host) is not what the VM is now.
  const current =
    vm.status && vm.assignment && vm.status.epoch === vm.assignment.epoch ? vm.status : undefined;
  return {
    name: vm.name,
    status: current?.status ?? 'pending',
    host: vm.assignment?.host ?? null,
    ip: current?.ip ?? null,
    epoch: vm.assignment?.epoch ?? null,
    running: vm.spec.running !== false,
    cpus: vm.spec.cpus,
    memoryBytes: vm.spec.memoryBytes,
    placement: { policy: vm.spec.placement?.policy ?? 'spread', labels: { ...vm.spec.placement?.labels } },
    restart: vm.spec.restart ?? 'always',
    reportedAt: current?.time ?? null,
    error: current?.error ?? null,
    spec: vm.spec.spec,
  };
}

/** `myhv --cluster URL vm create`: the desired state into etcd; then waits for its host's first report. */
export const clusterVmCreate: CommandHandler = async (ctx, [rawName]) => {
  const name = rawName === undefined ? undefined : parseVmName(rawName);
  const flags = ctx.options as CreateFlags & {
    placement?: string;
    onHost?: readonly string[];
    stopped?: boolean;
  };
  if (flags.image !== undefined) {
    throw invalidValue(
      '--image',
      'images live on one host: a cluster VM boots a --kernel (and --initramfs) found at the same path on every host',
    );
  }
  const policy = flags.placement ?? 'spread';
  if (policy !== 'spread' && policy !== 'pack') {
    throw invalidValue('--placement', `${JSON.stringify(policy)} is not spread or pack`);
  }
  const labels = parseKeyValueArgs(flags.onHost ?? [], {
    flag: '--on-host',
    hint: 'e.g. --on-host zone=a',
    repeatedKey: 'last-wins',
  });
  const { input, source } = await createSpecInput(name, flags, ctx.io.stdin);
  let spec: ReturnType<typeof parseVmSpec>;
  try {
    spec = parseVmSpec(input);
  } catch (error) {
    throw withSpecHint(error, source);
  }
  if (spec.network.name !== undefined) {
    throw invalidValue(
      source.kind === 'file' ? 'network.name' : '--network',
      "cluster VMs join their host's cluster network (a subnet of the cluster pool): leave the network name out",
    );
  }
  const vm: ClusterVmSpec = {
    name: spec.name,
    spec: input,
    cpus: spec.cpusMax ?? spec.cpus,
    memoryBytes: spec.memory + (spec.memoryHotplug ?? 0),
    placement: { policy, ...(Object.keys(labels).length > 0 ? { labels } : {}) },
    // The VM's restart policy decides whether it is re-placed when its host is lost.
    restart: spec.restart === 'always' ? 'always' : 'no',
    ...(flags.stopped ? { running: false } : {}),
  };
  const cluster = await connect(ctx);
  const from = (await cluster.revision()) + 1;
  await cluster.createVm(vm);
  const reported = await waitForReport(cluster, vm.name, from, () => true);
  const json = clusterVmJson(reported ?? (await cluster.vm(vm.name))!);
  ctx.out.result({ vm: json }, () => {
    if (json.status === 'pending') {
      ctx.out.print(ctx.out.ok(`created ${json.name} in the cluster`));
      ctx.out.note(
        `no host has reported it yet (${json.host ? `placed on ${json.host}` : 'not placed: no live host matches or has room'}); \`myhv --cluster … vm ls\` follows it`,
      );
    } else if (json.status === 'failed') {
      ctx.out.print(
        ctx.out.bad(`created ${json.name}; on ${json.host} it failed: ${json.error ?? 'no reason given'}`),
      );
    } else {
      ctx.out.print(
        ctx.out.ok(`created ${json.name} on ${json.host}${json.ip ? ` at ${json.ip}` : ''}, ${json.status}`),
      );
    }
  });
  return json.status === 'failed' ? ExitCode.FAILED : ExitCode.OK;
};

/** `myhv --cluster URL vm ls`: every VM of the fleet with its host. */
export const clusterVmLs: CommandHandler = async (ctx) => {
  const cluster = await connect(ctx);
  const vms = (await cluster.vms()).map(clusterVmJson);
  ctx.out.result({ vms }, () =>
    ctx.out.table(
      ['name', 'status', 'host', 'ip', 'cpus', 'memory'],
      vms.map((vm) => [
        vm.name,
        vm.running || vm.status !== 'running' ? vm.status : `${vm.status} (stopping)`,
        vm.host ?? '-',
        vm.ip ?? '-',
        String(vm.cpus),
        formatMemory(vm.memoryBytes),
      ]),
    ),
  );
  return ExitCode.OK;
};

/** `myhv --cluster URL vm inspect NAME`: its desired state, placement and last report. */
export const clusterVmInspect: CommandHandler = async (ctx, [rawName]) => {
  const name = parseVmName(rawName);
  const cluster = await connect(ctx);
  const found = await cluster.vm(name);
  if (!found) throw await notFound(name);
  const vm = clusterVmJson(found);
  ctx.out.result({ vm }, () => {
    const labels = Object.entries(vm.placement.labels).map(([k, v]) => `${k}=${v}`);
    ctx.out.fields([
      ['name', vm.name],
      ['status', vm.status],
      ['desired', vm.running ? 'running' : 'stopped'],
      ['host', vm.host ? `${vm.host} (placement ${vm.epoch})` : 'not placed'],
      ...(vm.ip ? [['ip', vm.ip] as [string, string]] : []),
      ['cpus', String(vm.cpus)],
      ['memory', formatMemory(vm.memoryBytes)],
      [
        'placement',
        `${vm.placement.policy}${labels.length > 0 ? ` on hosts with ${labels.join(', ')}` : ''}`,
      ],
      ['restart', vm.restart === 'always' ? 'always (re-placed when its host is lost)' : 'no'],
      ...(vm.reportedAt ? [['reported', vm.reportedAt] as [string, string]] : []),
      ...(vm.error ? [['error', vm.error] as [string, string]] : []),
    ]);
  });
  return ExitCode.OK;
};

/** `myhv --cluster URL vm rm NAME…`: every name checked first; each VM's host then deletes it. */
export const clusterVmRm: CommandHandler = async (ctx, [rawNames]) => {
  const names = (rawNames as string[]).map((n) => parseVmName(n));
  const cluster = await connect(ctx);
  const vms = new Map((await cluster.vms()).map((vm) => [vm.name, vm]));
  for (const name of names) {
    const vm = vms.get(name);
    if (!vm) throw await notFound(name);
    if (ctx.options.force !== true && clusterVmJson(vm).status === 'running') {
      throw new CliError('IN_USE', `${name} is running`, {
        details: { hint: `stop it first (\`myhv --cluster … vm stop ${name}\`), or pass --force` },
      });
    }
  }
  const removed: string[] = [];
  for (const name of names) {
    // Conditioned on the read: a VM that started (or changed) since the check above is not removed.
    const vm = vms.get(name)!;
    if (await cluster.deleteVm(name, { revision: vm.revision, statusRevision: vm.statusRevision }))
      removed.push(name);
    ctx.out.print(ctx.out.ok(`removed ${name} (its host deletes it)`));
  }
  ctx.out.emitJson({ removed });
  return ExitCode.OK;
};

export const clusterVmStart: CommandHandler = (ctx, [rawName]) => setRunning(ctx, rawName, true);
export const clusterVmStop: CommandHandler = (ctx, [rawName]) => setRunning(ctx, rawName, false);

/** `vm start|stop --cluster`: the desired state changes; waits for the host to report it done. */
async function setRunning(ctx: CommandContext, rawName: unknown, running: boolean): Promise<number> {
  const name = parseVmName(rawName);
  const cluster = await connect(ctx);
  const from = (await cluster.revision()) + 1;
  await cluster.setRunning(name, running);
  const wanted = running ? 'running' : 'stopped';
  const done = await waitForReport(cluster, name, from, (status) => status === wanted || status === 'failed');
  const vm = clusterVmJson(done ?? (await cluster.vm(name))!);
  ctx.out.result({ vm }, () => {
    if (vm.status === wanted)
      ctx.out.print(ctx.out.ok(`${running ? 'started' : 'stopped'} ${name} on ${vm.host}`));
    else if (vm.status === 'failed')
      ctx.out.print(ctx.out.bad(`${name} on ${vm.host} failed: ${vm.error ?? '?'}`));
    else ctx.out.note(`${name} should now be ${wanted}; its host has not reported it yet`);
  });
  return vm.status === 'failed' ? ExitCode.FAILED : ExitCode.OK;
}

/** `myhv --cluster URL cluster hosts`: the live members, their room and their lease. */
export const clusterHosts: CommandHandler = async (ctx) => {
  const config = await ctx.config();
  if (!config.cluster) {
    throw invalidValue('--cluster', 'missing: which cluster?', 'e.g. --cluster etcd=http://10.0.0.1:2379');
  }
  const cluster = await connect(ctx);
  const [hosts, vms] = await Promise.all([cluster.hosts(), cluster.vms()]);
  const rows = hosts.map((host) => hostJson(host, vms));
  ctx.out.result({ hosts: rows }, () =>
    ctx.out.table(
      ['host', 'address', 'subnet', 'cpus', 'memory', 'vms', 'lease', 'labels'],
      rows.map((h) => [
        h.id,
        h.address,
        h.subnet,
        `${h.cpusPlaced}/${h.capacity.cpus}`,
        `${formatMemory(h.memoryPlacedBytes)}/${formatMemory(h.capacity.memoryBytes)}`,
        String(h.vms),
        h.leaseTtlSeconds < 0 ? 'expired' : `${h.leaseTtlSeconds}s`,
        Object.entries(h.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(',') || '-',
      ]),
    ),
  );
  return ExitCode.OK;
};

function hostJson(host: LiveHost, vms: readonly ClusterVm[]) {
  const placed = vms.filter((vm) => vm.assignment?.host === host.id);
  return {
    id: host.id,
    address: host.address,
    subnet: host.subnet,
    capacity: host.capacity,
    labels: host.labels,
    startedAt: host.startedAt,
    leaseTtlSeconds: host.leaseTtlSeconds,
    vms: placed.length,
    cpusPlaced: placed.reduce((n, vm) => n + vm.spec.cpus, 0),
    memoryPlacedBytes: placed.reduce((n, vm) => n + vm.spec.memoryBytes, 0),
  };
}

/** The cluster connection of this invocation, closed when the command ends. */
async function connect(ctx: CommandContext): Promise<Cluster> {
  const config = await ctx.config();
  const { Cluster } = await import('@my-hypervisor/cluster');
  const cluster = new Cluster({ endpoints: config.cluster ?? [], timeoutMs: 5_000 });
  ctx.defer(async () => cluster.close());
  return cluster;
}

/**
 * The VM once its host reported a status for its current placement that `accept`s, watching from `fromRevision`;
 * undefined after REPORT_TIMEOUT_MS (the desired state stands: its host acts when it can).
 */
async function waitForReport(
  cluster: Cluster,
  name: string,
  fromRevision: number,
  accept: (status: string) => boolean,
): Promise<ClusterVm | undefined> {
  const signal = AbortSignal.timeout(REPORT_TIMEOUT_MS);
  try {
    for await (const event of cluster.watch(`vms/${name}/status`, { fromRevision, signal })) {
      if (event.type !== 'put') continue;
      const vm = await cluster.vm(name);
      if (!vm) return undefined;
      const json = clusterVmJson(vm);
      if (json.status !== 'pending' && accept(json.status)) return vm;
    }
  } catch (error) {
    if (!signal.aborted) throw error;
  }
  return undefined;
}

async function notFound(name: string): Promise<Error> {
  const { ClusterError } = await import('@my-hypervisor/cluster');
  return new ClusterError('NOT_FOUND', `no VM named ${name} in the cluster`, { field: 'name' });
}
