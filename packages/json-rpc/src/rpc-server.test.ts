import { lstat, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rawClient, request, socketDir } from '../test/raw-client.js';
import { JsonRpcError, jsonRpcErrorCodes } from './errors.js';
import { JsonText } from './protocol.js';
import {
  type JsonRpcCallContext,
  type JsonRpcMethodHandler,
  type JsonRpcServer,
  type JsonRpcServerOptions,
  serveJsonRpc,
} from './rpc-server.js';

let dir: Awaited<ReturnType<typeof socketDir>>;
let server: JsonRpcServer | undefined;
const closers: (() => unknown)[] = [];

beforeEach(async () => {
  dir = await socketDir();
});
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  await server?.close();
  server = undefined;
  await dir.remove();
});

/** A deferred: a promise and the functions that settle it. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

async function start(
  handlers: Record<string, JsonRpcMethodHandler>,
  options: Partial<JsonRpcServerOptions> = {},
): Promise<JsonRpcServer> {
  server = await serveJsonRpc({
    socketPath: dir.path(),
    methods: (method) => handlers[method],
    ...options,
  });
  return server;
}

async function connect() {
  const client = await rawClient(dir.path());
  closers.push(client.close);
  return client;
}

describe('serveJsonRpc: the socket', () => {
  it('listens 0600 by default, with the mode and group asked for, and removes its socket on close', async () => {
    await start({});
    expect((await stat(dir.path())).mode & 0o777).toBe(0o600);
    await server?.close();
    await expect(lstat(dir.path())).rejects.toMatchObject({ code: 'ENOENT' });
    const gid = process.getgid?.() ?? 0;
    await start({}, { mode: 0o660, gid });
    const stats = await stat(dir.path());
    expect(stats.mode & 0o777).toBe(0o660);
    expect(stats.gid).toBe(gid);
  });

  it('refuses a live socket (ADDRESS_IN_USE) and any other file (NOT_A_SOCKET), replaces a stale one', async () => {
    await start({});
    await expect(serveJsonRpc({ socketPath: dir.path(), methods: () => undefined })).rejects.toMatchObject({
      code: 'ADDRESS_IN_USE',
    });
    await writeFile(dir.path('plain'), 'x');
    await expect(
      serveJsonRpc({ socketPath: dir.path('plain'), methods: () => undefined }),
    ).rejects.toMatchObject({ code: 'NOT_A_SOCKET' });
    // A socket file nobody listens on (the runtime unlinks on close: bind a second path and keep its file).
    const stale = createServer();
    await new Promise<void>((resolve) => stale.listen(dir.path('stale'), resolve));
    const { rename } = await import('node:fs/promises');
    await rename(dir.path('stale'), dir.path('stale.kept'));
    await new Promise<void>((resolve) => stale.close(() => resolve()));
    await rename(dir.path('stale.kept'), dir.path('stale'));
    const second = await serveJsonRpc({ socketPath: dir.path('stale'), methods: () => undefined });
    await second.close();
  });

  it('refuses a socket path over 107 bytes with INVALID_ARGUMENT naming the field', async () => {
    const error = await serveJsonRpc({
      socketPath: `/tmp/${'x'.repeat(120)}`,
      methods: () => undefined,
    }).catch((e: unknown) => e);
    expect(JsonRpcError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'socketPath' } });
  });
});

describe('serveJsonRpc: requests', () => {
  it('answers pipelined calls as each finishes: a slow call holds back no other', async () => {
    const slow = deferred();
    await start({
      slow: () => slow.promise.then(() => 'slow'),
      echo: (params) => params,
    });
    const client = await connect();
    client.send(request(1, 'slow') + request(2, 'echo', { a: 1 }) + request('x', 'echo', { b: 2 }));
    expect(await client.next()).toEqual({ jsonrpc: '2.0', id: 2, result: { a: 1 } });
    expect(await client.next()).toEqual({ jsonrpc: '2.0', id: 'x', result: { b: 2 } });
    slow.resolve();
    expect(await client.next()).toEqual({ jsonrpc: '2.0', id: 1, result: 'slow' });
  });

  it('sends a JsonText result as it is, alone and inside a batch, with string and numeric ids', async () => {
    const text = '{"vms":[{"name":"a","cpus":1}],"note":"ü \\u00fc"}';
    await start({ cached: () => new JsonText(text) });
    const client = await connect();
    const expected = JSON.parse(text) as unknown;
    client.send(request(1, 'cached') + request('s', 'cached'));
    expect(await client.next()).toEqual({ jsonrpc: '2.0', id: 1, result: expected });
    expect(await client.next()).toEqual({ jsonrpc: '2.0', id: 's', result: expected });
    client.send(`[${request(2, 'cached').trim()},${request(3, 'cached').trim()}]\n`);
    expect(await client.next()).toEqual([
      { jsonrpc: '2.0', id: 2, result: expected },
      { jsonrpc: '2.0', id: 3, result: expected },
    ]);
  });

  it('answers every malformed line with the JSON-RPC error for it and keeps serving', async () => {
    await start({ ok: () => true }, { maxLineBytes: 200 });
    const client = await connect();
    client.send('not json\n');
    expect(await client.next()).toMatchObject({ id: null, error: { code: jsonRpcErrorCodes.PARSE_ERROR } });
    client.send('{"jsonrpc":"1.0","id":4,"method":"ok"}\n');
    expect(await client.next()).toMatchObject({ id: 4, error: { code: jsonRpcErrorCodes.INVALID_REQUEST } });
    client.send(request(5, 'nope'));
    expect(await client.next()).toMatchObject({ id: 5, error: { code: jsonRpcErrorCodes.METHOD_NOT_FOUND } });
    client.send(request(6, 'ok', [1, 2]));
    expect(await client.next()).toMatchObject({ id: 6, error: { code: jsonRpcErrorCodes.INVALID_PARAMS } });
    client.send(`{"jsonrpc":"2.0","id":7,"method":"ok","params":{"pad":"${'y'.repeat(400)}"}}\n`);
    expect(await client.next()).toMatchObject({ id: 7, error: { code: jsonRpcErrorCodes.INVALID_REQUEST } });
    client.send('[]\n');
    expect(await client.next()).toMatchObject({
      id: null,
      error: { code: jsonRpcErrorCodes.INVALID_REQUEST },
    });
    client.send(
      `[${request(8, 'ok').trim()},${request(undefined, 'ok').trim()},${request(9, 'nope').trim()}]\n`,
    );
    expect(await client.next()).toMatchObject([
      { id: 8, result: true },
      { id: 9, error: { code: jsonRpcErrorCodes.METHOD_NOT_FOUND } },
    ]);
    client.send(request(10, 'ok'));
    expect(await client.next()).toMatchObject({ id: 10, result: true });
  });

  it("maps a handler's failure with errorFor; a throwing mapper still yields INTERNAL_ERROR", async () => {
    let mapperThrows = false;
    await start(
      {
        fails: () => {
          throw new Error('boom');
        },
      },
      {
        errorFor: (error) => {
          if (mapperThrows) throw new Error('mapper');
          return { code: -32042, message: (error as Error).message, data: { field: 'x' } };
        },
      },
    );
    const client = await connect();
    client.send(request(1, 'fails'));
    expect(await client.next()).toEqual({
      jsonrpc: '2.0',
      id: 1,
      error: { code: -32042, message: 'boom', data: { field: 'x' } },
    });
    mapperThrows = true;
    client.send(request(2, 'fails'));
    expect(await client.next()).toMatchObject({ id: 2, error: { code: jsonRpcErrorCodes.INTERNAL_ERROR } });
  });

  it('answers a client that sends its requests and shuts down its side (nc -U)', async () => {
    const later = deferred();
    await start({ later: () => later.promise.then(() => 'done') });
    const client = await connect();
    client.socket.end(request(1, 'later'));
    setTimeout(() => later.resolve(), 20);
    expect(await client.next()).toEqual({ jsonrpc: '2.0', id: 1, result: 'done' });
    await client.ended;
  });
});

describe('serveJsonRpc: cancellation', () => {
  it('$/cancel aborts the call with that id on the same connection, and only that one', async () => {
    const contexts = new Map<string, JsonRpcCallContext>();
    const wait: JsonRpcMethodHandler = (params, context) => {
      contexts.set(String(params.name), context);
      return new Promise((resolve, reject) => {
        context.signal.addEventListener('abort', () => reject(context.signal.reason), { once: true });
        if (params.name === 'b') setTimeout(() => resolve('b done'), 400);
      });
    };
    await start(
      { wait },
      { errorFor: (error) => ({ code: -32001, message: String((error as Error).message) }) },
    );
    const client = await connect();
    client.send(request(1, 'wait', { name: 'a' }) + request(2, 'wait', { name: 'b' }));
    await expect.poll(() => contexts.size).toBe(2);
    client.send(request(undefined, '$/cancel', { id: 1 }));
    expect(await client.next()).toMatchObject({ id: 1, error: { code: -32001 } });
    expect(contexts.get('a')?.signal.reason).toMatchObject({ code: 'ABORTED' });
    expect(await client.next()).toEqual({ jsonrpc: '2.0', id: 2, result: 'b done' });
    client.send(request(3, '$/cancel', { id: 99 }));
    expect(await client.next()).toEqual({ jsonrpc: '2.0', id: 3, result: { cancelled: false } });
  });

  it('closing the connection aborts its calls and its signal; close() waits for handlers to finish', async () => {
    const started = deferred<JsonRpcCallContext>();
    let finished = false;
    await start({
      wait: (_params, context) => {
        started.resolve(context);
        return new Promise((resolve) =>
          context.signal.addEventListener('abort', () =>
            setTimeout(() => {
              finished = true;
              resolve(true);
            }, 20),
          ),
        );
      },
    });
    const client = await connect();
    client.send(request(1, 'wait'));
    const context = await started.promise;
    client.close();
    await expect.poll(() => context.signal.aborted).toBe(true);
    expect(context.connection.closed).toBe(true);
    expect(context.connection.notify('late')).toBe(false);
    await server?.close();
    expect(finished).toBe(true);
  });
});

describe('serveJsonRpc: notifications to the client', () => {
  it('delivers what a handler sends on its connection before the answer', async () => {
    await start({
      work: (_params, context) => {
        context.connection.notify('progress', { step: 1 });
        context.connection.notify('progress', { step: 2 });
        return Promise.resolve('ok');
      },
    });
    const client = await connect();
    client.send(request(1, 'work'));
    expect(await client.next()).toEqual({ jsonrpc: '2.0', method: 'progress', params: { step: 1 } });
    expect(await client.next()).toEqual({ jsonrpc: '2.0', method: 'progress', params: { step: 2 } });
    expect(await client.next()).toEqual({ jsonrpc: '2.0', id: 1, result: 'ok' });
  });

  it('drops notifications to a client that does not read, and stops reading its requests', async () => {
    const connections: import('./rpc-server.js').JsonRpcConnection[] = [];
    await start(
      { ping: () => 'pong' },
      { limits: { maxBufferedBytes: 64 * 1024 }, onConnection: (c) => connections.push(c) },
    );
    const client = await connect();
    client.socket.pause();
    await expect.poll(() => connections.length).toBe(1);
    const payload = 'z'.repeat(16 * 1024);
    let sent = 0;
    for (let i = 0; i < 1000 && connections[0]!.notify('flood', { payload }); i++) sent++;
    // The kernel's buffers take some; the rest waits in the process only up to the limit.
    expect(sent).toBeLessThan(1000);
    // A second, reading client is served meanwhile.
    const other = await connect();
    other.send(request(1, 'ping'));
    expect(await other.next()).toEqual({ jsonrpc: '2.0', id: 1, result: 'pong' });
  });
});

describe('serveJsonRpc: limits', () => {
  it('answers RATE_LIMITED past the per-connection rate, per connection', async () => {
    await start({ ping: () => 'pong' }, { limits: { requestsPerSecond: 1, burst: 2 } });
    const client = await connect();
    client.send(request(1, 'ping') + request(2, 'ping') + request(3, 'ping'));
    const answers = [await client.next(), await client.next(), await client.next()];
    expect(answers).toContainEqual({ jsonrpc: '2.0', id: 1, result: 'pong' });
    expect(answers).toContainEqual({ jsonrpc: '2.0', id: 2, result: 'pong' });
    expect(answers).toContainEqual(
      expect.objectContaining({
        id: 3,
        error: expect.objectContaining({ code: jsonRpcErrorCodes.RATE_LIMITED }),
      }),
    );
    const other = await connect();
    other.send(request(4, 'ping'));
    expect(await other.next()).toEqual({ jsonrpc: '2.0', id: 4, result: 'pong' });
  });

  it('runs at most maxInFlight calls of a connection at once and serves the rest in order', async () => {
    let running = 0;
    let most = 0;
    await start(
      {
        work: (params) => {
          running++;
          most = Math.max(most, running);
          return new Promise((resolve) =>
            setTimeout(() => {
              running--;
              resolve(params.n);
            }, 5),
          );
        },
      },
      { limits: { maxInFlight: 3 } },
    );
    const client = await connect();
    client.send(Array.from({ length: 20 }, (_, n) => request(n, 'work', { n })).join(''));
    const ids = [];
    for (let n = 0; n < 20; n++) ids.push(((await client.next()) as { id: number }).id);
    expect(ids.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, n) => n));
    expect(most).toBe(3);
  });

  it('answers OVERLOADED to a connection past maxConnections and closes it', async () => {
    await start({ ping: () => 'pong' }, { limits: { maxConnections: 1 } });
    const first = await connect();
    const second = await connect();
    expect(await second.next()).toMatchObject({ id: null, error: { code: jsonRpcErrorCodes.OVERLOADED } });
    await second.ended;
    first.send(request(1, 'ping'));
    expect(await first.next()).toEqual({ jsonrpc: '2.0', id: 1, result: 'pong' });
  });

  it('refuses bad options with TypeError before touching the socket path', async () => {
    await expect(serveJsonRpc({ socketPath: dir.path(), methods: 'x' as never })).rejects.toThrow(TypeError);
    await expect(
      serveJsonRpc({ socketPath: dir.path(), methods: () => undefined, limits: { maxInFlight: 0 } }),
    ).rejects.toThrow(TypeError);
    await expect(lstat(dir.path())).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
