import { join } from 'node:path';
import {
  buildDaemonOpenrpcDocument,
  type DaemonHello,
  type DaemonStatus,
  DEFAULT_DAEMON_SOCKET,
  rpcErrorFromError,
} from '@my-hypervisor/client';
import type { DashboardServer } from '@my-hypervisor/dashboard';
import { type JsonRpcServerLimits, serveJsonRpc } from '@my-hypervisor/json-rpc';
import {
  ensurePrivateDir,
  type ReconcileReport,
  type VmManager,
  VmManagerError,
} from '@my-hypervisor/vm-manager';
import type { DaemonClusterOptions } from './cluster-member.js';
import { createHandlers } from './handlers.js';
import { KeyedQueue } from './keyed-queue.js';
import { VERSION } from './version.js';
import { VmmWatcher } from './vmm-watcher.js';

/** What myhvd serves, where, to whom, with which limits, and how it watches the VMs. */
export interface DaemonOptions {
  /**
   * The manager the daemon holds: every call goes to it. Make it with `shareResults: true`: `vm.list` and `vm.get`
   * then answer an unchanged VM from its JSON kept in memory instead of reading and serializing it again.
   */
  readonly manager: VmManager;
  /** Where to listen. Default `/run/myhv/myhvd.sock`. A live daemon there is an error; a stale socket is replaced. */
  readonly socketPath?: string;
  /** The socket's mode: who may connect. Default 0o600 (root only); 0o660 with `gid` lets that group in. */
  readonly mode?: number;
  /** The group owning the socket (with `mode` 0o660, its members may call the daemon). */
  readonly gid?: number;
  /** The longest request line accepted (bytes). Default 4 MiB. */
  readonly maxLineBytes?: number;
  /**
   * Per-connection limits. Defaults: 128 connections, 256 calls in flight per connection, 8 MiB of unread
   * output, 50 000 requests per second per connection (burst 50 000).
   */
  readonly limits?: JsonRpcServerLimits;
  /** Run `reconcile()` before listening (what a restart after a crash needs). Default true. */
  readonly reconcile?: boolean;
  /** How often the watcher looks for VMMs that died (ms); 0 turns it off. Default 2 000. */
  readonly watchIntervalMs?: number;
  /**
   * How often the watcher also looks for network drift (a bridge, TAP, namespace or forward deleted behind the
   * daemon's back) and has `reconcile()` put it back (ms; at a watcher check, so never more often than
   * `watchIntervalMs`); 0 turns it off. Default 30 000.
   */
  readonly driftIntervalMs?: number;
  /**
   * The host settings this daemon runs with, as its front end names them (`subnet`, `netBackend`, …): answered by
   * `daemon.hello` and `daemon.status`, so that a client can tell whether its own choices match before it sends
   * work. `stateDir` is always the manager's. Default: just that.
   */
  readonly settings?: Readonly<Record<string, string>>;
  /**
   * Called before each call that changes a VM and before `host.reconcile`/`host.drift`: a front end's chance to
   * bring the manager up to date with the host, e.g. network records made since the daemon started
   * (`VmManager.setNetworks`). A failure fails that call. Default: nothing.
   */
  readonly refresh?: () => Promise<void>;
  /** Told about what the daemon does on its own (reconcile, watcher restarts, failures). Default: nothing. */
  readonly onLog?: (entry: DaemonLogEntry) => void;
  /**
   * Serve the web dashboard (ADR 015) over HTTP on this port, beside the socket. Off by default. `myhv dashboard
   * url` (`dashboard.login`) hands out login links over the socket, so the socket's mode still decides who may.
   */
  readonly dashboard?: DaemonDashboardOptions;
  /**
   * Take part in a cluster (ADR 016): run the host agent for the VMs placed on this host (labelled `myhv.cluster`)
   * and campaign for the placement controller. The daemon owns the connection from then on and closes it.
   */
  readonly cluster?: DaemonClusterOptions;
}

