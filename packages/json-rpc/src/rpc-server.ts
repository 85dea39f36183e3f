import { createServer, type Server, type Socket } from 'node:net';
import { JsonRpcError, jsonRpcErrorCodes } from './errors.js';
import { idFromOversizedLine, LineSplitter } from './line-splitter.js';
import {
  isId,
  isPlainRequest,
  JSON_RPC_VERSION,
  type JsonRpcErrorObject,
  type JsonRpcId,
  type JsonRpcResponse,
  JsonText,
  jsonRpcRequestSchema,
} from './protocol.js';
import {
  assertSocketPath,
  listenPrivately,
  removeOwnSocket,
  removeStaleSocket,
  type SocketFile,
} from './unix-socket.js';

const FLUSH_CHARS = 64 * 1024;
const CLOSE_GRACE_MS = 1_000;
/** The method that cancels a call in flight on the same connection: `{"method":"$/cancel","params":{"id":7}}`. */
const CANCEL_METHOD = '$/cancel';

/** Serves one method: its params by name, and the call's context. May return a value or a promise. */
export type JsonRpcMethodHandler = (params: Record<string, unknown>, context: JsonRpcCallContext) => unknown;

/** What a handler knows about its call: cancellation, the request id and the connection it came on. */
export interface JsonRpcCallContext {
  /** Aborts when the caller sends `$/cancel` for this id, closes its connection, or the server closes. */
  readonly signal: AbortSignal;
  /** The request's id; undefined for a notification. */
  readonly id: JsonRpcId | null | undefined;
  readonly connection: JsonRpcConnection;
}

/** One client connection, as handlers see it: for notifications (subscriptions, progress). */
export interface JsonRpcConnection {
  /** Unique within the server. */
  readonly id: number;
  readonly closed: boolean;
  /** Aborts when the connection closes (or the server does): end subscriptions with it. */
  readonly signal: AbortSignal;
  /**
   * Sends a notification. False when it was dropped: the connection is closed, or the client reads so slowly
   * that `maxBufferedBytes` of output already waits for it (a slow client never holds the server's memory).
   */
  notify(method: string, params?: unknown): boolean;
}

/** Per-connection limits. Every one has a default; a client past one is slowed or refused, never the server. */
export interface JsonRpcServerLimits {
  /** Connections at once; more are answered with an error and closed. Default 256. */
  readonly maxConnections?: number;
  /** Calls in flight per connection before the server stops reading from it (backpressure). Default 1024. */
  readonly maxInFlight?: number;
  /**
   * Output waiting for a slow reader before the server stops reading its requests and drops notifications to it.
   * Default 8 MiB.
   */
  readonly maxBufferedBytes?: number;
  /** Requests per second per connection (a token bucket of `burst`); more are answered RATE_LIMITED. Default: none. */
  readonly requestsPerSecond?: number;
  /** The bucket's size. Default: `requestsPerSecond`. */
  readonly burst?: number;
}

/** Where a JSON-RPC server listens, who may connect, what it serves and its limits. */
export interface JsonRpcServerOptions {
  /** Where to listen. A stale socket there is replaced; a live one or any other file is an error. */
  readonly socketPath: string;
  /** The socket file's mode: who may call. Default 0o600 (the owner only). */
  readonly mode?: number;
  /** A group to own the socket file, so its members may connect when `mode` allows (e.g. 0o660). */
  readonly gid?: number;
  /** The handler for a method name, or undefined (METHOD_NOT_FOUND). */
  readonly methods: (method: string) => JsonRpcMethodHandler | undefined;
  /** The JSON-RPC error a handler's failure becomes. Default: INTERNAL_ERROR with the error's message. */
  readonly errorFor?: (error: unknown, method: string) => JsonRpcErrorObject;
  /** The longest request line accepted, in bytes. Default 1 MiB. */
  readonly maxLineBytes?: number;
  readonly limits?: JsonRpcServerLimits;
  /** The reason handlers' signals carry when the server closes. Default: a JsonRpcError ABORTED. */
  readonly closingReason?: () => unknown;
  /** The prefix of the private directory the socket is bound in before it is renamed into place. */
  readonly tempPrefix?: string;
  /** Called for each new connection (before its first request). */
  readonly onConnection?: (connection: JsonRpcConnection) => void;
}

