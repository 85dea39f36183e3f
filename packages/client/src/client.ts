import { JsonRpcClient, type JsonRpcError, type OpenrpcDocument } from '@my-hypervisor/json-rpc';
import {
  type DiskRequest,
  type JournalEvent,
  type NetworkDrift,
  type NetworkRecord,
  type NicRequest,
  type OperationOptions,
  type ReconcileReport,
  type ResizeRequest,
  type ShareRequest,
  type StepEvent,
  type UnreadableRecord,
  type VmDevices,
  type VmInfo,
  VmManagerError,
  type VmSnapshot,
  type VmStats,
} from '@my-hypervisor/vm-manager';
import { managerErrorFromRpcError } from './error-codes.js';
import {
  type DaemonMethodName,
  DEFAULT_DAEMON_SOCKET,
  EVENT_NOTIFICATION,
  PROGRESS_NOTIFICATION,
} from './methods.js';

/** Where the daemon listens and how long a call may take. */
export interface MyhvClientOptions {
  /** myhvd's socket. Default `/run/myhv/myhvd.sock`. */
  readonly socketPath?: string;
  /** How long one call may take before it fails with TIMEOUT (ms). Default 10 minutes. */
  readonly timeoutMs?: number;
  /**
   * What a call does when its `signal` aborts. `reject` (default): it fails at once with ABORTED, and the daemon
   * is told to stop (`$/cancel`) in the background. `wait`: the daemon is told to stop, and the call waits for its
   * answer — the manager's own ABORTED once it has undone its steps (their progress keeps arriving), or the result
   * when the work finished first — exactly what an in-process manager does (the CLI's Ctrl-C).
   */
  readonly onAbort?: 'reject' | 'wait';
}

/** What `daemon.hello` answers: who the daemon is and the host settings it runs with. */
export interface DaemonHello {
  readonly version: string;
  readonly pid: number;
  /**
   * The host settings the daemon runs with, as its front end names them (`myhv daemon run`: `stateDir`, `runDir`,
   * `netBackend`, `nat`, `netns`, `bridge`, `subnet`, `vmmBinary`, `confinement`, …); at least `stateDir`.
   */
  readonly settings: Readonly<Record<string, string>>;
}

/** What `dashboard.login` answers: a login link for the dashboard, used once, and when it stops working. */
export interface DashboardLogin {
  readonly url: string;
  /** ISO time. */
  readonly expiresAt: string;
}

/** What `daemon.status` answers. */
export interface DaemonStatus extends DaemonHello {
  readonly startedAt: string;
  readonly uptimeMs: number;
  readonly connections: number;
  readonly vms: number;
  readonly stateDir: string;
  /**
   * What the watcher did so far: VMs found stopped behind the daemon's back, those restarted, and network pieces
   * found missing and put back (`drift`).
   */
  readonly watcher: {
    readonly checks: number;
    readonly exited: number;
    readonly restarted: number;
    readonly drift: number;
  };
}

const DEFAULT_TIMEOUT_MS = 600_000;
/** The longest a timer can wait: a subscription is open until it is cancelled. */
const FOREVER_MS = 2_147_483_647;

/**
 * A typed client for myhvd. Its methods mirror `VmManager`'s (same names, arguments and results), so code can
 * switch between the in-process manager and the daemon; the manager's failures arrive as the same
 * `VmManagerError` with the same codes and details. Failures of the connection itself are a `JsonRpcError`
 * (UNAVAILABLE, PERMISSION_DENIED, DISCONNECTED). Calls are pipelined on one connection.
 */
export class MyhvClient implements AsyncDisposable {
  readonly socketPath: string;
  readonly #rpc: JsonRpcClient;
  readonly #waitOnAbort: boolean;
  readonly #progress = new Map<number, (event: StepEvent) => void>();
  readonly #subscriptions = new Map<number, (event: JournalEvent) => void>();