/** Where and how the daemon serves its dashboard. */
export interface DaemonDashboardOptions {
  /** The TCP port; 0 picks a free one (`Daemon.dashboard.url` tells which). */
  readonly port: number;
  /** Default `127.0.0.1`; anything but a loopback address needs `tls`. */
  readonly host?: string;
  /** Certificate and key (PEM contents) to serve HTTPS. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** The key that signs sessions: made 0600 on first use. Default `<stateDir>/dashboard.secret`. */
  readonly secretPath?: string;
  /** The built front end. Default: `@my-hypervisor/dashboard`'s own. */
  readonly uiDir?: string;
}

/** One line of what the daemon did on its own. */
export interface DaemonLogEntry {
  readonly level: 'info' | 'warn' | 'error';
  readonly message: string;
  readonly vm?: string;
  readonly error?: unknown;
}

/** A running daemon. */
export interface Daemon extends AsyncDisposable {
  readonly socketPath: string;
  /** What the reconcile at start changed (undefined when `reconcile: false`). */
  readonly reconciled: ReconcileReport | undefined;
  /** The dashboard's base URL, when it serves one. */
  readonly dashboard: { readonly url: string } | undefined;
  status(): Promise<DaemonStatus>;
  /**
   * Stops listening, cancels calls in flight and subscriptions, waits for them, and stops the watcher. The VMs
   * keep running: VMMs are detached, and the next daemon adopts them.
   */
  close(): Promise<void>;
}

const DEFAULT_LIMITS: JsonRpcServerLimits = {
  maxConnections: 128,
  maxInFlight: 256,
  maxBufferedBytes: 8 * 1024 * 1024,
  requestsPerSecond: 50_000,
  burst: 50_000,
};

/**
 * Starts myhvd's API on a Unix socket: reconciles first (a daemon restarted after a crash repairs what the
 * crash left), then listens and watches the VMMs. Resolves once it is listening.
 */
