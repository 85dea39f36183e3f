import { createConnection, type Socket } from 'node:net';
import { abortError, NetOpsError } from '@my-hypervisor/net-ops';
import { idFromOversizedLine, LineSplitter, type OversizedLine } from './line-splitter.js';
import {
  JSON_RPC_VERSION,
  type JsonRpcId,
  type JsonRpcResponse,
  jsonRpcErrorResponseSchema,
  jsonRpcSuccessResponseSchema,
} from './protocol.js';
import { netOpsErrorFromRpcError } from './rpc-errors.js';

/** Where mosnetd listens unless told otherwise. */
export const DEFAULT_SOCKET_PATH = '/var/run/mosnet.sock';
/** How long a call may take by default (ms), unless `timeoutMs` says otherwise. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** The longest response line the client reads by default (bytes); longer lines are dropped. */
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

/** Linux `sun_path` holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
/** How many timed-out or aborted ids we remember, to tell a late answer from a stranger's. */
const ABANDONED_IDS_KEPT = 1024;
const LINE_EXCERPT_CHARS = 200;
const FLUSH_CHARS = 64 * 1024;

/** What was wrong with a message that answers no pending call. */
export type MosnetProtocolIssueKind =
  /** A line that is not JSON. */
  | 'invalid-json'
  /** JSON that is not a JSON-RPC 2.0 response. */
  | 'invalid-message'
  /** A line over `maxLineBytes`, dropped unread. */
  | 'line-too-long'
  /** A response whose id matches no call we made (`id: null` included: we never send it). */
  | 'unknown-id'
  /** A response to a call that already timed out or was aborted. */
  | 'late-response'
  /** A notification (or a request) from the daemon; the client serves none. */
  | 'notification'
  /** An error response with `id: null`: the daemon could not tell which request it answers. */
  | 'error-without-id';

/** Something the daemon sent that answers no pending call. Reported, never thrown. */
export interface MosnetProtocolIssue {
  readonly kind: MosnetProtocolIssueKind;
  readonly message: string;
  /** The start of the offending line. */
  readonly line?: string;
  readonly id?: JsonRpcId | null;
}

/** Where mosnetd listens, the client's time and line limits, and who hears about protocol issues. */
export interface MosnetClientOptions {
  /** mosnetd's Unix socket. Default `/var/run/mosnet.sock`. */
  readonly socketPath?: string;
  /** Default per-call timeout in milliseconds (connecting included). Default 10 000. */
  readonly timeoutMs?: number;
  /** The longest response line accepted, in bytes. Default 1 MiB. */
  readonly maxLineBytes?: number;
  /** Told about lines that answer no pending call (garbage, unknown ids, notifications). Default: ignored. */
  readonly onProtocolError?: (issue: MosnetProtocolIssue) => void;
}

/** Per-call options: cancellation and a timeout for this one call. */
export interface MosnetCallOptions {
  readonly signal?: AbortSignal;
  /** Overrides the client's `timeoutMs` for this call. */
  readonly timeoutMs?: number;
}

/** One call from `call()` to its answer. Settled exactly once: by the answer, its timer, its signal or a drop. */
interface PendingCall {
  readonly id: number;
  readonly method: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly timeoutMs: number;
  /** `Date.now()` after which the call fails with TIMEOUT. */
  readonly deadline: number;
  onAbort: (() => void) | undefined;
  /** Where the request went, once sent. */
  connection: Connection | undefined;
  settled: boolean;
}

/** One socket and the calls in flight on it. Calls never outlive their connection. */
interface Connection {
  readonly socket: Socket;
  readonly pending: Map<number, PendingCall>;
  /** False once the daemon ended or the socket failed: new calls open a new connection. */
  alive: boolean;
  /** Requests made in this tick, written together at its end (or every 64 KiB). */
  outgoing: string;
  lastError: Error | undefined;
}

