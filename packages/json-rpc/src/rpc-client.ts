import { createConnection, type Socket } from 'node:net';
import { JsonRpcError } from './errors.js';
import { idFromOversizedLine, LineSplitter, type OversizedLine } from './line-splitter.js';
import {
  isPlainSuccessResponse,
  JSON_RPC_VERSION,
  type JsonRpcId,
  type JsonRpcResponse,
  jsonRpcErrorResponseSchema,
  jsonRpcSuccessResponseSchema,
} from './protocol.js';
import { assertSocketPath } from './unix-socket.js';

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
const DEFAULT_SERVICE_NAME = 'the JSON-RPC server';
/** How many timed-out or aborted ids we remember, to tell a late answer from a stranger's. */
const ABANDONED_IDS_KEPT = 1024;
const LINE_EXCERPT_CHARS = 200;
const FLUSH_CHARS = 64 * 1024;

/** What was wrong with a message that answers no pending call. */
export type JsonRpcProtocolIssueKind =
  /** A line that is not JSON. */
  | 'invalid-json'
  /** JSON that is not a JSON-RPC 2.0 response (nor a notification). */
  | 'invalid-message'
  /** A line over `maxLineBytes`, dropped unread. */
  | 'line-too-long'
  /** A response whose id matches no call we made (`id: null` included: we never send it). */
  | 'unknown-id'
  /** A response to a call that already timed out or was aborted. */
  | 'late-response'
  /** A request from the server (the client serves none), or a notification when no `onNotification` is set. */
  | 'notification'
  /** An error response with `id: null`: the server could not tell which request it answers. */
  | 'error-without-id';

/** Something the server sent that answers no pending call. Reported, never thrown. */
export interface JsonRpcProtocolIssue {
  readonly kind: JsonRpcProtocolIssueKind;
  readonly message: string;
  /** The start of the offending line. */
  readonly line?: string;
  readonly id?: JsonRpcId | null;
}

/** A notification from the server: a message with a `method` and no `id`, which gets no answer. */
export interface JsonRpcNotification {
  readonly method: string;
  /** The notification's `params` as sent (an object or an array), or undefined when it has none. */
  readonly params: unknown;
}

/** Where the server listens, the client's limits, the hooks for what the server sends unasked, and error mapping. */
export interface JsonRpcClientOptions {
  /** The server's Unix socket. */
  readonly socketPath: string;
  /** Default per-call timeout in milliseconds (connecting included). Default 10 000. */
  readonly timeoutMs?: number;
  /** The longest line accepted from the server, in bytes. Default 1 MiB. */
  readonly maxLineBytes?: number;
  /** Names the server in error messages, e.g. `'mosnetd'`. Default `'the JSON-RPC server'`. */
  readonly serviceName?: string;
  /** Appended to the message when nothing listens at the socket: how to start the server. */
  readonly unavailableHint?: string;
  /**
   * Turns every `JsonRpcError` into the caller's own error before a call rejects (or the constructor throws), so
   * a client library can keep one error class. Default: the `JsonRpcError` itself.
   */
  readonly mapError?: (error: JsonRpcError) => Error;
  /** Receives the server's notifications. Without it they are reported as `notification` protocol issues. */
  readonly onNotification?: (notification: JsonRpcNotification) => void;
  /** Told about lines that answer no pending call (garbage, unknown ids, requests). Default: ignored. */
  readonly onProtocolError?: (issue: JsonRpcProtocolIssue) => void;
}

/** Per-call options: cancellation, a timeout for this one call, and its id once sent. */
export interface JsonRpcCallOptions {
  readonly signal?: AbortSignal;
  /** Overrides the client's `timeoutMs` for this call. */
  readonly timeoutMs?: number;
  /** Called with the request's id once it is queued on a connection, e.g. to send a cancel notification later. */
  readonly onSent?: (id: number) => void;
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
  readonly onSent: ((id: number) => void) | undefined;
  onAbort: (() => void) | undefined;
  /** Where the request went, once sent. */
  connection: Connection | undefined;
  settled: boolean;
}

