import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { daemonHostSettings, networkRefresher, openManager } from '../backends.js';
import { CliError, invalidValue } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { listenForInterrupt } from '../interrupt.js';
import type { CommandHandler } from '../run.js';
import { describeVmm } from '../vmm-choice.js';

/**
 * `myhv daemon run` (what `myhvd` runs): holds one VmManager and serves it on the daemon socket until SIGINT or
 * SIGTERM; reconciles first, then watches the VMMs. Stopping it leaves every VM running. What it does on its own is
 * printed on stderr, one line each (NDJSON with --json).
 */
export const daemonRun: CommandHandler = async (ctx) => {
  const { options, out } = ctx;
  const watchIntervalMs =
    options.watchInterval === undefined ? 2_000 : milliseconds('--watch-interval', options.watchInterval);
  const driftIntervalMs =
    options.driftInterval === undefined ? 30_000 : milliseconds('--drift-interval', options.driftInterval);
  const gid = options.group === undefined ? undefined : await groupId(String(options.group));
  const dashboard = await dashboardOptions(options);
  const config = await ctx.config();
  const { clusterJoinOptions, joinCluster, CLUSTER_NETWORK } = await import('../cluster-join.js');
  const clusterJoin = clusterJoinOptions(config, options);
  const vmm = await ctx.vmm();
  // A second daemon on this state would take the first one's cluster record over before failing on the socket.
  if (clusterJoin) await refuseLiveDaemon(config.daemonSocket);
  const joined = clusterJoin && (await joinCluster(config, clusterJoin));
  if (joined) ctx.defer(async () => joined.cluster.close());
  const parts = await openManager(config, { kind: 'full', vmm, recordNetwork: true, shareResults: true });
  ctx.defer(parts.close);
  const { createDaemon } = await import('@my-hypervisor/daemon');
  const log = (entry: { level: string; message: string; vm?: string; error?: unknown }) => {
    const error = entry.error instanceof Error ? entry.error.message : undefined;
    if (ctx.flags.json) {
      out.note(
        JSON.stringify({
          time: new Date().toISOString(),
          level: entry.level,
          message: entry.message,
          ...(entry.vm ? { vm: entry.vm } : {}),
          ...(error ? { error } : {}),
        }),
      );
    } else out.note(`myhvd: ${entry.vm ? `${entry.vm}: ` : ''}${entry.message}${error ? `: ${error}` : ''}`);
  };
  using interrupt = listenForInterrupt(ctx.io);
  const daemon = await createDaemon({
    manager: parts.manager,
    socketPath: config.daemonSocket,
    ...(gid === undefined ? {} : { gid, mode: 0o660 }),
    watchIntervalMs,
    driftIntervalMs,
    reconcile: options.reconcile !== false,
    settings: {
      ...daemonHostSettings(parts.config, vmm),
      ...(joined ? { cluster: config.cluster!.join(','), hostId: joined.host.id } : {}),
    },
    // Networks made by `myhv net create` after the daemon started are picked up before the next VM change.
    refresh: networkRefresher(parts),
    onLog: log,
    ...(dashboard ? { dashboard } : {}),
    ...(joined
      ? {
          cluster: {
            cluster: joined.cluster,
            membership: joined.membership,
            host: joined.host,
            register: joined.register,
            network: CLUSTER_NETWORK,
            ...(clusterJoin?.concurrency === undefined ? {} : { concurrency: clusterJoin.concurrency }),
          },
        }
      : {}),
  });
  if (joined) {
    log({
      level: 'info',
      message: `cluster: joined as ${joined.host.id} (subnet ${joined.subnet}, lease ${joined.register.ttlSeconds} s) via ${config.cluster!.join(',')}`,
    });
  }
  log({
    level: 'info',
    message: `listening on ${daemon.socketPath} (pid ${process.pid}; ${describeVmm(vmm)}; ${(await parts.manager.list()).length} VM(s))`,
  });
  if (!interrupt.signal.aborted) await once(interrupt.signal, 'abort');
  log({ level: 'info', message: `${interrupt.received ?? 'signal'}: stopping; the VMs keep running` });
  await daemon.close();
  return ExitCode.OK;
};

/** Fails when a daemon already answers on `socketPath`. */
async function refuseLiveDaemon(socketPath: string): Promise<void> {
  const { createClient } = await import('@my-hypervisor/client');
  await using client = createClient({ socketPath, timeoutMs: 1_000 });
  const live = await client.hello().then(
    (hello) => hello,
    () => undefined,
  );
  if (live) {
    throw new CliError('FAILED', `myhvd (pid ${live.pid}) already runs on ${socketPath}`, {
      details: {
        hint: 'stop it first (`systemctl stop myhvd`), or give this one its own --state-dir and --run-dir',
      },
    });
  }
}