/**
 * A JSON-RPC 2.0 client for mosnetd: newline-delimited JSON over a Unix socket, params by name. Calls are pipelined
 * on one connection and matched by id; the connection opens on the first call and is reopened after the daemon
 * restarts. Every failure is a `NetOpsError`.
 */
export class MosnetClient implements AsyncDisposable {
  readonly socketPath: string;
  readonly timeoutMs: number;
  readonly maxLineBytes: number;
  readonly #onProtocolError: ((issue: MosnetProtocolIssue) => void) | undefined;
  #nextId = 1;
  #current: Connection | undefined;
  // Every open socket: the current one, and one that is closing with calls still on it.
  readonly #connections = new Set<Connection>();
  #connecting: Promise<Connection> | undefined;
  #connectionCount = 0;
  #closed: Promise<void> | undefined;
  readonly #abandoned = new Set<number>();
  // Every unsettled call, in start order, and one timer for the earliest deadline among them.
  readonly #waiting = new Set<PendingCall>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;

  constructor(options: MosnetClientOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    const {
      socketPath = DEFAULT_SOCKET_PATH,
      timeoutMs = DEFAULT_TIMEOUT_MS,
      maxLineBytes = DEFAULT_MAX_LINE_BYTES,
      onProtocolError,
    } = options;
    if (typeof socketPath !== 'string' || socketPath.length === 0) {
      throw new TypeError('socketPath must be a non-empty string');
    }
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
      throw new NetOpsError(
        'INVALID_ARGUMENT',
        `socketPath: ${socketPath} is longer than the ${MAX_SOCKET_PATH_BYTES} bytes a Unix socket path may have`,
        { details: { field: 'socketPath' } },
      );
    }
    validateTimeout(timeoutMs, 'timeoutMs');
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) {
      throw new TypeError(`maxLineBytes must be a positive integer, got ${String(maxLineBytes)}`);
    }
    if (onProtocolError !== undefined && typeof onProtocolError !== 'function') {
      throw new TypeError('onProtocolError must be a function');
    }
    this.socketPath = socketPath;
    this.timeoutMs = timeoutMs;
    this.maxLineBytes = maxLineBytes;
    this.#onProtocolError = onProtocolError;
  }

  /** True while a connection to the daemon is open and usable. */
  get connected(): boolean {
    return this.#current?.alive === true;
  }

  /** How many connections this client has opened; it grows on each reconnect. */
  get connectionCount(): number {
    return this.#connectionCount;
  }

  /** Calls sent and not yet answered. */
  get pendingCalls(): number {
    let count = 0;
    for (const connection of this.#connections) count += connection.pending.size;
    return count;
  }

  /**
   * Calls `method` with `params` by name and resolves with the `result`. Rejects with a NetOpsError: the daemon's
   * error mapped by code (see `netOpsErrorFromRpcError`), BACKEND_UNAVAILABLE when the socket cannot be reached
   * or the connection drops before the answer, TIMEOUT after `timeoutMs`, ABORTED when `signal` aborts.
   */
  call(
    method: string,
    params: Readonly<Record<string, unknown>> = {},
    options: MosnetCallOptions = {},
  ): Promise<unknown> {
    try {
      return this.#start(method, params, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #start(
    method: string,
    params: Readonly<Record<string, unknown>>,
    options: MosnetCallOptions,
  ): Promise<unknown> {
    if (typeof method !== 'string' || method.length === 0)
      throw new TypeError('method must be a non-empty string');
    if (typeof params !== 'object' || params === null || Array.isArray(params)) {
      throw new TypeError('params must be an object: mosnet takes params by name');
    }
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    validateTimeout(timeoutMs, 'options.timeoutMs');
    const { signal } = options;
    if (this.#closed) throw new NetOpsError('ABORTED', `${method}: the mosnet client is closed`);
    if (signal?.aborted) throw abortError(signal);
    const id = this.#nextId++;
    // Serialised before anything else, so a value JSON cannot carry fails as the TypeError it is.
    const line = `${JSON.stringify({ jsonrpc: JSON_RPC_VERSION, id, method, params })}\n`;
    return new Promise((resolve, reject) => {
      const call: PendingCall = {
        id,
        method,
        resolve,
        reject,
        signal,
        timeoutMs,
        deadline: Date.now() + timeoutMs,
        onAbort: undefined,
        connection: undefined,
        settled: false,
      };
      // Deadlines share one timer instead of AbortSignal.timeout() (+ AbortSignal.any()) per call: at tens of
      // thousands of calls per second, two signals per call cost more than the call itself (see the benchmark).
      this.#waiting.add(call);
      if (call.deadline < this.#timerAt) this.#armTimer(call.deadline);
      if (signal) {
        call.onAbort = () => this.#expire(call, abortError(signal));
        signal.addEventListener('abort', call.onAbort, { once: true });
      }
      const current = this.#current;
      // The request line is not kept on the call: with thousands in flight, it would outlive its write.
      if (current?.alive) this.#send(current, call, line);
      else {
        this.#connect().then(
          (connection) => {
            if (!call.settled) this.#send(connection, call, line);
          },
          (error: unknown) => this.#fail(call, error),
        );
      }
    });
  }

  /** Closes the connection; calls still pending reject with ABORTED. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    const connecting = this.#connecting;
    if (connecting) await connecting.catch(() => undefined);
    clearTimeout(this.#timer);
    await Promise.all(
      [...this.#connections].map(
        (connection) =>
          new Promise<void>((resolve) => {
            connection.socket.once('close', () => resolve());
            connection.socket.destroy();
          }),
      ),
    );
  }

  /** The connection to use, opening one if needed; concurrent callers share one attempt. */
  #connect(): Promise<Connection> {
    this.#connecting ??= this.#open().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  #open(): Promise<Connection> {
    return new Promise<Connection>((resolve, reject) => {
      const socket = createConnection({ path: this.socketPath });
      const onConnectError = (error: Error) => {
        socket.destroy();
        reject(unreachableError(this.socketPath, error));
      };
      socket.once('error', onConnectError);
      socket.once('connect', () => {
        socket.off('error', onConnectError);
        if (this.#closed) {
          socket.destroy();
          reject(new NetOpsError('ABORTED', 'the mosnet client is closed'));
          return;
        }
        const connection = this.#attach(socket);
        this.#connectionCount++;
        this.#current = connection;
        resolve(connection);
      });
    });
  }

  #attach(socket: Socket): Connection {
    const connection: Connection = {
      socket,
      pending: new Map(),
      alive: true,
      outgoing: '',
      lastError: undefined,
    };
    const splitter = new LineSplitter(this.maxLineBytes, {
      onLine: (line) => this.#handleLine(connection, line),
      onOversized: (line) => this.#handleOversized(connection, line),
    });
    let ended = false;
    const finish = () => {
      if (ended) return;
      ended = true;
      connection.alive = false;
      // A last response without its newline still answers its call.
      splitter.end();
    };
    // An idle connection must not keep the process alive; one with calls in flight must (see #send, #finish).
    socket.unref();
    socket.on('data', (chunk: Buffer) => splitter.push(chunk));
    socket.on('end', finish);
    socket.on('error', (error) => {
      connection.lastError = error;
    });
    socket.on('close', () => {
      finish();
      this.#connections.delete(connection);
      const closedByUs = this.#closed !== undefined;
      for (const call of [...connection.pending.values()]) {
        this.#fail(
          call,
          closedByUs
            ? new NetOpsError('ABORTED', `${call.method}: the mosnet client was closed before the answer`)
            : droppedError(this.socketPath, call.method, connection.lastError),
        );
      }
    });
    this.#connections.add(connection);
    return connection;
  }

  #handleLine(connection: Connection, line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.#report({ kind: 'invalid-json', message: 'the daemon sent a line that is not JSON', line });
      return;
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      this.#report({ kind: 'invalid-message', message: 'the daemon sent JSON that is not a response', line });
      return;
    }
    if ('method' in message) {
      // A notification has no id member; a request may carry `id: null`, which the issue keeps.
      const id = (message as { id?: JsonRpcId | null }).id;
      this.#report({
        kind: 'notification',
        message: 'the daemon sent a notification or request',
        line,
        ...(id === undefined ? {} : { id }),
      });
      return;
    }
    // Picking the branch by its key spares every answer a failed union attempt.
    const parsed = ('error' in message ? jsonRpcErrorResponseSchema : jsonRpcSuccessResponseSchema).safeParse(
      message,
    );
    const rawId = (message as { id?: unknown }).id;
    if (!parsed.success) {
      // A malformed answer to a call we can identify fails that call now rather than at its timeout.
      const call = typeof rawId === 'number' ? connection.pending.get(rawId) : undefined;
      if (call) {
        this.#fail(
          call,
          new NetOpsError(
            'BACKEND_FAILURE',
            `${call.method}: the daemon answered with a malformed response`,
            {
              cause: parsed.error,
              details: { command: call.method, response: excerpt(line) },
            },
          ),
        );
        return;
      }
      this.#report({
        kind: 'invalid-message',
        message: 'the daemon sent an invalid JSON-RPC response',
        line,
      });
      return;
    }
    const response: JsonRpcResponse = parsed.data;
    if (response.id === null && 'error' in response) {
      this.#report({
        kind: 'error-without-id',
        message: `the daemon reported an error for no request id: ${response.error.message}`,
        line,
        id: null,
      });
      return;
    }
    const call = typeof response.id === 'number' ? connection.pending.get(response.id) : undefined;
    if (!call) {
      const late = typeof response.id === 'number' && this.#abandoned.delete(response.id);
      this.#report({
        kind: late ? 'late-response' : 'unknown-id',
        message: late
          ? 'an answer arrived after its call timed out or was aborted'
          : 'the daemon answered an id no call is waiting for',
        line,
        id: response.id,
      });
      return;
    }
    if ('error' in response) this.#fail(call, netOpsErrorFromRpcError(response.error, call.method));
    else {
      this.#finish(call);
      call.resolve(response.result);
    }
  }

  #handleOversized(connection: Connection, line: OversizedLine): void {
    const id = idFromOversizedLine(line);
    const call = id === undefined ? undefined : connection.pending.get(id);
    if (call) {
      this.#fail(
        call,
        new NetOpsError(
          'BACKEND_FAILURE',
          `${call.method}: the answer is ${line.bytes} bytes, over the client's maxLineBytes (${this.maxLineBytes})`,
          { details: { command: call.method, bytes: line.bytes, maxLineBytes: this.maxLineBytes } },
        ),
      );
      return;
    }
    this.#report({
      kind: 'line-too-long',
      message: `dropped a ${line.bytes}-byte line, over maxLineBytes (${this.maxLineBytes})`,
      line: line.head,
    });
  }

  #send(connection: Connection, call: PendingCall, line: string): void {
    if (!connection.alive) {
      this.#fail(call, droppedError(this.socketPath, call.method, connection.lastError));
      return;
    }
    call.connection = connection;
    connection.pending.set(call.id, call);
    if (connection.pending.size === 1) connection.socket.ref();
    write(connection, line);
  }

  /** Settles nothing: releases the call's deadline, listener and slot. False when it was already settled. */
  #finish(call: PendingCall): boolean {
    if (call.settled) return false;
    call.settled = true;
    this.#waiting.delete(call);
    if (call.onAbort) call.signal?.removeEventListener('abort', call.onAbort);
    const { connection } = call;
    if (connection?.pending.delete(call.id) && connection.pending.size === 0) connection.socket.unref();
    return true;
  }

  #fail(call: PendingCall, error: unknown): void {
    if (this.#finish(call)) call.reject(error);
  }

  #armTimer(at: number): void {
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#expireDue(), Math.max(0, at - Date.now()));
    // Calls in flight keep the process alive through their socket, not through this timer.
    this.#timer.unref();
  }

  /** Fails every call past its deadline and re-arms the timer for the next one. */
  #expireDue(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const call of this.#waiting) {
      if (call.deadline <= now) this.#expire(call, timeoutError(call.method, call.timeoutMs));
      else if (call.deadline < next) next = call.deadline;
    }
    if (next !== Number.POSITIVE_INFINITY) this.#armTimer(next);
  }

  /** A timeout or abort: the answer may still come, and is then reported as late rather than unknown. */
  #expire(call: PendingCall, error: NetOpsError): void {
    if (call.connection?.pending.has(call.id)) this.#abandon(call.id);
    this.#fail(call, error);
  }

  #abandon(id: number): void {
    this.#abandoned.add(id);
    if (this.#abandoned.size > ABANDONED_IDS_KEPT) {
      const oldest = this.#abandoned.values().next().value;
      if (oldest !== undefined) this.#abandoned.delete(oldest);
    }
  }

  #report(issue: MosnetProtocolIssue): void {
    if (!this.#onProtocolError) return;
    const reported = issue.line === undefined ? issue : { ...issue, line: excerpt(issue.line) };
    try {
      this.#onProtocolError(reported);
    } catch {
      // A failing hook must not take the connection down with it.
    }
  }
}

