import { z } from 'zod';
import { API_ROOT, type ChvEndpoint, findEndpoint } from './endpoints.js';
import { classifyApiError, parseErrorBody } from './error-classify.js';
import { abortError, ChvApiError, type ChvApiErrorOptions, throwIfAborted } from './errors.js';
import type {
  ReceiveMigrationData,
  RestoreConfig,
  SendMigrationData,
  VmAddUserDevice,
  VmCoredumpData,
  VmRemoveDevice,
  VmResize,
  VmResizeDisk,
  VmResizeZone,
  VmSnapshotConfig,
} from './schemas/requests.js';
import {
  type PciDeviceInfo,
  pciDeviceInfoReader,
  type VmCounters,
  type VmInfo,
  type VmmPingResponse,
  vmCountersReader,
  vmInfoReader,
  vmmPingResponseReader,
} from './schemas/responses.js';
import type {
  DeviceConfig,
  DiskConfig,
  FsConfig,
  GenericVhostUserConfig,
  NetConfig,
  PmemConfig,
  VdpaConfig,
  VmConfig,
  VsockConfig,
} from './schemas/vm-config.js';
import { type ChvServerVersion, parseServerVersion } from './server-version.js';
import { type UnixHttpError, UnixHttpTransport } from './unix-http.js';

/** How to reach a VMM: its API socket path, timeouts and connection reuse. */
export interface ChvClientOptions {
  /** The VMM's `--api-socket` path. */
  readonly socketPath: string;
  /** Budget per call, including the wait behind earlier calls. Default 30 s. */
  readonly timeoutMs?: number;
  /** Budget for snapshot, restore, coredump and migrations. Default 10 min. */
  readonly longTimeoutMs?: number;
  /** Reuse one connection for every call (default true); false opens one per call. */
  readonly keepAlive?: boolean;
}

/** Per-call options: cancellation and a timeout for this one call. */
export interface ChvCallOptions {
  readonly signal?: AbortSignal;
  /** Overrides the client's budget for this call. */
  readonly timeoutMs?: number;
}

/** How long a call may take by default (ms), unless `timeoutMs` says otherwise. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** The default limit (ms) of the slow calls: snapshot, restore, coredump and migrations (`longTimeoutMs`). */
export const DEFAULT_LONG_TIMEOUT_MS = 600_000;

const unavailableCodes = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTSOCK', 'EACCES']);

/**
 * A typed client for the Cloud Hypervisor REST API over its Unix socket: one method per endpoint, named after
 * it in camelCase. Calls are serialised in order (the VMM serves one request at a time, so a slow call would
 * block the next one there anyway); each has its own timeout and AbortSignal. Errors are `ChvApiError`s with
 * codes that mean the same across the VMM's three error generations.
 */
export class ChvClient implements AsyncDisposable {
  readonly socketPath: string;
  readonly #timeoutMs: number;
  readonly #longTimeoutMs: number;
  readonly #transport: UnixHttpTransport;
  #tail: Promise<void> = Promise.resolve();
  #closed = false;
  #version: Promise<ChvServerVersion> | undefined;

  constructor(options: ChvClientOptions) {
    if (typeof options?.socketPath !== 'string' || options.socketPath === '') {
      throw new TypeError('ChvClient: socketPath must be a non-empty string');
    }
    for (const key of ['timeoutMs', 'longTimeoutMs'] as const) {
      const value = options[key];
      if (value !== undefined && !(Number.isFinite(value) && value > 0)) {
        throw new TypeError(`ChvClient: ${key} must be a positive number`);
      }
    }
    this.socketPath = options.socketPath;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#longTimeoutMs = options.longTimeoutMs ?? DEFAULT_LONG_TIMEOUT_MS;
    this.#transport = new UnixHttpTransport(options.socketPath, { keepAlive: options.keepAlive ?? true });
  }

  /** `GET vmm.ping`: the VMM's version, build, pid and features. Answers whether or not a VM exists. */
  async vmmPing(options?: ChvCallOptions): Promise<VmmPingResponse> {
    return this.#read('vmm.ping', vmmPingResponseReader, options);
  }

  /** `PUT vmm.shutdown`: deletes the VM (shutting it down first) and ends the VMM process. */
  async vmmShutdown(options?: ChvCallOptions): Promise<void> {
    await this.#call('vmm.shutdown', undefined, options);
  }

  /** `GET vm.info`: the stored configuration, the state and, once booted, the device tree. */
  async vmInfo(options?: ChvCallOptions): Promise<VmInfo> {
    return this.#read('vm.info', vmInfoReader, options);
  }

  /** `GET vm.counters`: per-device counters of a running VM. */
  async vmCounters(options?: ChvCallOptions): Promise<VmCounters> {
    return this.#read('vm.counters', vmCountersReader, options);
  }