  constructor(options: MyhvClientOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    this.socketPath = options.socketPath ?? DEFAULT_DAEMON_SOCKET;
    if (options.onAbort !== undefined && options.onAbort !== 'reject' && options.onAbort !== 'wait') {
      throw new TypeError("onAbort must be 'reject' or 'wait'");
    }
    this.#waitOnAbort = options.onAbort === 'wait';
    this.#rpc = new JsonRpcClient({
      socketPath: this.socketPath,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      // Answers as large as `vm.list` of thousands of VMs.
      maxLineBytes: 256 * 1024 * 1024,
      serviceName: 'myhvd',
      unavailableHint: 'start it with `myhvd` (or `systemctl start myhvd`), or use the library in-process',
      mapError: toClientError,
      onNotification: ({ method, params }) => this.#notified(method, params),
    });
  }

  /** The daemon's version, pid and host settings: one cheap call, to check before sending work. */
  hello(options: { signal?: AbortSignal } = {}): Promise<DaemonHello> {
    return this.#call('daemon.hello', {}, options) as Promise<DaemonHello>;
  }

  /** The daemon's version, pid, uptime, host settings and what it watches. */
  status(options: { signal?: AbortSignal } = {}): Promise<DaemonStatus> {
    return this.#call('daemon.status', {}, options) as Promise<DaemonStatus>;
  }

  /** A one-time login link for the daemon's web dashboard (WRONG_STATE when it serves none). */
  dashboardLogin(options: { signal?: AbortSignal } = {}): Promise<DashboardLogin> {
    return this.#call('dashboard.login', {}, options) as Promise<DashboardLogin>;
  }

  /** The OpenRPC document of the daemon's API. */
  discover(options: { signal?: AbortSignal } = {}): Promise<OpenrpcDocument> {
    return this.#call('rpc.discover', {}, options) as Promise<OpenrpcDocument>;
  }

  listAll(
    options: { signal?: AbortSignal } = {},
  ): Promise<{ vms: VmInfo[]; unreadable: UnreadableRecord[] }> {
    return this.#call('vm.listAll', {}, options) as Promise<{
      vms: VmInfo[];
      unreadable: UnreadableRecord[];
    }>;
  }

  get(name: string, options: { signal?: AbortSignal } = {}): Promise<VmInfo> {
    return this.#call('vm.get', { name }, options) as Promise<VmInfo>;
  }

  list(options: { signal?: AbortSignal } = {}): Promise<VmInfo[]> {
    return this.#call('vm.list', {}, options) as Promise<VmInfo[]>;
  }

  create(input: unknown, options: OperationOptions = {}): Promise<VmInfo> {
    return this.#call('vm.create', { spec: input }, options) as Promise<VmInfo>;
  }

  start(name: string, options: OperationOptions = {}): Promise<VmInfo> {
    return this.#call('vm.start', { name }, options) as Promise<VmInfo>;
  }

  stop(name: string, options: OperationOptions & { gracefulMs?: number } = {}): Promise<VmInfo> {
    return this.#call('vm.stop', { name, ...pick(options, 'gracefulMs') }, options) as Promise<VmInfo>;
  }

  restart(name: string, options: OperationOptions & { gracefulMs?: number } = {}): Promise<VmInfo> {
    return this.#call('vm.restart', { name, ...pick(options, 'gracefulMs') }, options) as Promise<VmInfo>;
  }

  delete(
    name: string,
    options: OperationOptions & { force?: boolean } = {},
  ): Promise<{ name: string; id: string }> {
    return this.#call('vm.delete', { name, ...pick(options, 'force') }, options) as Promise<{
      name: string;
      id: string;
    }>;
  }

  pause(name: string, options: OperationOptions = {}): Promise<VmInfo> {
    return this.#call('vm.pause', { name }, options) as Promise<VmInfo>;
  }

  resume(name: string, options: OperationOptions = {}): Promise<VmInfo> {
    return this.#call('vm.resume', { name }, options) as Promise<VmInfo>;
  }

  resize(name: string, request: ResizeRequest, options: OperationOptions = {}): Promise<VmInfo> {
    return this.#call('vm.resize', { ...request, name }, options) as Promise<VmInfo>;
  }

  stats(name: string, options: { signal?: AbortSignal } = {}): Promise<VmStats> {
    return this.#call('vm.stats', { name }, options) as Promise<VmStats>;
  }

  /** The end of the VM's serial console log (`log: 'vmm'`: its VMM's log), from a line start. */
  logs(
    name: string,
    options: { log?: 'serial' | 'vmm'; maxBytes?: number; signal?: AbortSignal } = {},
  ): Promise<{ vm: string; log: 'serial' | 'vmm'; path: string; text: string }> {
    return this.#call(
      'vm.logs',
      { name, ...pick(options, 'log'), ...pick(options, 'maxBytes') },
      options,
    ) as Promise<{
      vm: string;
      log: 'serial' | 'vmm';
      path: string;
      text: string;
    }>;
  }

  /** The networks recorded on this host. */
  networks(options: { signal?: AbortSignal } = {}): Promise<NetworkRecord[]> {
    return this.#call('network.list', {}, options) as Promise<NetworkRecord[]>;
  }

  devices(name: string, options: { signal?: AbortSignal } = {}): Promise<VmDevices> {
    return this.#call('vm.devices', { name }, options) as Promise<VmDevices>;
  }

  addDisk(name: string, request: DiskRequest, options: OperationOptions = {}): Promise<VmDevices> {
    return this.#call('vm.disk.add', { ...request, name }, options) as Promise<VmDevices>;
  }

  removeDisk(name: string, id: string, options: OperationOptions = {}): Promise<VmDevices> {
    return this.#call('vm.disk.remove', { name, id }, options) as Promise<VmDevices>;
  }

  addShare(name: string, request: ShareRequest, options: OperationOptions = {}): Promise<VmDevices> {
    return this.#call('vm.share.add', { ...request, name }, options) as Promise<VmDevices>;
  }

  removeShare(name: string, tag: string, options: OperationOptions = {}): Promise<VmDevices> {
    return this.#call('vm.share.remove', { name, tag }, options) as Promise<VmDevices>;
  }

  addNic(name: string, request: NicRequest = {}, options: OperationOptions = {}): Promise<VmDevices> {
    return this.#call('vm.nic.add', { ...request, name }, options) as Promise<VmDevices>;
  }

  removeNic(name: string, id: string, options: OperationOptions = {}): Promise<VmDevices> {
    return this.#call('vm.nic.remove', { name, id }, options) as Promise<VmDevices>;
  }

  addForward(name: string, input: unknown, options: OperationOptions = {}): Promise<VmInfo> {
    return this.#call('vm.forward.add', { name, forward: input }, options) as Promise<VmInfo>;
  }

  removeForward(
    name: string,
    input: { protocol?: 'tcp' | 'udp'; hostPort: number },
    options: OperationOptions = {},
  ): Promise<{ removed: boolean; vm: VmInfo }> {
    return this.#call('vm.forward.remove', { ...input, name }, options) as Promise<{
      removed: boolean;
      vm: VmInfo;
    }>;
  }

  snapshot(
    name: string,
    options: OperationOptions & { to?: string; leavePaused?: boolean } = {},
  ): Promise<VmSnapshot> {
    return this.#call(
      'vm.snapshot.create',
      { name, ...pick(options, 'to'), ...pick(options, 'leavePaused') },
      options,
    ) as Promise<VmSnapshot>;
  }

  listSnapshots(name: string, options: { signal?: AbortSignal } = {}): Promise<VmSnapshot[]> {
    return this.#call('vm.snapshot.list', { name }, options) as Promise<VmSnapshot[]>;
  }

  removeSnapshot(name: string, id: string, options: OperationOptions = {}): Promise<VmSnapshot> {
    return this.#call('vm.snapshot.remove', { name, id }, options) as Promise<VmSnapshot>;
  }

  restore(name: string, options: OperationOptions & { from?: string } = {}): Promise<VmInfo> {
    return this.#call('vm.restore', { name, ...pick(options, 'from') }, options) as Promise<VmInfo>;
  }

  drift(options: { signal?: AbortSignal } = {}): Promise<NetworkDrift[]> {
    return this.#call('host.drift', {}, options) as Promise<NetworkDrift[]>;
  }

  reconcile(options: OperationOptions = {}): Promise<ReconcileReport> {
    return this.#call('host.reconcile', {}, options) as Promise<ReconcileReport>;
  }

  /** Journal events so far (of every process on the host), oldest first; `limit` keeps the newest. */
  journal(
    options: { vm?: string; since?: Date; limit?: number; signal?: AbortSignal } = {},
  ): Promise<JournalEvent[]> {
    return this.#call(
      'events.journal',
      {
        ...pick(options, 'vm'),
        ...(options.since ? { since: options.since.toISOString() } : {}),
        ...pick(options, 'limit'),
      },
      options,
    ) as Promise<JournalEvent[]>;
  }

  /**
   * New events of every process on the host (manager steps and statuses, VMM events), as they are written, until
   * `signal` aborts or the loop breaks. Throws DISCONNECTED (a `JsonRpcError`) when the daemon goes away.
   */
  events(options: { vm?: string; signal?: AbortSignal } = {}): AsyncIterable<JournalEvent> {
    return {
      [Symbol.asyncIterator]: () => this.#subscribe(options),
    };
  }

  #subscribe(options: { vm?: string; signal?: AbortSignal }): AsyncIterator<JournalEvent> {
    const queue: JournalEvent[] = [];
    let wake: (() => void) | undefined;
    let failure: unknown;
    let done = false;
    let id: number | undefined;
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const ended = this.#rpc
      .call('events.subscribe', pick(options, 'vm'), {
        signal,
        timeoutMs: FOREVER_MS,
        onSent: (sent) => {
          id = sent;
          this.#subscriptions.set(sent, (event) => {
            queue.push(event);
            wake?.();
          });
          this.#cancelOnAbort(sent, signal);
        },
      })
      .then(
        () => {
          done = true;
        },
        (error: unknown) => {
          done = true;
          // Ending it ourselves (return(), the caller's signal) is not a failure.
          if (!signal.aborted) failure = error;
        },
      )
      .finally(() => {
        if (id !== undefined) this.#subscriptions.delete(id);
        wake?.();
      });
    return {
      next: async (): Promise<IteratorResult<JournalEvent>> => {
        for (;;) {
          const event = queue.shift();
          if (event) return { value: event, done: false };
          if (failure) throw failure;
          if (done) return { value: undefined, done: true };
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      },
      return: async (): Promise<IteratorResult<JournalEvent>> => {
        stop.abort();
        await ended;
        return { value: undefined, done: true };
      },
    };
  }

  /** Closes the connection; calls in flight fail with ABORTED. Idempotent. */
  close(): Promise<void> {
    return this.#rpc.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #call(
    method: DaemonMethodName,
    params: Record<string, unknown>,
    options: { signal?: AbortSignal; onProgress?: (event: StepEvent) => void },
  ): Promise<unknown> {
    const { signal, onProgress } = options;
    if (typeof onProgress === 'function') params = { ...params, progress: true };
    if (!signal && !onProgress) return this.#rpc.call(method, params);
    let sentId: number | undefined;
    let stopCancelling: (() => void) | undefined;
    return this.#rpc
      .call(method, params, {
        // Waiting on abort: the signal only sends the cancel; the call ends with the daemon's answer.
        ...(signal && !this.#waitOnAbort ? { signal } : {}),
        onSent: (id) => {
          sentId = id;
          if (onProgress) this.#progress.set(id, onProgress);
          if (signal) stopCancelling = this.#cancelOnAbort(id, signal);
        },
      })
      .finally(() => {
        // A signal may outlive many calls: neither its listener nor the progress hook may outlive this one.
        stopCancelling?.();
        if (sentId !== undefined) this.#progress.delete(sentId);
      });
  }

  /**
   * Tells the daemon to stop working on call `id` when `signal` aborts (the local call fails at once, unless
   * `onAbort` is `wait`).
   * Returns what removes the listener.
   */
  #cancelOnAbort(id: number, signal: AbortSignal): () => void {
    const cancel = () => void this.#rpc.notify('$/cancel', { id }).catch(() => undefined);
    if (signal.aborted) {
      cancel();
      return () => undefined;
    }
    signal.addEventListener('abort', cancel, { once: true });
    return () => signal.removeEventListener('abort', cancel);
  }

  #notified(method: string, params: unknown): void {
    if (typeof params !== 'object' || params === null) return;
    if (method === PROGRESS_NOTIFICATION) {
      const { id, event } = params as { id?: unknown; event?: StepEvent };
      if (typeof id === 'number' && event) this.#progress.get(id)?.(event);
    } else if (method === EVENT_NOTIFICATION) {
      const { subscription, event } = params as { subscription?: unknown; event?: JournalEvent };
      if (typeof subscription === 'number' && event) this.#subscriptions.get(subscription)?.(event);
    }
  }
}

/** A client for the daemon at `socketPath` (default `/run/myhv/myhvd.sock`); it connects on the first call. */
export function createClient(options: MyhvClientOptions = {}): MyhvClient {
  return new MyhvClient(options);
}

function pick<T extends object, K extends keyof T>(options: T, key: K): Partial<Pick<T, K>> {
  return options[key] === undefined ? {} : ({ [key]: options[key] } as Pick<T, K>);
}

/** The manager's failures become the VmManagerError they were; so do timeouts and aborts. */
function toClientError(error: JsonRpcError): Error {
  if (error.code === 'REMOTE_ERROR') {
    const rpcCode = error.details.rpcCode;
    // The daemon's message as the manager wrote it, without the method the transport puts in front.
    const prefix = `${error.details.method}: `;
    const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
    return (
      (typeof rpcCode === 'number'
        ? managerErrorFromRpcError({ code: rpcCode, message, data: error.details.data })
        : undefined) ?? error
    );
  }
  if (error.code === 'TIMEOUT' || error.code === 'ABORTED') {
    return new VmManagerError(error.code, error.message, { cause: error });
  }
  return error;
}