function validateTimeout(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > 2_147_483_647) {
    throw new TypeError(`${name} must be a positive number of milliseconds, got ${String(value)}`);
  }
}

/**
 * Requests made in the same tick leave together (one string, one syscall), or every 64 KiB so the daemon can start
 * on a long burst while the rest is still being made.
 */
function write(connection: Connection, line: string): void {
  if (connection.outgoing === '') process.nextTick(flush, connection);
  connection.outgoing += line;
  if (connection.outgoing.length >= FLUSH_CHARS) flush(connection);
}

function flush(connection: Connection): void {
  const { outgoing } = connection;
  connection.outgoing = '';
  if (!connection.socket.destroyed) connection.socket.write(outgoing);
}

function timeoutError(method: string, timeoutMs: number): NetOpsError {
  return new NetOpsError('TIMEOUT', `${method}: mosnetd did not answer within ${timeoutMs} ms`, {
    cause: new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError'),
    details: { command: method, timeoutMs },
  });
}

function excerpt(line: string): string {
  return line.length > LINE_EXCERPT_CHARS ? `${line.slice(0, LINE_EXCERPT_CHARS)}…` : line;
}

const startHint =
  'start mosnetd with its socket there, or serve any BridgeOps/TapOps/NatOps with createMosnetServer() ' +
  'from @my-hypervisor/net-mosnet/server';

