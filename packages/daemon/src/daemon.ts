import {
  buildDaemonOpenrpcDocument,
  type DaemonHello,
  type DaemonStatus,
  DEFAULT_DAEMON_SOCKET,
  rpcErrorFromError,
} from '@my-hypervisor/client';
import { type JsonRpcServerLimits, serveJsonRpc } from '@my-hypervisor/json-rpc';
import { type ReconcileReport, type VmManager, VmManagerError } from '@my-hypervisor/vm-manager';
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
  const methods = createHandlers({
    manager,
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
  watcher.start();
  const listening = server;
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      closing = true;
      await watcher.stop();
      await listening.close();
    })();
    return closed;
  };
  return { socketPath, reconciled, status, close, [Symbol.asyncDispose]: close };
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
