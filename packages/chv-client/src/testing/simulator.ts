import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { API_ROOT, type ChvEndpointSpec, findEndpointSpec } from '../endpoint-table.js';
import type { VmState } from '../schemas/primitives.js';
import { socketAnswers } from '../socket-path.js';
import { checkBody, simBodySchema, withSerdeDefaults } from './sim-body-check.js';
import { SimEventWriter } from './sim-events.js';
import {
  apiFailure,
  badRequest,
  noRoute,
  SimFailure,
  type SimulatorVersion,
  serdeFailure,
  versionMajor,
  vmErr,
} from './sim-failure.js';
import { SimHttpServer, type SimRequest, type SimResponse } from './sim-http.js';
import { SimLog } from './sim-log.js';
import { SimVmm } from './sim-vmm.js';

/** How a simulator listens and behaves: socket, simulated release, logs, and the failures and delays to inject. */
export interface SimulatorOptions {
  /** Where to listen (`--api-socket path=`). One of `socketPath` and `socketFd` is required. */
  readonly socketPath?: string;
  /** An inherited listening socket (`--api-socket fd=`). */
  readonly socketFd?: number;
  /** Which release to behave like (error formats, status codes, routes). Default `v53`. */
  readonly version?: SimulatorVersion;
  /** `--event-monitor`: an fd number or a file path. */
  readonly eventMonitor?: number | string;
  /** `--log-file`; without it, log lines go to stderr only when `logToStderr` is set (the CLI does). */
  readonly logFile?: string;
  readonly logToStderr?: boolean;
  /** `-v` count: 1 adds info lines, 2 debug lines. */
  readonly verbose?: number;
  /** A named TAP that does not exist fails the boot (default true). The real VMM would create one. */
  readonly strictTaps?: boolean;
  /** `--no-shutdown` (v52+): a guest power-off leaves the VMM running. */
  readonly noShutdown?: boolean;
  /** Endpoints (`vm.boot`) that fail like the VMM would; `startup` makes the start itself fail. */
  readonly fail?: readonly string[];
  /** Delay before answering, for every endpoint or per endpoint name. */
  readonly delayMs?: number | Readonly<Record<string, number>>;
  /** Accept connections, read requests, never answer. */
  readonly hang?: boolean;
  /** How the simulated guest treats the power button (default `poweroff`). */
  readonly powerButton?: 'poweroff' | 'ignore';
  /** How long the simulated guest takes to power off after the button. Default 20 ms. */
  readonly powerOffDelayMs?: number;
  /** Where TAPs are looked up (default `/sys/class/net`); tests point it at a fake tree. */
  readonly sysClassNetDir?: string;
  /** Request bodies above this are refused. Default 4 MiB. */
  readonly maxBodyBytes?: number;
}

/** Why the simulated VMM ended. */
export interface SimulatorExit {
  readonly reason: 'vmm.shutdown' | 'guest-poweroff' | 'close';
}

/** A failure to start, with the VMM's error chain (what the CLI prints as "chain of errors"). */
export class SimulatorStartError extends Error {
  override readonly name = 'SimulatorStartError';
  readonly chain: readonly string[];

  constructor(chain: readonly string[], options?: { cause?: unknown }) {
    super(chain.join(': '), options);
    this.chain = chain;
  }
}

/** The largest request body (bytes) the simulator accepts unless `maxBodyBytes` says otherwise. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

// Endpoints newer than some simulated releases: older ones answer 404 like the real VMM did.
const endpointSince: Readonly<Record<string, number>> = {
  'vm.resize-disk': 53,
  'vm.add-generic-vhost-user': 53,
};

/**
 * An in-process Cloud Hypervisor stand-in that speaks the real API over a real Unix socket. No guest runs.
 * `close()` behaves like SIGTERM: the VM is shut down, events are written, the socket is removed.
 */
export class Simulator implements AsyncDisposable {
  readonly socketPath: string | undefined;
  readonly version: SimulatorVersion;
  /** Resolves when the simulated VMM ends (vmm.shutdown, guest power-off, or close()). */
  readonly closed: Promise<SimulatorExit>;
  readonly #options: SimulatorOptions;
  readonly #log: SimLog;
  readonly #events: SimEventWriter | undefined;
  readonly #vmm: SimVmm;
  readonly #http: SimHttpServer;
  #resolveClosed!: (exit: SimulatorExit) => void;
  #closing: Promise<void> | undefined;
  #vmmShutdownEmitted = false;