/** One socket and the calls in flight on it. Calls never outlive their connection. */
interface Connection {
  readonly socket: Socket;
  readonly pending: Map<number, PendingCall>;
  /** False once the server ended or the socket failed: new calls open a new connection. */
  alive: boolean;
  /** Requests made in this tick, written together at its end (or every 64 KiB). */
  outgoing: string;
  /** Told when `outgoing` has been written (notify() waits for it); empty for plain calls. */
  written: ((error: Error | null | undefined) => void)[];
  lastError: Error | undefined;
}

/**
 * A JSON-RPC 2.0 client over a Unix socket: newline-delimited JSON, params by name. Calls are pipelined on one
 * connection and matched by id; the connection opens on the first call, is reopened after the server restarts,
 * and does not keep the process alive while no call is in flight. Every failure is a `JsonRpcError`, passed
 * through `mapError` when one is given.
 */
export class JsonRpcClient implements AsyncDisposable {
  /** The server's Unix socket. */
  readonly socketPath: string;
  /** The default per-call timeout in milliseconds. */
  readonly timeoutMs: number;
  /** The longest line accepted from the server, in bytes. */
  readonly maxLineBytes: number;
  readonly #serviceName: string;
  readonly #unavailableHint: string | undefined;
  readonly #mapError: ((error: JsonRpcError) => Error) | undefined;
  readonly #onNotification: ((notification: JsonRpcNotification) => void) | undefined;
  readonly #onProtocolError: ((issue: JsonRpcProtocolIssue) => void) | undefined;
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