/** A listening JSON-RPC server. */
export interface JsonRpcServer extends AsyncDisposable {
  readonly socketPath: string;
  /** Open client connections. */
  readonly connections: number;
  /** Stops listening, aborts calls in progress, waits for them, closes connections and removes the socket. */
  close(): Promise<void>;
}

const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

/**
 * Serves newline-delimited JSON-RPC 2.0 on a Unix socket (params by name) and resolves once listening. Many
 * connections and pipelined requests are served concurrently; answers finished in one tick leave in one write.
 * `$/cancel {id}` aborts a call in flight on the same connection; closing the connection aborts all of its calls.
 */
export async function serveJsonRpc(
  options: JsonRpcServerOptions,
  callOptions: { signal?: AbortSignal } = {},
): Promise<JsonRpcServer> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { socketPath, mode = 0o600, gid, maxLineBytes = DEFAULT_MAX_LINE_BYTES, methods } = options;
  if (typeof methods !== 'function') throw new TypeError('methods must be a function');
  if (typeof socketPath !== 'string' || socketPath.length === 0) {
    throw new TypeError('socketPath must be a non-empty string');
  }
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new TypeError('mode must be a file mode');
  if (gid !== undefined && (!Number.isInteger(gid) || gid < 0)) throw new TypeError('gid must be a group id');
  if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) {
    throw new TypeError('maxLineBytes must be a positive integer');
  }
  const limits = resolveLimits(options.limits ?? {});
  assertSocketPath(socketPath);
  const { signal } = callOptions;
  signal?.throwIfAborted();
  await removeStaleSocket(socketPath);
  signal?.throwIfAborted();
  const server = new RpcServer(options, maxLineBytes, limits);
  await server.listen(socketPath, mode, gid, options.tempPrefix ?? '.jsonrpc-');
  return server.handle(socketPath);
}

type Limits = Required<Omit<JsonRpcServerLimits, 'requestsPerSecond' | 'burst'>> & {
  readonly requestsPerSecond: number | undefined;
  readonly burst: number;
};

function resolveLimits(limits: JsonRpcServerLimits): Limits {
  const positive = (value: number | undefined, name: string, fallback: number) => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new TypeError(`limits.${name} must be a positive number`);
    }
    return value;
  };
  const requestsPerSecond =
    limits.requestsPerSecond === undefined
      ? undefined
      : positive(limits.requestsPerSecond, 'requestsPerSecond', 0);
  return {
    maxConnections: positive(limits.maxConnections, 'maxConnections', 256),
    maxInFlight: positive(limits.maxInFlight, 'maxInFlight', 1024),
    maxBufferedBytes: positive(limits.maxBufferedBytes, 'maxBufferedBytes', 8 * 1024 * 1024),
    requestsPerSecond,
    burst: positive(limits.burst, 'burst', requestsPerSecond ?? 1),
  };
}

/**
 * One call in flight, and the context its handler gets. Its AbortSignal is made only when the handler asks for it:
 * at tens of thousands of pipelined calls per second an AbortController per call costs more than the call.
 */
class CallState implements JsonRpcCallContext {
  readonly id: JsonRpcId | null | undefined;
  readonly connection: ServerConnection;
  #controller: AbortController | undefined;
  #reason: unknown;
  #aborted = false;

  constructor(id: JsonRpcId | null | undefined, connection: ServerConnection) {
    this.id = id;
    this.connection = connection;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
      else if (this.connection.closed) this.#controller.abort(this.connection.signal.reason);
    }
    return this.#controller.signal;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

class ServerConnection implements JsonRpcConnection {
  readonly id: number;
  readonly socket: Socket;
  /** Answers finished in this tick, written together at its end. */
  outgoing = '';
  /** Calls in flight by id, to cancel them one by one or all at once. */
  readonly calls = new Map<JsonRpcId | null, CallState>();
  inFlight = 0;
  tokens: number;
  refilledAt = performance.now();
  paused = false;
  /** Lines read while `maxInFlight` calls were running (at most one chunk's worth: reading is paused). */
  backlog: string[] = [];
  /** The client shut down its side: ours ends once its calls are answered. */
  ended = false;
  readonly #controller = new AbortController();
  readonly #maxBufferedBytes: number;

  constructor(id: number, socket: Socket, limits: Limits) {
    this.id = id;
    this.socket = socket;
    this.tokens = limits.burst;
    this.#maxBufferedBytes = limits.maxBufferedBytes;
  }

