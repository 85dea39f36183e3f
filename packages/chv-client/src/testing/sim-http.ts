import net from 'node:net';

export interface SimRequest {
  readonly method: string;
  /** The path without query, e.g. `/api/v1/vm.boot`. */
  readonly path: string;
  /** Undefined when the request had no body (no Content-Length, or 0), as micro_http reports it. */
  readonly body: Buffer | undefined;
}

export interface SimResponse {
  readonly status: number;
  /** JSON or plain text; omitted for an empty body. */
  readonly body?: string;
}

export type SimHandler = (request: SimRequest) => Promise<SimResponse>;

export interface SimHttpOptions {
  /** Larger bodies are refused with 400 and the connection is closed. */
  readonly maxBodyBytes: number;
  /** Read requests but never answer (a VMM stuck in a long call). */
  readonly hang?: boolean;
}

const MAX_HEAD_BYTES = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * The HTTP side of the simulated VMM: what micro_http does for Cloud Hypervisor. Requests from every
 * connection go through one queue, one at a time, like the VMM thread; responses use micro_http's exact
 * framing (no reason phrase, `Connection: keep-alive`, no Content-Length on 204).
 */
export class SimHttpServer {
  readonly #handler: SimHandler;
  readonly #options: SimHttpOptions;
  readonly #server: net.Server;
  readonly #connections = new Set<net.Socket>();
  #queue: Promise<void> = Promise.resolve();
  #closed = false;
  #accepted = 0;

  constructor(handler: SimHandler, options: SimHttpOptions) {
    this.#handler = handler;
    this.#options = options;
    this.#server = net.createServer((socket) => this.#accept(socket));
  }

  /** Binds and listens on a Unix socket path, or adopts an inherited listening fd. */
  listen(target: { path: string } | { fd: number }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      const done = () => {
        this.#server.off('error', reject);
        resolve();
      };
      if ('path' in target) this.#server.listen(target.path, done);
      else this.#server.listen({ fd: target.fd }, done);
    });
  }

  /**
   * Stops accepting and ends every connection after what was already written (a `vmm.shutdown` answer still
   * goes out); stragglers are dropped after a moment. Closing the listener unlinks its socket file.
   */
  close(): Promise<void> {
    this.#closed = true;
    const closed = new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
    });
    for (const socket of this.#connections) socket.end();
    const force = setTimeout(() => {
      for (const socket of this.#connections) socket.destroy();
    }, 100);
    return closed.finally(() => clearTimeout(force));
  }

  /** Parses and formats one request offline, so the first real one is not also the first to be compiled. */
  warmUp(): void {
    const request = Buffer.from('GET /api/v1/vmm.ping HTTP/1.1\r\nHost: localhost\r\n\r\n');
    parseRequest(request, this.#options.maxBodyBytes);
    formatResponse({ status: 200, body: '{}' });
  }

  /** Connections accepted so far (a keep-alive client makes one). */
  get acceptedConnections(): number {
    return this.#accepted;
  }

  #accept(socket: net.Socket) {
    this.#accepted++;
    this.#connections.add(socket);
    socket.on('close', () => this.#connections.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffer: Buffer = Buffer.alloc(0);
    let closing = false;
    socket.on('data', (chunk: Buffer) => {
      if (closing) return;
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      for (;;) {
        const parsed = parseRequest(buffer, this.#options.maxBodyBytes);
        if (parsed === 'incomplete') return;
        if ('error' in parsed) {
          // micro_http answers a parse error with 400 and drops everything the connection had queued.
          closing = true;
          this.#enqueue(
            socket,
            async () => ({
              status: 400,
              body: `{ "error": "${parsed.error}\nAll previous unanswered requests will be dropped." }`,
            }),
            true,
          );
          return;
        }
        buffer = buffer.subarray(parsed.consumed);
        if (!this.#options.hang) this.#enqueue(socket, () => this.#handler(parsed.request), parsed.close);
      }
    });
  }

  #enqueue(socket: net.Socket, respond: () => Promise<SimResponse>, closeAfter: boolean) {
    this.#queue = this.#queue.then(async () => {
      if (this.#closed) return;
      let response: SimResponse;
      try {
        response = await respond();
      } catch (error) {
        response = { status: 500, body: JSON.stringify(['Internal Server Error', String(error)]) };
      }
      if (socket.destroyed || !socket.writable) return;
      socket.write(formatResponse(response));
      if (closeAfter) socket.end();
    });
  }
}

type Parsed = 'incomplete' | { error: string } | { request: SimRequest; consumed: number; close: boolean };

function parseRequest(buffer: Buffer, maxBodyBytes: number): Parsed {
  const headEnd = buffer.indexOf(HEAD_END);
  if (headEnd < 0)
    return buffer.length > MAX_HEAD_BYTES ? { error: 'Request headers too large.' } : 'incomplete';
  const lines = buffer.subarray(0, headEnd).toString('latin1').split('\r\n');
  const [method, target, version] = (lines[0] ?? '').split(' ');
  if (!method || !target || !version?.startsWith('HTTP/1.')) return { error: 'Invalid request line.' };
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return { error: 'Invalid header.' };
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  if (headers.has('transfer-encoding'))
    return { error: 'Invalid header. Transfer-Encoding is not supported.' };
  const lengthText = headers.get('content-length') ?? '0';
  const length = /^\d+$/.test(lengthText) ? Number(lengthText) : Number.NaN;
  if (!Number.isSafeInteger(length)) return { error: 'Invalid value. Content-Length' };
  if (length > maxBodyBytes) {
    return {
      error: `Request payload with size ${length} is larger than the limit of ${maxBodyBytes} allowed by server.`,
    };
  }
  const bodyStart = headEnd + HEAD_END.length;
  if (buffer.length < bodyStart + length) return 'incomplete';
  const body = length > 0 ? Buffer.from(buffer.subarray(bodyStart, bodyStart + length)) : undefined;
  const close = version === 'HTTP/1.0' || headers.get('connection')?.toLowerCase() === 'close';
  return {
    request: { method, path: target.split('?')[0] ?? target, body },
    consumed: bodyStart + length,
    close,
  };
}

function formatResponse({ status, body }: SimResponse): string {
  const lines = [`HTTP/1.1 ${status} `, 'Server: Cloud Hypervisor API', 'Connection: keep-alive'];
  if (status !== 204) {
    lines.push('Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body ?? '')}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n${status === 204 ? '' : (body ?? '')}`;
}