  private constructor(options: SimulatorOptions, log: SimLog, events: SimEventWriter | undefined) {
    this.#options = options;
    this.socketPath = options.socketPath;
    this.version = options.version ?? 'v53';
    this.#log = log;
    this.#events = events;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#vmm = new SimVmm({
      version: this.version,
      strictTaps: options.strictTaps ?? true,
      sysClassNetDir: options.sysClassNetDir ?? '/sys/class/net',
      powerButton: options.powerButton ?? 'poweroff',
      powerOffDelayMs: options.powerOffDelayMs ?? 20,
      noShutdown: options.noShutdown ?? false,
      log,
      event: (source, event, properties) => {
        if (source === 'vmm' && event === 'shutdown') this.#vmmShutdownEmitted = true;
        this.#events?.write(source, event, properties);
      },
      // Let the response go out first, as the VMM does before its thread exits.
      exit: (reason) => setImmediate(() => void this.#close(reason)),
    });
    this.#http = new SimHttpServer((request) => this.#handle(request), {
      maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      ...(options.hang ? { hang: true } : {}),
    });
  }

  /** Starts listening; rejects with a SimulatorStartError where the real VMM would fail to start. */
  static async start(options: SimulatorOptions): Promise<Simulator> {
    if ((options.socketPath === undefined) === (options.socketFd === undefined)) {
      throw new TypeError('startSimulator: give exactly one of socketPath and socketFd');
    }
    const log = new SimLog(options.logFile, options.verbose ?? 0, options.logToStderr ?? false);
    const events =
      options.eventMonitor === undefined
        ? undefined
        : new SimEventWriter(
            typeof options.eventMonitor === 'number'
              ? { fd: options.eventMonitor }
              : { path: options.eventMonitor },
          );
    const simulator = new Simulator(options, log, events);
    events?.write('vmm', 'starting');
    try {
      await simulator.#listen();
    } catch (error) {
      const chain =
        error instanceof SimulatorStartError ? error.chain : ['Error starting the VMM', String(error)];
      log.error(`Error: Cloud Hypervisor exited with the following chain of errors: ${chain.join(': ')}`);
      log.close();
      await events?.close();
      throw error instanceof SimulatorStartError ? error : new SimulatorStartError(chain, { cause: error });
    }
    return simulator;
  }

  /** The VM's state, or undefined when no VM is created. */
  get state(): VmState | undefined {
    return this.#vmm.state;
  }

  /** The stored `vm.create` body, as sent. */
  get config(): Readonly<Record<string, unknown>> | undefined {
    return this.#vmm.config;
  }

  /** Open vhost-user (virtio-fs) connections: one per `fs` entry while the VM runs. */
  get fsConnectionCount(): number {
    return this.#vmm.fsConnectionCount;
  }

  /** Connections accepted on the API socket so far. */
  get acceptedConnections(): number {
    return this.#http.acceptedConnections;
  }

  /** Like SIGTERM to the VMM: shuts the VM down, removes the socket. Idempotent. */
  close(): Promise<void> {
    return this.#close('close');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #listen() {
    const o = this.#options;
    if (o.fail?.includes('startup')) {
      throw new SimulatorStartError([
        'Error starting the VMM',
        'Simulated startup failure (MYHV_SIM_FAIL=startup)',
      ]);
    }
    if (o.socketFd !== undefined) {
      await this.#http.listen({ fd: o.socketFd });
      this.#log.info(`API server listening on fd ${o.socketFd}`);
      return;
    }
    const socketPath = o.socketPath!;
    if (fs.existsSync(socketPath)) await this.#handleExistingSocket(socketPath);
    await this.#warmUp();
    try {
      await this.#http.listen({ path: socketPath });
    } catch (error) {
      throw new SimulatorStartError(
        ['Error creating the API server', 'Cannot create the API socket', osText(error)],
        {
          cause: error,
        },
      );
    }
    const epochMs = performance.timeOrigin + performance.now();
    this.#log.info(`API server listening on ${socketPath}`);
    // Benchmarks read this line to know when the socket started accepting.
    this.#log.debug(`API socket accepting at epoch_ms=${epochMs.toFixed(3)}`);
  }

  /**
   * Runs the request path once before listening, so the first real request does not pay for compiling it: the
   * real VMM is native code and answers its first ping in microseconds.
   */
  async #warmUp() {
    findEndpointSpec('vmm.ping');
    await this.#vmm.handle('vmm.ping', undefined);
    this.#http.warmUp();
  }

  async #handleExistingSocket(socketPath: string) {
    const addressInUse = new SimulatorStartError([
      'Error creating the API server',
      'Cannot create the API socket',
      'Address in use (os error 98)',
    ]);
    // Before v53 the VMM binds blindly and fails on a leftover file.
    if (versionMajor(this.version) < 53) throw addressInUse;
    if (!fs.lstatSync(socketPath).isSocket() || (await socketAnswers(socketPath))) {
      throw new SimulatorStartError(['Error creating the API server', `API socket ${socketPath} is in use`]);
    }
    fs.unlinkSync(socketPath);
  }

  async #handle(request: SimRequest): Promise<SimResponse> {
    try {
      return await this.#route(request);
    } catch (error) {
      if (!(error instanceof SimFailure)) throw error;
      this.#log.info(`HTTP API error response: ${error.chain.join(': ')}`);
      return { status: error.status(this.version), body: error.body(this.version) };
    }
  }

  async #route(request: SimRequest): Promise<SimResponse> {
    const name = request.path.startsWith(`${API_ROOT}/`) ? request.path.slice(API_ROOT.length + 1) : '';
    const endpoint = findEndpointSpec(name);
    if (!endpoint || versionMajor(this.version) < (endpointSince[name] ?? 0)) {
      throw noRoute();
    }
    if (request.method !== 'GET' && request.method !== 'PUT') return { status: 400 };
    if (request.method !== endpoint.method) throw badRequest();
    let body: Record<string, unknown> | undefined;
    if (endpoint.body) {
      if (!request.body) {
        if (name === 'vm.create') return { status: 400 };
        throw badRequest();
      }
      body = parseBody(endpoint, request.body);
    } else if (request.body) {
      throw badRequest();
    }
    this.#log.info(`API request event: ${name}`);
    if (this.#options.fail?.includes(name)) {
      throw apiFailure(
        name,
        vmErr.other('internal', [`Simulated failure (MYHV_SIM_FAIL=${name})`], 'SimulatedFailure'),
      );
    }
    const delay = this.#delayFor(name);
    if (delay > 0) await sleep(delay);
    return this.#vmm.handle(name, body);
  }

  #delayFor(name: string): number {
    const delay = this.#options.delayMs;
    if (typeof delay === 'number') return delay;
    return delay?.[name] ?? 0;
  }

  #close(reason: SimulatorExit['reason']): Promise<void> {
    this.#closing ??= (async () => {
      this.#vmm.exitCleanup();
      if (!this.#vmmShutdownEmitted) this.#events?.write('vmm', 'shutdown');
      await this.#http.close();
      const socketPath = this.#options.socketPath;
      // The listener unlinks its socket on close; make sure, without touching anything that is not a socket.
      if (socketPath && fs.lstatSync(socketPath, { throwIfNoEntry: false })?.isSocket())
        fs.rmSync(socketPath);
      this.#log.info(`VMM exiting (${reason})`);
      this.#log.close();
      await this.#events?.close();
      this.#resolveClosed({ reason });
    })();
    return this.#closing;
  }
}