  get closed(): boolean {
    return this.#controller.signal.aborted;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Output queued for the peer and not yet taken by it. */
  get buffered(): number {
    return this.socket.writableLength + this.outgoing.length;
  }

  get congested(): boolean {
    return this.buffered >= this.#maxBufferedBytes;
  }

  notify(method: string, params?: unknown): boolean {
    if (this.closed || this.congested) return false;
    send(
      this,
      params === undefined
        ? { jsonrpc: JSON_RPC_VERSION, method }
        : { jsonrpc: JSON_RPC_VERSION, method, params },
    );
    return true;
  }

  /** The connection is gone (or the server closes): every call on it and every subscription is aborted. */
  abort(reason: unknown): void {
    if (this.closed) return;
    this.#controller.abort(reason);
    for (const call of this.calls.values()) call.abort(reason);
  }
}

class RpcServer {
  readonly #server: Server;
  readonly #options: JsonRpcServerOptions;
  readonly #maxLineBytes: number;
  readonly #limits: Limits;
  readonly #connections = new Set<ServerConnection>();
  #nextConnectionId = 1;
  // Requests being served, and who waits for them to finish (close()).
  #inFlight = 0;
  #drained: (() => void) | undefined;
  #closing = false;
  #socketFile: SocketFile | undefined;
  #closed: Promise<void> | undefined;

  constructor(options: JsonRpcServerOptions, maxLineBytes: number, limits: Limits) {
    this.#options = options;
    this.#maxLineBytes = maxLineBytes;
    this.#limits = limits;
    // Half-open: a client that sends its requests and shuts down its side (`nc -U`) still gets every answer.
    this.#server = createServer({ allowHalfOpen: true }, (socket) => this.#accept(socket));
  }

  async listen(socketPath: string, mode: number, gid: number | undefined, tempPrefix: string): Promise<void> {
    this.#socketFile = await listenPrivately(this.#server, socketPath, { mode, gid, tempPrefix });
  }

  handle(socketPath: string): JsonRpcServer {
    const close = () => {
      this.#closed ??= this.#shutdown(socketPath);
      return this.#closed;
    };
    const connections = this.#connections;
    return {
      socketPath,
      get connections() {
        return connections.size;
      },
      close,
      [Symbol.asyncDispose]: close,
    };
  }