  constructor(options: JsonRpcClientOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    const {
      socketPath,
      timeoutMs = DEFAULT_TIMEOUT_MS,
      maxLineBytes = DEFAULT_MAX_LINE_BYTES,
      serviceName = DEFAULT_SERVICE_NAME,
      unavailableHint,
      mapError,
      onNotification,
      onProtocolError,
    } = options;
    for (const [name, hook] of Object.entries({ mapError, onNotification, onProtocolError })) {
      if (hook !== undefined && typeof hook !== 'function') throw new TypeError(`${name} must be a function`);
    }
    if (typeof serviceName !== 'string' || serviceName.length === 0) {
      throw new TypeError('serviceName must be a non-empty string');
    }
    if (unavailableHint !== undefined && typeof unavailableHint !== 'string') {
      throw new TypeError('unavailableHint must be a string');
    }
    if (typeof socketPath !== 'string' || socketPath.length === 0) {
      throw new TypeError('socketPath must be a non-empty string');
    }
    try {
      assertSocketPath(socketPath);
    } catch (error) {
      throw mapError && error instanceof JsonRpcError ? mapError(error) : error;
    }
    validateTimeout(timeoutMs, 'timeoutMs');
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) {
      throw new TypeError(`maxLineBytes must be a positive integer, got ${String(maxLineBytes)}`);
    }
    this.socketPath = socketPath;
    this.timeoutMs = timeoutMs;
    this.maxLineBytes = maxLineBytes;
    this.#serviceName = serviceName;
    this.#unavailableHint = unavailableHint;
    this.#mapError = mapError;
    this.#onNotification = onNotification;
    this.#onProtocolError = onProtocolError;
  }

  /** True while a connection to the server is open and usable. */
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
   * Calls `method` with `params` by name and resolves with the `result`. Rejects with a `JsonRpcError` (through
   * `mapError`): UNAVAILABLE or PERMISSION_DENIED when the socket cannot be reached, DISCONNECTED when the
   * connection drops before the answer, REMOTE_ERROR for the server's error, MALFORMED_RESPONSE, TIMEOUT after
   * `timeoutMs`, ABORTED when `signal` aborts or the client closes. Wrong argument types reject with a TypeError.
   */
  call(
    method: string,
    params: Readonly<Record<string, unknown>> = {},
    options: JsonRpcCallOptions = {},
  ): Promise<unknown> {
    try {
      return this.#start(method, params, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Sends `method` with `params` by name as a notification (no id, no answer) on the current connection, opening
   * one if needed, and resolves once it is written to the socket. Rejects like `call()` when the socket cannot be
   * reached, the connection drops first, the client is closed or `signal` aborts (the line may then still go out).
   */
  notify(
    method: string,
    params: Readonly<Record<string, unknown>> = {},
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<void> {
    try {
      checkRequest(method, params);
      const { signal } = options;
      if (this.#closed) throw this.#mapped(closedError(method));
      if (signal?.aborted) throw this.#mapped(abortError(method, signal));
      const line = `${JSON.stringify({ jsonrpc: JSON_RPC_VERSION, method, params })}\n`;
      return new Promise<void>((resolve, reject) => {
        let done = false;
        const settle = (error?: JsonRpcError) => {
          if (done) return;
          done = true;
          signal?.removeEventListener('abort', onAbort);
          if (error) reject(this.#mapped(error));
          else resolve();
        };
        const onAbort = () => settle(abortError(method, signal!));
        signal?.addEventListener('abort', onAbort, { once: true });
        const send = (connection: Connection) => {
          if (done) return;
          if (!connection.alive) {
            settle(droppedError(this.#serviceName, this.socketPath, method, connection.lastError, 'sending'));
            return;
          }
          connection.written.push((error) =>
            settle(
              error ? droppedError(this.#serviceName, this.socketPath, method, error, 'sending') : undefined,
            ),
          );
          write(connection, line);
        };
        const current = this.#current;
        if (current?.alive) send(current);
        else this.#connect().then(send, (error: JsonRpcError) => settle(error));
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #start(
    method: string,
    params: Readonly<Record<string, unknown>>,
    options: JsonRpcCallOptions,
  ): Promise<unknown> {
    checkRequest(method, params);
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    validateTimeout(timeoutMs, 'options.timeoutMs');
    const { signal, onSent } = options;
    if (onSent !== undefined && typeof onSent !== 'function')
      throw new TypeError('onSent must be a function');
    if (this.#closed) throw this.#mapped(closedError(method));
    if (signal?.aborted) throw this.#mapped(abortError(method, signal));
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
        onSent,
        onAbort: undefined,
        connection: undefined,
        settled: false,
      };
      // Deadlines share one timer instead of AbortSignal.timeout() (+ AbortSignal.any()) per call: at tens of
      // thousands of calls per second, two signals per call cost more than the call itself (see net-mosnet's
      // pipelining benchmark).
      this.#waiting.add(call);
      if (call.deadline < this.#timerAt) this.#armTimer(call.deadline);
      if (signal) {
        call.onAbort = () => this.#expire(call, abortError(method, signal));
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

  /** The same as `close()`, for `await using`. */
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
        reject(unreachableError(this.#serviceName, this.socketPath, this.#unavailableHint, error));
      };
      socket.once('error', onConnectError);
      socket.once('connect', () => {
        socket.off('error', onConnectError);
        if (this.#closed) {
          socket.destroy();
          reject(new JsonRpcError('ABORTED', 'the client is closed'));
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
      written: [],
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
            ? new JsonRpcError('ABORTED', `${call.method}: the client was closed before the answer`, {
                details: { method: call.method },
              })
            : droppedError(
                this.#serviceName,
                this.socketPath,
                call.method,
                connection.lastError,
                'answering',
              ),
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
      this.#report({
        kind: 'invalid-json',
        message: `${this.#serviceName} sent a line that is not JSON`,
        line,
      });
      return;
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      this.#report({
        kind: 'invalid-message',
        message: `${this.#serviceName} sent JSON that is not a response`,
        line,
      });
      return;
    }
    if ('method' in message) {
      this.#handleServerMessage(
        message as { method: unknown; id?: JsonRpcId | null; params?: unknown },
        line,
      );
      return;
    }
    // Picking the branch by its key spares every answer a failed union attempt.
    const parsed = isPlainSuccessResponse(message)
      ? { success: true as const, data: message }
      : ('error' in message ? jsonRpcErrorResponseSchema : jsonRpcSuccessResponseSchema).safeParse(message);
    const rawId = (message as { id?: unknown }).id;
    if (!parsed.success) {
      // A malformed answer to a call we can identify fails that call now rather than at its timeout.
      const call = typeof rawId === 'number' ? connection.pending.get(rawId) : undefined;
      if (call) {
        this.#fail(
          call,
          new JsonRpcError(
            'MALFORMED_RESPONSE',
            `${call.method}: ${this.#serviceName} answered with a malformed response`,
            { cause: parsed.error, details: { method: call.method, response: excerpt(line) } },
          ),
        );
        return;
      }
      this.#report({
        kind: 'invalid-message',
        message: `${this.#serviceName} sent an invalid JSON-RPC response`,
        line,
      });
      return;
    }
    const response: JsonRpcResponse = parsed.data;
    if (response.id === null && 'error' in response) {
      this.#report({
        kind: 'error-without-id',
        message: `${this.#serviceName} reported an error for no request id: ${response.error.message}`,
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
          : `${this.#serviceName} answered an id no call is waiting for`,
        line,
        id: response.id,
      });
      return;
    }
    if ('error' in response) this.#fail(call, remoteError(call.method, response.error));
    else {
      this.#finish(call);
      call.resolve(response.result);
    }
  }

  /** A notification goes to `onNotification`; a request (it has an id, even null) is ours to refuse: reported. */
  #handleServerMessage(
    message: { method: unknown; id?: JsonRpcId | null; params?: unknown },
    line: string,
  ): void {
    const { id } = message;
    if (id === undefined && this.#onNotification) {
      const { method, params } = message;
      const valid =
        (message as { jsonrpc?: unknown }).jsonrpc === JSON_RPC_VERSION &&
        typeof method === 'string' &&
        method.length > 0 &&
        (params === undefined || (typeof params === 'object' && params !== null));
      if (!valid) {
        this.#report({
          kind: 'invalid-message',
          message: `${this.#serviceName} sent an invalid JSON-RPC notification`,
          line,
        });
        return;
      }
      try {
        this.#onNotification({ method, params });
      } catch {
        // A failing hook must not take the connection down with it.
      }
      return;
    }
    this.#report({
      kind: 'notification',
      message: `${this.#serviceName} sent a notification or request`,
      line,
      ...(id === undefined ? {} : { id }),
    });
  }

  #handleOversized(connection: Connection, line: OversizedLine): void {
    const id = idFromOversizedLine(line);
    const call = id === undefined ? undefined : connection.pending.get(id);
    if (call) {
      this.#fail(
        call,
        new JsonRpcError(
          'MALFORMED_RESPONSE',
          `${call.method}: the answer is ${line.bytes} bytes, over the client's maxLineBytes (${this.maxLineBytes})`,
          { details: { method: call.method, bytes: line.bytes, maxLineBytes: this.maxLineBytes } },
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
      this.#fail(
        call,
        droppedError(this.#serviceName, this.socketPath, call.method, connection.lastError, 'answering'),
      );
      return;
    }
    call.connection = connection;
    connection.pending.set(call.id, call);
    if (connection.pending.size === 1) connection.socket.ref();
    write(connection, line);
    if (call.onSent) {
      try {
        call.onSent(call.id);
      } catch {
        // The request is on its way: a failing hook must not leave it half-tracked.
      }
    }
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
    if (this.#finish(call)) call.reject(this.#mapped(error));
  }

  /** The error the caller sees: a JsonRpcError through `mapError`; anything else (a bug) as it is. */
  #mapped(error: unknown): unknown {
    if (!this.#mapError || !(error instanceof JsonRpcError)) return error;
    try {
      return this.#mapError(error);
    } catch (mappingError) {
      return mappingError;
    }
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
      if (call.deadline <= now) this.#expire(call, this.#timeoutError(call.method, call.timeoutMs));
      else if (call.deadline < next) next = call.deadline;
    }
    if (next !== Number.POSITIVE_INFINITY) this.#armTimer(next);
  }

  /** A timeout or abort: the answer may still come, and is then reported as late rather than unknown. */
  #expire(call: PendingCall, error: JsonRpcError): void {
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

  #timeoutError(method: string, timeoutMs: number): JsonRpcError {
    return new JsonRpcError(
      'TIMEOUT',
      `${method}: ${this.#serviceName} did not answer within ${timeoutMs} ms`,
      {
        cause: new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError'),
        details: { method, timeoutMs },
      },
    );
  }

  #report(issue: JsonRpcProtocolIssue): void {
    if (!this.#onProtocolError) return;
    const reported = issue.line === undefined ? issue : { ...issue, line: excerpt(issue.line) };
    try {
      this.#onProtocolError(reported);
    } catch {
      // A failing hook must not take the connection down with it.
    }
  }
}