/** Starts an in-process simulator; see `SimulatorOptions`. */
export function startSimulator(options: SimulatorOptions): Promise<Simulator> {
  return Simulator.start(options);
}

function parseBody(endpoint: ChvEndpointSpec, raw: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (error) {
    throw serdeFailure(error instanceof Error ? error.message : 'invalid JSON');
  }
  // The lenient reading of the request schema (unknown fields kept, null for absent options), checked without
  // zod: see sim-body-check.ts.
  const issue = checkBody(simBodySchema(endpoint.body!), withSerdeDefaults(endpoint.body!, value));
  if (issue) throw serdeFailure(serdeText(issue));
  return value as Record<string, unknown>;
}

/** The first zod issue (or the same issue from checkBody) in serde's words: `missing field \`payload\``, …. */
function serdeText(issue: {
  readonly code: string;
  readonly path: readonly PropertyKey[];
  readonly message: string;
}): string {
  const field = issue.path.at(-1);
  if (issue.code === 'invalid_type' && issue.message.includes('undefined') && field !== undefined) {
    return `missing field \`${String(field)}\``;
  }
  return `${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message}`;
}

function osText(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return 'Address in use (os error 98)';
  if (code === 'ENOENT') return 'No such file or directory (os error 2)';
  if (code === 'EACCES') return 'Permission denied (os error 13)';
  return error instanceof Error ? error.message : String(error);
}