  /** `PUT vm.create`: stores the configuration; nothing runs until `vmBoot`. */
  async vmCreate(config: VmConfig, options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.create', config, options);
  }

  /** `PUT vm.delete`: shuts the VM down if it runs and forgets it. Succeeds when there is no VM. */
  async vmDelete(options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.delete', undefined, options);
  }

  /** `PUT vm.boot`: builds the devices (opens TAPs, connects vhost-user sockets) and starts the guest. */
  async vmBoot(options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.boot', undefined, options);
  }

  async vmPause(options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.pause', undefined, options);
  }

  async vmResume(options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.resume', undefined, options);
  }

  /** `PUT vm.shutdown`: stops the guest hard; the VM goes back to `Created` and the VMM keeps running. */
  async vmShutdown(options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.shutdown', undefined, options);
  }

  async vmReboot(options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.reboot', undefined, options);
  }

  /** `PUT vm.power-button`: an ACPI power-button press; a cooperative guest powers off. */
  async vmPowerButton(options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.power-button', undefined, options);
  }

  async vmResize(body: VmResize, options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.resize', body, options);
  }

  async vmResizeDisk(body: VmResizeDisk, options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.resize-disk', body, options);
  }

  async vmResizeZone(body: VmResizeZone, options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.resize-zone', body, options);
  }

  /** Hot-plugs a VFIO device; returns its PCI address when the VM runs, undefined for a cold add. */
  async vmAddDevice(config: DeviceConfig, options?: ChvCallOptions): Promise<PciDeviceInfo | undefined> {
    return this.#add('vm.add-device', config, options);
  }

  async vmRemoveDevice(body: VmRemoveDevice, options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.remove-device', body, options);
  }

  async vmAddDisk(config: DiskConfig, options?: ChvCallOptions): Promise<PciDeviceInfo | undefined> {
    return this.#add('vm.add-disk', config, options);
  }

  async vmAddFs(config: FsConfig, options?: ChvCallOptions): Promise<PciDeviceInfo | undefined> {
    return this.#add('vm.add-fs', config, options);
  }

  async vmAddGenericVhostUser(
    config: GenericVhostUserConfig,
    options?: ChvCallOptions,
  ): Promise<PciDeviceInfo | undefined> {
    return this.#add('vm.add-generic-vhost-user', config, options);
  }

  async vmAddPmem(config: PmemConfig, options?: ChvCallOptions): Promise<PciDeviceInfo | undefined> {
    return this.#add('vm.add-pmem', config, options);
  }

  async vmAddNet(config: NetConfig, options?: ChvCallOptions): Promise<PciDeviceInfo | undefined> {
    return this.#add('vm.add-net', config, options);
  }

  async vmAddVsock(config: VsockConfig, options?: ChvCallOptions): Promise<PciDeviceInfo | undefined> {
    return this.#add('vm.add-vsock', config, options);
  }

  async vmAddVdpa(config: VdpaConfig, options?: ChvCallOptions): Promise<PciDeviceInfo | undefined> {
    return this.#add('vm.add-vdpa', config, options);
  }

  async vmAddUserDevice(
    config: VmAddUserDevice,
    options?: ChvCallOptions,
  ): Promise<PciDeviceInfo | undefined> {
    return this.#add('vm.add-user-device', config, options);
  }

  /** `PUT vm.snapshot` to `file:///dir`; the VM must be paused. Long default timeout. */
  async vmSnapshot(body: VmSnapshotConfig, options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.snapshot', body, options);
  }

  async vmCoredump(body: VmCoredumpData, options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.coredump', body, options);
  }

  async vmNmi(options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.nmi', undefined, options);
  }

  /** `PUT vm.restore` from a snapshot directory; no VM may exist. Long default timeout. */
  async vmRestore(body: RestoreConfig, options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.restore', body, options);
  }

  async vmReceiveMigration(body: ReceiveMigrationData, options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.receive-migration', body, options);
  }

  async vmSendMigration(body: SendMigrationData, options?: ChvCallOptions): Promise<void> {
    await this.#call('vm.send-migration', body, options);
  }

