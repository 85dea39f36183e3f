import http from 'node:http';

export interface UnixHttpResponse {
  readonly status: number;
  readonly body: string;
}

/** A failed exchange; `reusedSocket` tells a stale keep-alive connection from a dead server. */
export interface UnixHttpError extends NodeJS.ErrnoException {
  reusedSocket?: boolean;
  /** True once response bytes arrived: the server saw the request, so it must not be resent. */
  responseStarted?: boolean;
}

/**
 * HTTP/1.1 over one Unix socket. With `keepAlive`, one connection is reused for every call (the VMM serves one
 * request at a time, so one is all it can use); without, each call opens its own.
 */
export class UnixHttpTransport {
  readonly socketPath: string;
  readonly #agent: http.Agent | undefined;

  constructor(socketPath: string, { keepAlive }: { keepAlive: boolean }) {
    this.socketPath = socketPath;
    this.#agent = keepAlive
      ? new http.Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 })
      : undefined;
  }

  request(
    method: 'GET' | 'PUT',
    path: string,
    body: string | undefined,
    signal: AbortSignal,
  ): Promise<UnixHttpResponse> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { Accept: 'application/json' };
      // An explicit length, never chunked: micro_http (the VMM's server) does not speak chunked bodies.
      if (method === 'PUT') headers['Content-Length'] = body === undefined ? 0 : Buffer.byteLength(body);
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      let responseStarted = false;
      const req = http.request(
        { socketPath: this.socketPath, path, method, headers, agent: this.#agent ?? false },
        (res) => {
          responseStarted = true;
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            signal.removeEventListener('abort', onAbort);
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
          });
          res.on('error', fail);
        },
      );
      function fail(error: UnixHttpError) {
        signal.removeEventListener('abort', onAbort);
        error.reusedSocket = req.reusedSocket;
        error.responseStarted = responseStarted;
        reject(error);
      }
      // Destroying the request drops the connection: its answer, if one comes, would belong to no one.
      function onAbort() {
        req.destroy(Object.assign(new Error('request aborted'), { code: 'ABORT_ERR' }));
      }
      req.on('error', fail);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      req.end(body);
    });
  }

  /** Closes the pooled connection; calls made afterwards open a new one. */
  close(): void {
    this.#agent?.destroy();
  }
}