function checkRequest(method: unknown, params: unknown): void {
  if (typeof method !== 'string' || method.length === 0)
    throw new TypeError('method must be a non-empty string');
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw new TypeError('params must be an object: this client sends params by name');
  }
}

function validateTimeout(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > 2_147_483_647) {
    throw new TypeError(`${name} must be a positive number of milliseconds, got ${String(value)}`);
  }
}

/**
 * Requests made in the same tick leave together (one string, one syscall), or every 64 KiB so the server can start
 * on a long burst while the rest is still being made.
 */
function write(connection: Connection, line: string): void {
  if (connection.outgoing === '') process.nextTick(flush, connection);
  connection.outgoing += line;
  if (connection.outgoing.length >= FLUSH_CHARS) flush(connection);
}

function flush(connection: Connection): void {
  const { outgoing, written } = connection;
  if (outgoing === '') return;
  connection.outgoing = '';
  if (written.length === 0) {
    if (!connection.socket.destroyed) connection.socket.write(outgoing);
    return;
  }
  connection.written = [];
  const done = (error: Error | null | undefined) => {
    for (const callback of written) callback(error);
  };
  if (connection.socket.destroyed) done(connection.lastError ?? new Error('the socket is closed'));
  else connection.socket.write(outgoing, done);
}

function excerpt(line: string): string {
  return line.length > LINE_EXCERPT_CHARS ? `${line.slice(0, LINE_EXCERPT_CHARS)}…` : line;
}

