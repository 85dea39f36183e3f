import { chmod, lstat, mkdtemp, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { abortError, NetOpsError, type OperationOptions } from '@my-hypervisor/net-ops';
import { idFromOversizedLine, LineSplitter } from '../line-splitter.js';
import { DEFAULT_MAX_LINE_BYTES } from '../mosnet-client.js';
import { JSON_RPC_VERSION, type JsonRpcId, type JsonRpcResponse, jsonRpcRequestSchema } from '../protocol.js';
import { mosnetErrorCodes, rpcErrorFromError } from '../rpc-errors.js';
import { createMethodHandlers, type MethodHandler, type MosnetServerOps } from './handlers.js';

const MAX_SOCKET_PATH_BYTES = 107;
const FLUSH_CHARS = 64 * 1024;

/** What a mosnet server serves (`ops`), where it listens, its socket mode and line limit. */
export interface MosnetServerOptions {
  /** The ops to expose, e.g. `createMemoryNetOps()` or `new LocalOps()`. */
  readonly ops: MosnetServerOps;
  /** Where to listen. A stale socket there is replaced; a live one or any other file is an error. */
  readonly socketPath: string;
  /** The socket file's mode: who may call. Default 0o600 (the owner only). */
  readonly mode?: number;
  /** The longest request line accepted, in bytes. Default 1 MiB. */
  readonly maxLineBytes?: number;
}

/** A listening mosnet-compatible server. */
export interface MosnetServer extends AsyncDisposable {
  readonly socketPath: string;
  /** Open client connections. */
  readonly connections: number;
  /** Stops listening, aborts calls in progress, waits for them, closes connections and removes the socket. */
  close(): Promise<void>;
}

/**
 * Serves `ops` over mosnet's protocol (newline-delimited JSON-RPC 2.0 on a Unix socket, params by name) and
 * resolves once listening. Use it as the peer for `MosnetClient` in tests, or as a mosnet-compatible daemon on
 * hosts without mosnet. Many connections and pipelined requests are served concurrently.
 */
export async function createMosnetServer(
  options: MosnetServerOptions,
  callOptions: OperationOptions = {},
): Promise<MosnetServer> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { ops, socketPath, mode = 0o600, maxLineBytes = DEFAULT_MAX_LINE_BYTES } = options;
  if (typeof ops !== 'object' || ops === null || typeof ops.ensureBridge !== 'function') {
    throw new TypeError('ops must implement BridgeOps, TapOps and NatOps');
  }
  if (typeof socketPath !== 'string' || socketPath.length === 0) {
    throw new TypeError('socketPath must be a non-empty string');
  }
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new TypeError('mode must be a file mode');
  if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) {
    throw new TypeError('maxLineBytes must be a positive integer');
  }
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new NetOpsError('INVALID_ARGUMENT', `socketPath: longer than ${MAX_SOCKET_PATH_BYTES} bytes`, {
      details: { field: 'socketPath' },
    });
  }
  const { signal } = callOptions;
  if (signal?.aborted) throw abortError(signal);
  await removeStaleSocket(socketPath);
  if (signal?.aborted) throw abortError(signal);

  const server = new RpcServer(createMethodHandlers(ops), maxLineBytes);
  await server.listen(socketPath, mode);
  return server.handle(socketPath);
}

/** Refuses to take over a live socket or a file that is not a socket; removes a socket nobody listens on. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(socketPath)).isSocket();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw listenError(socketPath, error);
  }
  if (!isSocket) {
    throw new NetOpsError('CONFLICT', `${socketPath} exists and is not a socket; not removing it`, {
      details: { socketPath },
    });
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = createConnection({ path: socketPath });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) {
    throw new NetOpsError('ALREADY_EXISTS', `a server is already listening on ${socketPath}`, {
      details: { socketPath },
    });
  }
  await unlink(socketPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw listenError(socketPath, error);
  });
}

function listenError(socketPath: string, error: unknown): NetOpsError {
  const errno = (error as NodeJS.ErrnoException).code;
  return new NetOpsError(
    errno === 'EACCES' || errno === 'EPERM' ? 'PERMISSION_DENIED' : 'BACKEND_FAILURE',
    `cannot listen on ${socketPath}: ${(error as Error).message}`,
    { cause: error, details: { socketPath, ...(errno === undefined ? {} : { errno }) } },
  );
}

interface ServerConnection {
  readonly socket: Socket;
  /** Answers finished in this tick, written together at its end. */
  outgoing: string;
}