  /** The VMM's release from `vmm.ping`, fetched once and cached: branch on it, never on error texts. */
  serverVersion(options?: ChvCallOptions): Promise<ChvServerVersion> {
    if (!this.#version) {
      const pending = this.vmmPing(options).then(parseServerVersion);
      this.#version = pending;
      pending.catch(() => {
        if (this.#version === pending) this.#version = undefined;
      });
    }
    return this.#version;
  }

  /** Closes the connection. Idempotent; later calls fail with UNAVAILABLE. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#transport.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #read<T>(name: string, reader: z.ZodType<T>, options: ChvCallOptions | undefined): Promise<T> {
    const response = await this.#call(name, undefined, options);
    return parseResponse(response, reader, name);
  }

  async #add(name: string, body: unknown, options: ChvCallOptions | undefined) {
    const response = await this.#call(name, body, options);
    if (response.status === 204 || response.body.trim() === '') return undefined;
    return parseResponse(response, pciDeviceInfoReader, name);
  }

  async #call(
    name: string,
    body: unknown,
    options: ChvCallOptions | undefined,
  ): Promise<{ status: number; body: string; endpoint: ChvEndpoint }> {
    const endpoint = findEndpoint(name)!;
    const path = `${API_ROOT}/${endpoint.name}`;
    const where = { method: endpoint.method, path } as const;
    const callerSignal = options?.signal;
    throwIfAborted(callerSignal, name);
    const payload = endpoint.body ? serialiseBody(endpoint, body) : undefined;
    if (this.#closed) throw new ChvApiError('UNAVAILABLE', `${name}: the client is closed`, where);
    const timeoutMs = options?.timeoutMs ?? (endpoint.long ? this.#longTimeoutMs : this.#timeoutMs);
    const timeout = AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs)));
    const signal = callerSignal ? AbortSignal.any([callerSignal, timeout]) : timeout;
    const release = await this.#enterQueue(signal, name, where, callerSignal);
    try {
      const response = await this.#exchange(endpoint, path, payload, signal, callerSignal);
      if (response.status >= 200 && response.status < 300) return { ...response, endpoint };
      const messages = parseErrorBody(response.body);
      const code = classifyApiError(response.status, messages, endpoint.name);
      const summary = messages.length > 0 ? messages[messages.length - 1] : `HTTP ${response.status}`;
      throw new ChvApiError(code, `${name} failed: ${summary}`, {
        ...where,
        status: response.status,
        messages,
        details: { body: response.body },
      });
    } finally {
      release();
    }
  }

  /** Waits for every earlier call to settle; the returned release lets the next one go. */
  async #enterQueue(
    signal: AbortSignal,
    name: string,
    where: ChvApiErrorOptions,
    callerSignal: AbortSignal | undefined,
  ): Promise<() => void> {
    const previous = this.#tail;
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The next call waits for the previous one too, so an abandoned wait never lets it overtake.
    this.#tail = previous.then(() => mine);
    try {
      await waitOrAbort(previous, signal);
    } catch {
      release();
      throw abortError(callerSignal, name, where);
    }
    return release;
  }

  async #exchange(
    endpoint: ChvEndpoint,
    path: string,
    payload: string | undefined,
    signal: AbortSignal,
    callerSignal: AbortSignal | undefined,
  ) {
    const where = { method: endpoint.method, path } as const;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#transport.request(endpoint.method, path, payload, signal);
      } catch (error) {
        const failure = error as UnixHttpError;
        if (signal.aborted) throw abortError(callerSignal, endpoint.name, { ...where, cause: error });
        // A pooled connection the server had already closed: the request never reached it, so send it again.
        if (attempt === 0 && failure.reusedSocket && !failure.responseStarted && isReset(failure)) continue;
        const code = failure.code ?? 'ECONNRESET';
        const reason = unavailableCodes.has(code) || isReset(failure) ? code : (failure.message ?? code);
        throw new ChvApiError(
          'UNAVAILABLE',
          `${endpoint.name}: the VMM at ${this.socketPath} is unavailable (${reason})`,
          { ...where, cause: error },
        );
      }
    }
  }
}

function isReset(error: UnixHttpError): boolean {
  return error.code === 'ECONNRESET' || error.code === 'EPIPE' || /socket hang up/i.test(error.message);
}

function serialiseBody(endpoint: ChvEndpoint, body: unknown): string {
  const result = endpoint.body!.safeParse(body);
  if (!result.success) {
    const issue = result.error.issues[0];
    const at = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    throw new ChvApiError(
      'INVALID_CONFIG',
      `${endpoint.name}: invalid request body: ${at}${issue?.message ?? 'invalid'}`,
      { method: endpoint.method, path: `${API_ROOT}/${endpoint.name}`, cause: result.error },
    );
  }
  return JSON.stringify(result.data);
}

function parseResponse<T>(
  response: { body: string; endpoint: ChvEndpoint },
  reader: z.ZodType<T>,
  name: string,
): T {
  const where = { method: response.endpoint.method, path: `${API_ROOT}/${name}` } as const;
  let json: unknown;
  try {
    json = JSON.parse(response.body);
  } catch (cause) {
    throw new ChvApiError('INTERNAL', `${name}: the VMM answered with invalid JSON`, {
      ...where,
      cause,
      details: { body: response.body },
    });
  }
  const result = reader.safeParse(json);
  if (!result.success) {
    throw new ChvApiError('INTERNAL', `${name}: unexpected response: ${z.prettifyError(result.error)}`, {
      ...where,
      cause: result.error,
      details: { body: response.body },
    });
  }
  return result.data;
}

function waitOrAbort(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
    );
  });
}
