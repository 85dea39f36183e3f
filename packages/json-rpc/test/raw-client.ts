import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh directory for sockets, short enough for the 108-byte limit. */
export async function socketDir(): Promise<{ path: (name?: string) => string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'jsonrpc-'));
  return {
    path: (name = 'rpc.sock') => join(dir, name),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A line-level client: write raw text, read parsed lines in order. */
export interface RawClient {
  readonly socket: Socket;
  send(text: string): void;
  next(): Promise<unknown>;
  /** Every line received so far and not yet taken by next(). */
  readonly lines: unknown[];
  readonly ended: Promise<void>;
  close(): void;
}

export async function rawClient(path: string): Promise<RawClient> {
  const socket = createConnection({ path });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => undefined);
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
    socket,
    lines,
    send: (text) => socket.write(text),
    next: () =>
      lines.length > 0 ? Promise.resolve(lines.shift()) : new Promise((resolve) => waiters.push(resolve)),
    ended,
    close: () => socket.destroy(),
  };
}

/** One request line. */
export const request = (id: number | string | null | undefined, method: string, params?: unknown): string =>
  `${JSON.stringify({ jsonrpc: '2.0', ...(id === undefined ? {} : { id }), method, ...(params === undefined ? {} : { params }) })}\n`;