class RpcServer {
  readonly #server: Server;
  readonly #handlerFor: (method: string) => MethodHandler | undefined;
  readonly #maxLineBytes: number;
  readonly #connections = new Set<ServerConnection>();
  // Requests being served, and who waits for them to finish (close()).
  #inFlight = 0;
  #drained: (() => void) | undefined;
  readonly #abort = new AbortController();
  #socketFile: { readonly dev: number; readonly ino: number } | undefined;
  #closed: Promise<void> | undefined;

  constructor(handlerFor: (method: string) => MethodHandler | undefined, maxLineBytes: number) {
    this.#handlerFor = handlerFor;
    this.#maxLineBytes = maxLineBytes;
    this.#server = createServer((socket) => this.#accept(socket));
  }

  /**
   * Binds inside a fresh 0700 directory, sets the mode, then renames the socket into place: nobody can connect
   * before the mode is right (a plain listen-then-chmod leaves a window, and umask is process-wide). Only when the
   * temporary path would exceed the socket path limit does it bind in place and chmod right after.
   */
  async listen(socketPath: string, mode: number): Promise<void> {
    let privateDir: string | undefined;
    try {
      privateDir = await mkdtemp(join(dirname(socketPath), '.mosnet-'));
      const bindPath = join(privateDir, 's');
      const direct = Buffer.byteLength(bindPath) > MAX_SOCKET_PATH_BYTES;
      await this.#bind(direct ? socketPath : bindPath);
      await chmod(direct ? socketPath : bindPath, mode);
      if (!direct) await rename(bindPath, socketPath);
      const stats = await stat(socketPath);
      this.#socketFile = { dev: stats.dev, ino: stats.ino };
    } catch (error) {
      await new Promise<void>((resolve) => this.#server.close(() => resolve()));
      throw NetOpsError.isInstance(error) ? error : listenError(socketPath, error);
    } finally {
      if (privateDir) await rmdir(privateDir).catch(() => undefined);
    }
  }

  #bind(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(path, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  handle(socketPath: string): MosnetServer {
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
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#abort.abort(new NetOpsError('ABORTED', 'the mosnet server is closing'));
    if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
    // end() flushes the answers just written; a peer that never closes its side is cut off after a grace period.
    await Promise.all([...this.#connections].map(endConnection));
    await stopped;
    // Our socket was renamed into place, so the runtime cannot remove it; leave a successor's socket alone.
    const stats = await stat(socketPath).catch(() => undefined);
    if (
      stats &&
      this.#socketFile &&
      stats.dev === this.#socketFile.dev &&
      stats.ino === this.#socketFile.ino
    ) {
      await unlink(socketPath).catch(() => undefined);
    }
  }

  #accept(socket: Socket): void {
    const connection: ServerConnection = { socket, outgoing: '' };
    this.#connections.add(connection);
    const splitter = new LineSplitter(this.#maxLineBytes, {
      onLine: (line) => this.#handleLine(connection, line),
      onOversized: (line) =>
        this.#send(connection, {
          jsonrpc: JSON_RPC_VERSION,
          id: idFromOversizedLine(line) ?? null,
          error: {
            code: mosnetErrorCodes.INVALID_REQUEST,
            message: `Invalid Request: the line is ${line.bytes} bytes, over the ${this.#maxLineBytes}-byte limit`,
          },
        }),
    });
    socket.on('data', (chunk: Buffer) => splitter.push(chunk));
    socket.on('end', () => {
      splitter.end();
      socket.end();
    });
    // A client that vanishes is not the server's failure; 'close' follows.
    socket.on('error', () => undefined);
    socket.on('close', () => this.#connections.delete(connection));
  }

  #handleLine(connection: ServerConnection, line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.#send(connection, errorResponse(null, mosnetErrorCodes.PARSE_ERROR, 'Parse error: not JSON'));
      return;
    }
    if (!Array.isArray(message)) {
      this.#started();
      void this.#respond(message).then((response) => {
        if (response) this.#send(connection, response);
        this.#finished();
      });
      return;
    }
    if (message.length === 0) {
      this.#send(
        connection,
        errorResponse(null, mosnetErrorCodes.INVALID_REQUEST, 'Invalid Request: empty batch'),
      );
      return;
    }
    this.#started();
    void Promise.all(message.map((item) => this.#respond(item))).then((responses) => {
      const answered = responses.filter((response) => response !== undefined);
      if (answered.length > 0) this.#send(connection, answered);
      this.#finished();
    });
  }

  #started(): void {
    this.#inFlight++;
  }

  #finished(): void {
    if (--this.#inFlight === 0) this.#drained?.();
  }

  /**
   * The response to one request, or undefined for a notification. Never rejects. A promise chain rather than an
   * async function: pipelined clients keep thousands of requests in flight, and each suspended frame is garbage.
   */
  #respond(message: unknown): Promise<JsonRpcResponse | undefined> {
    const parsed = jsonRpcRequestSchema.safeParse(message);
    if (!parsed.success) {
      const rawId =
        typeof message === 'object' && message !== null ? (message as { id?: unknown }).id : undefined;
      const id =
        typeof rawId === 'string' || (typeof rawId === 'number' && Number.isInteger(rawId)) ? rawId : null;
      return Promise.resolve(
        errorResponse(id, mosnetErrorCodes.INVALID_REQUEST, 'Invalid Request: not a JSON-RPC 2.0 request'),
      );
    }
    // `id` undefined (no member) is a notification; `id: null` is a request, answered with `id: null`.
    const { id, method, params } = parsed.data;
    const handler = this.#handlerFor(method);
    let early: JsonRpcResponse | undefined;
    if (!handler) {
      early = errorResponse(id ?? null, mosnetErrorCodes.METHOD_NOT_FOUND, `Method not found: ${method}`);
    } else if (Array.isArray(params)) {
      early = errorResponse(
        id ?? null,
        mosnetErrorCodes.INVALID_PARAMS,
        'Invalid params: pass params by name',
      );
    }
    if (early || !handler) return Promise.resolve(id === undefined ? undefined : early);
    const signal = this.#abort.signal;
    let work: Promise<unknown>;
    try {
      if (signal.aborted) throw signal.reason;
      work = handler((params as Record<string, unknown> | undefined) ?? {}, signal);
    } catch (error) {
      work = Promise.reject(error);
    }
    // A notification is run, and answered with nothing, even when it fails.
    if (id === undefined) return work.then(noAnswer, noAnswer);
    return work.then(
      (result): JsonRpcResponse => ({ jsonrpc: JSON_RPC_VERSION, id, result: result ?? null }),
      (error: unknown): JsonRpcResponse => ({
        jsonrpc: JSON_RPC_VERSION,
        id,
        error: rpcErrorFromError(error),
      }),
    );
  }

  /** Answers finished in the same tick leave together (one string, one syscall), or every 64 KiB. */
  #send(connection: ServerConnection, response: JsonRpcResponse | JsonRpcResponse[]): void {
    if (connection.outgoing === '') process.nextTick(flush, connection);
    connection.outgoing += `${JSON.stringify(response)}\n`;
    if (connection.outgoing.length >= FLUSH_CHARS) flush(connection);
  }
}

const CLOSE_GRACE_MS = 1_000;

function flush(connection: ServerConnection): void {
  const { socket, outgoing } = connection;
  connection.outgoing = '';
  if (outgoing !== '' && !socket.destroyed && socket.writable) socket.write(outgoing);
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

function noAnswer(): undefined {
  return undefined;
}

function errorResponse(id: JsonRpcId | null, code: number, message: string): JsonRpcResponse {
  return { jsonrpc: JSON_RPC_VERSION, id, error: { code, message } };
}