/** `myhv daemon status`: whether myhvd answers on its socket, and what it says about itself. Exit 1 when not. */
export const daemonStatus: CommandHandler = async (ctx) => {
  const config = await ctx.config();
  const { createClient } = await import('@my-hypervisor/client');
  await using client = createClient({ socketPath: config.daemonSocket, timeoutMs: 5_000 });
  const status = await client.status().catch((error: unknown) => {
    throw new CliError('DAEMON_UNAVAILABLE', `myhvd does not answer on ${config.daemonSocket}`, {
      cause: error,
      details: { hint: 'start it: `myhvd` (or `systemctl start myhvd`); commands run in-process meanwhile' },
    });
  });
  ctx.out.result({ socket: config.daemonSocket, ...status }, () => {
    const { out } = ctx;
    out.print(out.ok(`myhvd ${status.version} is running on ${config.daemonSocket}`));
    out.print(`pid ${status.pid}, up ${Math.round(status.uptimeMs / 1000)} s since ${status.startedAt}`);
    out.print(`${status.vms} VM(s) in ${status.stateDir}; ${status.connections} connection(s)`);
    const { netBackend, subnet, bridge, netns, vmmBinary } = status.settings;
    if (netBackend !== undefined) {
      out.print(
        `network: ${netBackend} backend, subnet ${subnet}, bridge ${bridge}${netns ? `, netns ${netns}` : ''}; ` +
          `VMM: ${vmmBinary || 'none'}`,
      );
    }
    if (status.settings.cluster) {
      out.print(`cluster: host ${status.settings.hostId} of ${status.settings.cluster}`);
    }
    out.print(
      `watcher: ${status.watcher.checks} check(s), ${status.watcher.exited} VMM exit(s) seen, ${status.watcher.restarted} restart(s), ${status.watcher.drift ?? 0} network drift(s) repaired`,
    );
  });
  return ExitCode.OK;
};

/** `myhv dashboard url`: a one-time login link from myhvd (the socket's mode decides who may have one). */
export const dashboardUrl: CommandHandler = async (ctx) => {
  const config = await ctx.config();
  const { createClient } = await import('@my-hypervisor/client');
  await using client = createClient({ socketPath: config.daemonSocket, timeoutMs: 5_000 });
  const login = await client.dashboardLogin().catch((error: unknown) => {
    // WRONG_STATE (it serves no dashboard) passes through with the daemon's hint.
    if (error instanceof Error && (error as { code?: unknown }).code === 'UNAVAILABLE') {
      throw new CliError('DAEMON_UNAVAILABLE', `myhvd does not answer on ${config.daemonSocket}`, {
        cause: error,
        details: { hint: 'the dashboard is served by myhvd: start it with `myhvd --dashboard PORT`' },
      });
    }
    throw error;
  });
  ctx.out.result(login, () => {
    ctx.out.print(login.url);
    ctx.out.note(`open it in a browser on this machine before ${login.expiresAt}; it works once`);
  });
  return ExitCode.OK;
};

/** `--dashboard [host:]port` and the TLS files, checked (and the files read) before the daemon starts. */
async function dashboardOptions(options: Record<string, unknown>) {
  const cert = options.dashboardTlsCert === undefined ? undefined : String(options.dashboardTlsCert);
  const key = options.dashboardTlsKey === undefined ? undefined : String(options.dashboardTlsKey);
  if (options.dashboard === undefined) {
    if (cert !== undefined || key !== undefined) {
      throw invalidValue(
        '--dashboard-tls-cert',
        'the TLS options need --dashboard',
        'e.g. --dashboard 0.0.0.0:8780',
      );
    }
    return undefined;
  }
  const text = String(options.dashboard);
  const match = /^(?:(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]{1,253}):)?(\d{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : Number.NaN;
  if (!match || port > 65_535) {
    throw invalidValue(
      '--dashboard',
      `${JSON.stringify(text)} is not [host:]port`,
      'e.g. 8780 or 127.0.0.1:8780',
    );
  }
  const host = match[1]?.replace(/^\[(.*)\]$/, '$1') ?? '127.0.0.1';
  if ((cert === undefined) !== (key === undefined)) {
    throw invalidValue(
      cert === undefined ? '--dashboard-tls-cert' : '--dashboard-tls-key',
      'give both the certificate and its key',
    );
  }
  const { isLoopback } = await import('@my-hypervisor/dashboard');
  if (!isLoopback(host) && cert === undefined) {
    throw invalidValue(
      '--dashboard',
      `${host} is not a loopback address: serving the dashboard beyond this machine needs TLS`,
      'add --dashboard-tls-cert FILE --dashboard-tls-key FILE, or listen on 127.0.0.1',
    );
  }
  const read = async (flag: string, path: string) =>
    readFile(path, 'utf8').catch((error: unknown) => {
      throw invalidValue(flag, `cannot read ${path}: ${(error as Error).message}`);
    });
  const tls =
    cert !== undefined && key !== undefined
      ? { cert: await read('--dashboard-tls-cert', cert), key: await read('--dashboard-tls-key', key) }
      : undefined;
  return { port, host, ...(tls ? { tls } : {}) };
}

function milliseconds(flag: string, raw: unknown): number {
  const text = String(raw);
  if (!/^\d{1,9}$/.test(text)) {
    throw invalidValue(
      flag,
      `${JSON.stringify(text)} is not a number of milliseconds`,
      'e.g. 2000; 0 turns it off',
    );
  }
  return Number(text);
}

/** The gid of a group by name (or number), from /etc/group: Node has no getgrnam. */
async function groupId(name: string): Promise<number> {
  if (/^\d{1,10}$/.test(name)) return Number(name);
  if (!/^[a-z_][a-z0-9_-]{0,31}\$?$/i.test(name)) {
    throw invalidValue('--group', `${JSON.stringify(name)} is not a group name`);
  }
  const groups = await readFile('/etc/group', 'utf8').catch(() => '');
  for (const line of groups.split('\n')) {
    const [group, , gid] = line.split(':');
    if (group === name && gid && /^\d+$/.test(gid)) return Number(gid);
  }
  throw invalidValue('--group', `no group named ${name} in /etc/group`, `create it: groupadd ${name}`);
}
