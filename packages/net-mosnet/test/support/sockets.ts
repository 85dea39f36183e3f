import { mkdtemp, rename, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh directory for sockets, short enough for the 108-byte limit; removed by the returned function. */
export async function socketDir(): Promise<{ path: (name?: string) => string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'mosnet-'));
  return {
    path: (name = 'mosnet.sock') => join(dir, name),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

export interface RawRequest {
  readonly jsonrpc: string;
  readonly id: number;
  readonly method: string;
  readonly params: Record<string, unknown>;
}

/**
 * A deliberately simple peer for fault tests: it hands each parsed request line to `onRequest` with the socket,
 * and the test decides what (if anything) goes back.
 */
export async function rawPeer(
  path: string,
  onRequest: (request: RawRequest, socket: Socket) => void,
): Promise<{ server: Server; sockets: Set<Socket>; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let newline = buffered.indexOf('\n');
      while (newline !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        onRequest(JSON.parse(line) as RawRequest, socket);
        newline = buffered.indexOf('\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    server,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A JSON-RPC success line for `id`. */
export function ok(id: number, result: unknown): string {
  return `${JSON.stringify({ jsonrpc: '2.0', id, result })}\n`;
}

/** Leaves a socket file at `path` that nobody listens on (connecting to it is refused). */
export async function staleSocket(path: string): Promise<void> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  // The runtime unlinks the path it bound when closing: move the file aside first, and back afterwards.
  await rename(path, `${path}.kept`);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rename(`${path}.kept`, path);
}

/** A line-level client: write raw lines, read parsed response lines in order. */
export async function rawClient(path: string): Promise<{
  send: (text: string) => void;
  next: () => Promise<unknown>;
  ended: Promise<void>;
  close: () => void;
}> {
  const socket = createConnection({ path });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const lines: unknown[] = [];
  const waiters: ((value: unknown) => void)[] = [];
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline !== -1) {
      const value: unknown = JSON.parse(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      const waiter = waiters.shift();
      if (waiter) waiter(value);
      else lines.push(value);
      newline = buffered.indexOf('\n');
    }
  });
  const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return {
    send: (text) => socket.write(text),
    next: () =>
      lines.length > 0 ? Promise.resolve(lines.shift()) : new Promise((resolve) => waiters.push(resolve)),
    ended,
    close: () => socket.destroy(),
  };
}