  async #shutdown(socketPath: string): Promise<void> {
    this.#closing = true;
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    const reason =
      this.#options.closingReason?.() ?? new JsonRpcError('ABORTED', 'the JSON-RPC server is closing');
    for (const connection of this.#connections) connection.abort(reason);
    if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
    // The last answers are queued a few microtasks and a tick after their calls finish: let them out first.
    await new Promise((resolve) => setImmediate(resolve));
    // end() flushes the answers just written; a peer that never closes its side is cut off after a grace period.
    await Promise.all([...this.#connections].map(endConnection));
    await stopped;
    // Our socket was renamed into place, so the runtime cannot remove it; leave a successor's socket alone.
    await removeOwnSocket(socketPath, this.#socketFile);
  }

  #accept(socket: Socket): void {
    const connection = new ServerConnection(this.#nextConnectionId++, socket, this.#limits);
    // A client that vanishes is not the server's failure; 'close' follows.
    socket.on('error', () => undefined);
    if (this.#connections.size >= this.#limits.maxConnections || this.#closing) {
      socket.end(
        `${JSON.stringify(errorResponse(null, jsonRpcErrorCodes.OVERLOADED, `Server busy: ${this.#limits.maxConnections} connections are open`))}\n`,
      );
      return;
    }
    this.#connections.add(connection);
    const splitter = new LineSplitter(this.#maxLineBytes, {
      onLine: (line) => {
        if (connection.backlog.length > 0 || connection.inFlight >= this.#limits.maxInFlight) {
          connection.backlog.push(line);
        } else this.#handleLine(connection, line);
      },
      onOversized: (line) =>
        send(
          connection,
          errorResponse(
            idFromOversizedLine(line) ?? null,
            jsonRpcErrorCodes.INVALID_REQUEST,
            `Invalid Request: the line is ${line.bytes} bytes, over the ${this.#maxLineBytes}-byte limit`,
          ),
        ),
    });
    socket.on('data', (chunk: Buffer) => {
      splitter.push(chunk);
      this.#throttle(connection);
    });
    socket.on('drain', () => this.#throttle(connection));
    socket.on('end', () => {
      splitter.end();
      connection.ended = true;
      // Unix sockets cannot tell a half-close from a client gone: either way its calls are cancelled, and the
      // answers of calls that finish anyway (ones that ignore the signal) are still written before our side ends.
      connection.abort(new JsonRpcError('DISCONNECTED', 'the client closed its connection'));
      if (connection.inFlight === 0 && connection.backlog.length === 0) endSoon(connection);
    });
    socket.on('close', () => {
      this.#connections.delete(connection);
      connection.abort(new JsonRpcError('DISCONNECTED', 'the client closed its connection'));
    });
    this.#options.onConnection?.(connection);
  }

  /** Stops reading from a client with too many calls in flight or too much unread output; resumes when it catches up. */
  #throttle(connection: ServerConnection): void {
    const overloaded =
      connection.inFlight >= this.#limits.maxInFlight ||
      connection.backlog.length > 0 ||
      connection.congested;
    if (overloaded && !connection.paused) {
      connection.paused = true;
      connection.socket.pause();
    } else if (!overloaded && connection.paused) {
      connection.paused = false;
      connection.socket.resume();
    }
  }

  #handleLine(connection: ServerConnection, line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      send(connection, errorResponse(null, jsonRpcErrorCodes.PARSE_ERROR, 'Parse error: not JSON'));
      return;
    }
    if (!Array.isArray(message)) {
      const answer = this.#respond(connection, message);
      if (answer) void answer.then((response) => response && send(connection, response));
      return;
    }
    if (message.length === 0) {
      send(
        connection,
        errorResponse(null, jsonRpcErrorCodes.INVALID_REQUEST, 'Invalid Request: empty batch'),
      );
      return;
    }
    void Promise.all(message.map((item) => this.#respond(connection, item))).then((responses) => {
      const answered = responses.filter((response) => response !== undefined);
      if (answered.length > 0) send(connection, answered);
    });
  }

  /**
   * The response to one request, or undefined for a notification (or nothing to wait for). Never rejects. A
   * promise chain rather than an async function: pipelined clients keep thousands of requests in flight, and
   * each suspended frame is garbage.
   */
  #respond(connection: ServerConnection, message: unknown): Promise<JsonRpcResponse | undefined> | undefined {
    const parsed = isPlainRequest(message)
      ? { success: true as const, data: message }
      : jsonRpcRequestSchema.safeParse(message);
    if (!parsed.success) {
      const rawId =
        typeof message === 'object' && message !== null ? (message as { id?: unknown }).id : undefined;
      const id = isId(rawId) ? rawId : null;
      return Promise.resolve(
        errorResponse(id, jsonRpcErrorCodes.INVALID_REQUEST, 'Invalid Request: not a JSON-RPC 2.0 request'),
      );
    }
    // `id` undefined (no member) is a notification; `id: null` is a request, answered with `id: null`.
    const { id, method, params } = parsed.data;
    if (method === CANCEL_METHOD) {
      const target = (params as { id?: unknown } | undefined)?.id;
      const call =
        typeof target === 'string' || typeof target === 'number' ? connection.calls.get(target) : undefined;
      call?.abort(new JsonRpcError('ABORTED', 'the client cancelled the call'));
      return id === undefined
        ? undefined
        : Promise.resolve({ jsonrpc: JSON_RPC_VERSION, id, result: { cancelled: call !== undefined } });
    }
    if (!this.#takeToken(connection)) {
      return id === undefined
        ? undefined
        : Promise.resolve(
            errorResponse(
              id,
              jsonRpcErrorCodes.RATE_LIMITED,
              `Rate limited: over ${this.#limits.requestsPerSecond} requests per second on this connection`,
            ),
          );
    }
    const handler = this.#options.methods(method);
    let early: JsonRpcResponse | undefined;
    if (!handler) {
      early = errorResponse(id ?? null, jsonRpcErrorCodes.METHOD_NOT_FOUND, `Method not found: ${method}`);
    } else if (Array.isArray(params)) {
      early = errorResponse(
        id ?? null,
        jsonRpcErrorCodes.INVALID_PARAMS,
        'Invalid params: pass params by name',
      );
    }
    if (early || !handler) return id === undefined ? undefined : Promise.resolve(early);
    const call = new CallState(id, connection);
    const key = id ?? null;
    if (id !== undefined) connection.calls.set(key, call);
    this.#started(connection);
    let work: Promise<unknown>;
    try {
      const result = handler((params as Record<string, unknown> | undefined) ?? {}, call);
      work = result instanceof Promise ? result : Promise.resolve(result);
    } catch (error) {
      work = Promise.reject(error);
    }
    const finish = () => {
      if (connection.calls.get(key) === call) connection.calls.delete(key);
      this.#finished(connection);
    };
    // A notification is run, and answered with nothing, even when it fails.
    if (id === undefined) {
      work.then(finish, finish);
      return undefined;
    }
    return work.then(
      (result): JsonRpcResponse => {
        finish();
        return { jsonrpc: JSON_RPC_VERSION, id, result: result ?? null };
      },
      (error: unknown): JsonRpcResponse => {
        finish();
        return { jsonrpc: JSON_RPC_VERSION, id, error: this.#errorFor(error, method) };
      },
    );
  }

  #errorFor(error: unknown, method: string): JsonRpcErrorObject {
    try {
      if (this.#options.errorFor) return this.#options.errorFor(error, method);
    } catch {
      // A failing mapper must not cost the answer.
    }
    return {
      code: jsonRpcErrorCodes.INTERNAL_ERROR,
      message: error instanceof Error ? error.message : 'internal error',
    };
  }

  #takeToken(connection: ServerConnection): boolean {
    const rate = this.#limits.requestsPerSecond;
    if (rate === undefined) return true;
    const now = performance.now();
    connection.tokens = Math.min(
      this.#limits.burst,
      connection.tokens + ((now - connection.refilledAt) / 1000) * rate,
    );
    connection.refilledAt = now;
    if (connection.tokens < 1) return false;
    connection.tokens -= 1;
    return true;
  }