export async function createDaemon(options: DaemonOptions): Promise<Daemon> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { manager, socketPath = DEFAULT_DAEMON_SOCKET, onLog } = options;
  if (typeof manager?.list !== 'function') throw new TypeError('manager must be a VmManager');
  const watchIntervalMs = wholeMs(options.watchIntervalMs ?? 2_000, 'watchIntervalMs');
  const driftIntervalMs = wholeMs(options.driftIntervalMs ?? 30_000, 'driftIntervalMs');
  const log = (entry: DaemonLogEntry) => {
    try {
      onLog?.(entry);
    } catch {
      // A failing logger must not take the daemon down.
    }
  };
  const settings = Object.freeze({ ...settingsOf(options.settings), stateDir: manager.options.stateDir });
  // Checked before any work: a dashboard that cannot be served must not leave a half-started daemon.
  const dashboardSetup = options.dashboard && (await prepareDashboard(options.dashboard, manager));
  const hello = async (): Promise<DaemonHello> => ({ version: VERSION, pid: process.pid, settings });
  const startedAt = new Date();
  const reconciled = options.reconcile === false ? undefined : await manager.reconcile();
  if (reconciled) {
    log({ level: 'info', message: `reconciled: ${reconciled.changes.length} change(s)` });
  }
  let closing = false;
  let server: Awaited<ReturnType<typeof serveJsonRpc>> | undefined;
  const queue = new KeyedQueue();
  const watcher = new VmmWatcher(manager, queue, watchIntervalMs, log, driftIntervalMs);
  const status = async (): Promise<DaemonStatus> => ({
    ...(await hello()),
    startedAt: startedAt.toISOString(),
    uptimeMs: Date.now() - startedAt.getTime(),
    connections: server?.connections ?? 0,
    vms: (await manager.list()).length,
    stateDir: manager.options.stateDir,
    watcher: watcher.stats,
  });
  let dashboard: DashboardServer | undefined;
  const methods = createHandlers({
    manager,
    dashboardLogin: () => {
      if (!dashboard) {
        throw new VmManagerError('WRONG_STATE', 'this daemon serves no dashboard', {
          details: { hint: 'start myhvd with --dashboard PORT (e.g. --dashboard 8780)' },
        });
      }
      return dashboard.loginUrl();
    },
    queue,
    hello,
    status,
    ...(options.refresh ? { refresh: options.refresh } : {}),
    document: buildDaemonOpenrpcDocument(),
    closing: () => closing,
  });
  // A socket that cannot be listened on fails as the JsonRpcError it is (ADDRESS_IN_USE: another myhvd runs).
  server = await serveJsonRpc({
    socketPath,
    ...(options.mode === undefined ? {} : { mode: options.mode }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
    maxLineBytes: options.maxLineBytes ?? 4 * 1024 * 1024,
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    tempPrefix: '.myhvd-',
    methods,
    errorFor: rpcErrorFromError,
    closingReason: () => new VmManagerError('ABORTED', 'myhvd is stopping'),
  });
  const listening = server;
  if (dashboardSetup) {
    try {
      dashboard = await dashboardSetup.start(methods);
    } catch (error) {
      await listening.close();
      throw error;
    }
    log({ level: 'info', message: `dashboard: ${dashboard.url}` });
  }
  watcher.start();
  const leaving = new AbortController();
  const member =
    options.cluster &&
    (async () => {
      const { runClusterMember } = await import('./cluster-member.js');
      await runClusterMember(options.cluster!, { manager, queue, log, signal: leaving.signal });
    })().catch((error: unknown) => log({ level: 'error', message: 'cluster: stopped', error }));
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      closing = true;
      leaving.abort();
      await member;
      options.cluster?.cluster.close();
      await dashboard?.close();
      await watcher.stop();
      await listening.close();
    })();
    return closed;
  };
  return {
    socketPath,
    reconciled,
    dashboard: dashboard && { url: dashboard.url },
    status,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * Checks the dashboard's options and reads (or makes) its secret, before the daemon does any work; `start` then
 * serves it with the daemon's handlers. The dashboard package (and `ws`) is loaded only when it is asked for.
 */
async function prepareDashboard(
  config: DaemonDashboardOptions,
  manager: VmManager,
): Promise<{ start: (methods: ReturnType<typeof createHandlers>) => Promise<DashboardServer> }> {
  if (typeof config !== 'object' || config === null) throw new TypeError('dashboard must be an object');
  const dashboardModule = await import('@my-hypervisor/dashboard');
  /** A DashboardError as the manager's error, its field under `dashboard.`; anything else as it is. */
  const managerError = (error: unknown) =>
    error instanceof dashboardModule.DashboardError
      ? new VmManagerError(error.code === 'ADDRESS_IN_USE' ? 'BUSY' : 'INVALID_ARGUMENT', error.message, {
          cause: error,
          details: { field: `dashboard.${error.field ?? 'port'}` },
        })
      : error;
  const { port, host = '127.0.0.1' } = config;
  try {
    dashboardModule.checkListenOptions(config);
  } catch (error) {
    throw managerError(error);
  }
  const secretPath = config.secretPath ?? join(manager.options.stateDir, 'dashboard.secret');
  let secret: Buffer;
  try {
    if (config.secretPath === undefined) ensurePrivateDir(manager.options.stateDir, 'the state directory');
    secret = dashboardModule.loadOrCreateSecret(secretPath);
  } catch (error) {
    if (VmManagerError.isInstance(error)) throw error;
    throw new VmManagerError('UNSAFE_PERMISSIONS', (error as Error).message, {
      cause: error,
      details: { path: secretPath, field: 'dashboard.secretPath' },
    });
  }
  return {
    start: async (methods) => {
      try {
        return await dashboardModule.createDashboardServer({
          port,
          host,
          ...(config.tls ? { tls: config.tls } : {}),
          ...(config.uiDir ? { uiDir: config.uiDir } : {}),
          secret,
          methods,
          errorFor: rpcErrorFromError,
          version: VERSION,
          events: ({ vm, since, signal }) =>
            manager.journal({ ...(vm === undefined ? {} : { vm }), since, follow: true, signal }),
          console: (vm, signal) => manager.console(vm, { signal }),
        });
      } catch (error) {
        throw managerError(error);
      }
    },
  };
}

function wholeMs(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0)
    throw new TypeError(`${name} must be a whole number of milliseconds`);
  return value;
}

function settingsOf(settings: unknown): Record<string, string> {
  if (settings === undefined) return {};
  if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) {
    throw new TypeError('settings must be an object of strings');
  }
  for (const [key, value] of Object.entries(settings)) {
    if (typeof value !== 'string') throw new TypeError(`settings.${key} must be a string`);
  }
  return settings as Record<string, string>;
}