function closedError(method: string): JsonRpcError {
  return new JsonRpcError('ABORTED', `${method}: the client is closed`, { details: { method } });
}

/** TIMEOUT when the signal's reason is a TimeoutError (`AbortSignal.timeout()`), else ABORTED. */
function abortError(method: string, signal: AbortSignal): JsonRpcError {
  const reason: unknown = signal.reason;
  const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
  return new JsonRpcError(
    timedOut ? 'TIMEOUT' : 'ABORTED',
    `${method}: ${timedOut ? 'timed out' : 'aborted'} by the caller's signal`,
    { cause: reason, details: { method } },
  );
}

/** REMOTE_ERROR keeping the server's code, message and data; a string `data.field` becomes `details.field`. */
function remoteError(method: string, error: { code: number; message: string; data?: unknown }): JsonRpcError {
  const { data } = error;
  const field =
    typeof data === 'object' && data !== null && typeof (data as { field?: unknown }).field === 'string'
      ? (data as { field: string }).field
      : undefined;
  return new JsonRpcError('REMOTE_ERROR', `${method}: ${error.message}`, {
    details: {
      method,
      rpcCode: error.code,
      ...(data === undefined ? {} : { data }),
      ...(field === undefined ? {} : { field }),
    },
  });
}

/** The error for a socket we could not connect to. */
function unreachableError(
  serviceName: string,
  socketPath: string,
  hint: string | undefined,
  error: Error,
): JsonRpcError {
  const errno = (error as NodeJS.ErrnoException).code;
  const details = { socketPath, ...(errno === undefined ? {} : { errno }) };
  if (errno === 'EACCES' || errno === 'EPERM') {
    return new JsonRpcError(
      'PERMISSION_DENIED',
      `cannot connect to ${serviceName} at ${socketPath}: permission denied (the socket's mode is ${serviceName}'s access control)`,
      { cause: error, details },
    );
  }
  const why =
    errno === 'ENOENT'
      ? 'no socket at that path'
      : errno === 'ECONNREFUSED'
        ? 'nothing is listening'
        : (errno ?? error.message);
  return new JsonRpcError(
    'UNAVAILABLE',
    `${serviceName} is not reachable at ${socketPath} (${why})${hint ? `: ${hint}` : ''}`,
    { cause: error, details },
  );
}

/** The error for a call (or notification) whose connection dropped before it was answered (or written). */
function droppedError(
  serviceName: string,
  socketPath: string,
  method: string,
  cause: Error | undefined,
  before: 'answering' | 'sending',
): JsonRpcError {
  const what =
    before === 'answering'
      ? 'closed the connection before answering (was it restarted?)'
      : 'closed the connection before the notification was sent';
  return new JsonRpcError('DISCONNECTED', `${method}: ${serviceName} at ${socketPath} ${what}`, {
    cause,
    details: { method, socketPath },
  });
}