  #started(connection: ServerConnection): void {
    this.#inFlight++;
    connection.inFlight++;
  }

  #finished(connection: ServerConnection): void {
    connection.inFlight--;
    while (connection.backlog.length > 0 && connection.inFlight < this.#limits.maxInFlight) {
      this.#handleLine(connection, connection.backlog.shift()!);
    }
    if (connection.paused) this.#throttle(connection);
    if (connection.ended && connection.inFlight === 0 && connection.backlog.length === 0) {
      process.nextTick(endSoon, connection);
    }
    if (--this.#inFlight === 0) this.#drained?.();
  }
}

/** Answers finished in the same tick leave together (one string, one syscall), or every 64 KiB. */
function send(connection: ServerConnection, message: unknown): void {
  const { id, result } = message as { id?: JsonRpcId | null; result?: unknown };
  if (result instanceof JsonText && result.text.length >= FLUSH_CHARS) {
    // A large prepared answer goes out as its bytes, after what is queued: encoded once, not at every call.
    flush(connection);
    const { socket } = connection;
    if (socket.destroyed || !socket.writable) return;
    socket.cork();
    socket.write(resultHead(id));
    socket.write(result.bytes);
    socket.write('}\n');
    socket.uncork();
    return;
  }
  if (connection.outgoing === '') process.nextTick(flush, connection);
  connection.outgoing += `${serialize(message)}\n`;
  if (connection.outgoing.length >= FLUSH_CHARS) flush(connection);
}

/** A success response up to its result: what a `JsonText` result is spliced after (then `}`). */
function resultHead(id: JsonRpcId | null | undefined): string {
  return `{"jsonrpc":"${JSON_RPC_VERSION}","id":${JSON.stringify(id)},"result":`;
}

/** A response or batch as JSON; a `JsonText` result is spliced in as it is. */
function serialize(message: unknown): string {
  const { id, result } = message as { id?: JsonRpcId | null; result?: unknown };
  if (result instanceof JsonText) {
    return `${resultHead(id)}${result.text}}`;
  }
  return JSON.stringify(message);
}

function flush(connection: ServerConnection): void {
  const { socket, outgoing } = connection;
  connection.outgoing = '';
  if (outgoing !== '' && !socket.destroyed && socket.writable) socket.write(outgoing);
}

/** Ends our side after the answers of this tick are flushed (they are queued in `outgoing` until then). */
function endSoon(connection: ServerConnection): void {
  process.nextTick(() => {
    flush(connection);
    if (!connection.socket.destroyed) connection.socket.end();
  });
}

function endConnection(connection: ServerConnection): Promise<void> {
  const { socket } = connection;
  flush(connection);
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.end();
  });
}

function errorResponse(id: JsonRpcId | null, code: number, message: string): JsonRpcResponse {
  return { jsonrpc: JSON_RPC_VERSION, id, error: { code, message } };
}