/** The error for a socket we could not connect to. */
function unreachableError(socketPath: string, error: Error): NetOpsError {
  const errno = (error as NodeJS.ErrnoException).code;
  const details = { socketPath, ...(errno === undefined ? {} : { errno }) };
  if (errno === 'EACCES' || errno === 'EPERM') {
    return new NetOpsError(
      'PERMISSION_DENIED',
      `cannot connect to mosnetd at ${socketPath}: permission denied (the socket's mode is mosnet's access control)`,
      { cause: error, details },
    );
  }
  const why =
    errno === 'ENOENT'
      ? 'no socket at that path'
      : errno === 'ECONNREFUSED'
        ? 'nothing is listening'
        : (errno ?? error.message);
  return new NetOpsError(
    'BACKEND_UNAVAILABLE',
    `mosnetd is not reachable at ${socketPath} (${why}): ${startHint}`,
    {
      cause: error,
      details,
    },
  );
}

/** The error for a call whose connection dropped before the answer came. */
function droppedError(socketPath: string, method: string, cause: Error | undefined): NetOpsError {
  return new NetOpsError(
    'BACKEND_UNAVAILABLE',
    `${method}: mosnetd at ${socketPath} closed the connection before answering (was it restarted?)`,
    { cause, details: { command: method, socketPath } },
  );
}
