import { lstat, mkdir, stat, writeFile } from 'node:fs/promises';
import { NetOpsError } from '@my-hypervisor/net-ops';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeOps } from '../../test/support/fake-ops.js';
import { rawClient, socketDir, staleSocket } from '../../test/support/sockets.js';
import { mosnetMethods } from '../methods.js';
import { MosnetClient } from '../mosnet-client.js';
import { createMosnetServer, type MosnetServer } from './index.js';

let dir: Awaited<ReturnType<typeof socketDir>>;
let ops: FakeOps;
let server: MosnetServer | undefined;
const closers: (() => unknown)[] = [];

beforeEach(async () => {
  dir = await socketDir();
  ops = new FakeOps();
});
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  await server?.close();
  server = undefined;
  await dir.remove();
});

async function start(options: Partial<Parameters<typeof createMosnetServer>[0]> = {}) {
  server = await createMosnetServer({ ops, socketPath: dir.path(), ...options });
  return server;
}

async function connect() {
  const client = await rawClient(dir.path());
  closers.push(client.close);
  return client;
}

const request = (id: number | string | undefined, method: string, params?: unknown) =>
  `${JSON.stringify({ jsonrpc: '2.0', ...(id === undefined ? {} : { id }), method, params })}\n`;

describe('createMosnetServer: the socket', () => {
  it('listens with mode 0600 by default, or the mode given', async () => {
    await start();
    expect((await stat(dir.path())).mode & 0o777).toBe(0o600);
    await server?.close();
    await start({ mode: 0o660 });
    expect((await stat(dir.path())).mode & 0o777).toBe(0o660);
  });

  it('replaces a stale socket, but refuses a live one (ALREADY_EXISTS) and any other file (CONFLICT)', async () => {
    await staleSocket(dir.path());
    await start();
    await expect(createMosnetServer({ ops, socketPath: dir.path() })).rejects.toMatchObject({
      code: 'ALREADY_EXISTS',
    });
    await writeFile(dir.path('plain'), 'data');
    await expect(createMosnetServer({ ops, socketPath: dir.path('plain') })).rejects.toMatchObject({
      code: 'CONFLICT',
    });
    expect((await lstat(dir.path('plain'))).isFile()).toBe(true);
  });

  it('removes its socket on close, idempotently, and leaves no temporary directory behind', async () => {
    await start();
    await Promise.all([server?.close(), server?.[Symbol.asyncDispose]()]);
    await expect(lstat(dir.path())).rejects.toMatchObject({ code: 'ENOENT' });
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(dir.path('.'))).toEqual([]);
  });

  it('fails with a NetOpsError when the directory is missing', async () => {
    const error = await createMosnetServer({ ops, socketPath: dir.path('missing/s.sock') }).catch(
      (e: unknown) => e,
    );
    expect(NetOpsError.isInstance(error)).toBe(true);
    await mkdir(dir.path('missing'));
  });

  it('serves many connections at once', async () => {
    await start();
    const clients = await Promise.all(Array.from({ length: 20 }, () => connect()));
    for (const [n, client] of clients.entries()) {
      client.send(request(n, mosnetMethods.deleteTap, { name: `tap${n}` }));
    }
    const answers = await Promise.all(clients.map((client) => client.next()));
    expect(answers).toEqual(
      clients.map((_, n) => ({ jsonrpc: '2.0', id: n, result: { name: `tap${n}`, existed: false } })),
    );
    expect(server?.connections).toBe(20);
  });

  it('serves pipelined requests concurrently, answering each by id as it completes', async () => {
    await start();
    ops.delayMs = 100;
    const client = await connect();
    const started = Date.now();
    for (let n = 0; n < 10; n++) client.send(request(n, mosnetMethods.deleteTap, { name: `tap${n}` }));
    const answers = await Promise.all(Array.from({ length: 10 }, () => client.next()));
    expect(Date.now() - started).toBeLessThan(900);
    expect(answers.map((answer) => (answer as { id: number }).id).sort((a, b) => a - b)).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    ]);
  });
});

describe('createMosnetServer: the protocol', () => {
  beforeEach(() => start());

  it('answers invalid JSON with -32700 and id null, and keeps the connection', async () => {
    const client = await connect();
    client.send('{nope\n');
    expect(await client.next()).toMatchObject({ id: null, error: { code: -32700 } });
    client.send(request(1, mosnetMethods.deleteTap, { name: 'a' }));
    expect(await client.next()).toMatchObject({ id: 1, result: { existed: false } });
  });

  it('answers a non-request with -32600, an unknown method with -32601, positional params with -32602', async () => {
    const client = await connect();
    client.send(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 7 })}\n`);
    expect(await client.next()).toMatchObject({ id: 1, error: { code: -32600 } });
    client.send(request(2, 'mosnet.nope', {}));
    expect(await client.next()).toMatchObject({ id: 2, error: { code: -32601 } });
    client.send(request(3, mosnetMethods.deleteTap, ['tap0']));
    expect(await client.next()).toMatchObject({ id: 3, error: { code: -32602 } });
  });

  it('validates params with the contract schemas before touching the ops (-32602, data.field)', async () => {
    const client = await connect();
    client.send(
      request('a', mosnetMethods.addForward, {
        protocol: 'tcp',
        host_port: 70000,
        guest_ip: '10.0.0.2',
        guest_port: 80,
      }),
    );
    expect(await client.next()).toMatchObject({
      id: 'a',
      error: { code: -32602, data: { field: 'host_port', code: 'INVALID_ARGUMENT' } },
    });
    client.send(request('b', mosnetMethods.createTap, { name: 'tap0', bridge: 'br0', extra: true }));
    expect(await client.next()).toMatchObject({ id: 'b', error: { code: -32602 } });
    client.send(request('c', mosnetMethods.bridgeAdd, { name: 'bad name', address: '10.0.0.1/24' }));
    expect(await client.next()).toMatchObject({ id: 'c', error: { code: -32602, data: { field: 'name' } } });
    expect(ops.calls).toEqual([]);
  });

  it('maps the ops’ NetOpsError codes to the contract’s error codes, keeping details in data', async () => {
    const client = await connect();
    const cases = [
      ['NOT_FOUND', -32010],
      ['ALREADY_EXISTS', -32011],
      ['CONFLICT', -32012],
      ['PERMISSION_DENIED', -32013],
      ['UNSUPPORTED', -32014],
      ['INVALID_ARGUMENT', -32602],
      ['BACKEND_FAILURE', -32000],
      ['BACKEND_UNAVAILABLE', -32000],
      ['TIMEOUT', -32000],
    ] as const;
    for (const [code, rpcCode] of cases) {
      ops.failNext = new NetOpsError(code, 'no', { details: { stderr: 'why', command: ['ip', 'link'] } });
      client.send(request(code, mosnetMethods.deleteTap, { name: 'tap0' }));
      expect(await client.next()).toMatchObject({
        id: code,
        error: { code: rpcCode, data: { code, stderr: 'why', command: ['ip', 'link'] } },
      });
    }
    ops.failNext = new Error('unexpected');
    client.send(request(9, mosnetMethods.deleteTap, { name: 'tap0' }));
    expect(await client.next()).toMatchObject({ id: 9, error: { code: -32603 } });
  });

  it('sends nothing for notifications, but runs them', async () => {
    const client = await connect();
    client.send(request(undefined, mosnetMethods.bridgeAdd, { name: 'br0', address: '10.0.0.1/24' }));
    client.send(request(undefined, 'mosnet.unknown', {}));
    client.send(request(5, mosnetMethods.deleteTap, { name: 'x' }));
    expect(await client.next()).toMatchObject({ id: 5 });
    expect(ops.bridges.has('br0')).toBe(true);
  });

  it('serves a request with id null and answers it with id null; only a missing id is a notification', async () => {
    const client = await connect();
    const nullId = (method: string, params?: unknown) =>
      `${JSON.stringify({ jsonrpc: '2.0', id: null, method, params })}\n`;
    client.send(nullId(mosnetMethods.deleteTap, { name: 'tap0' }));
    expect(await client.next()).toEqual({
      jsonrpc: '2.0',
      id: null,
      result: { name: 'tap0', existed: false },
    });
    expect(ops.calls.map((call) => call.op)).toEqual(['deleteTap']);
    client.send(nullId('mosnet.nope'));
    expect(await client.next()).toMatchObject({ id: null, error: { code: -32601 } });
    client.send(nullId(mosnetMethods.deleteTap, { name: 'bad name' }));
    expect(await client.next()).toMatchObject({ id: null, error: { code: -32602, data: { field: 'name' } } });
    ops.failNext = new NetOpsError('PERMISSION_DENIED', 'no');
    client.send(nullId(mosnetMethods.deleteTap, { name: 'tap0' }));
    expect(await client.next()).toMatchObject({ id: null, error: { code: -32013 } });
    // In a batch the answers keep their order: the notification (no id member) gets none, id null does.
    client.send(
      `${JSON.stringify([
        { jsonrpc: '2.0', method: mosnetMethods.deleteTap, params: { name: 'a' } },
        { jsonrpc: '2.0', id: null, method: mosnetMethods.deleteTap, params: { name: 'b' } },
        { jsonrpc: '2.0', method: 'mosnet.nope' },
        { jsonrpc: '2.0', id: null, method: 'mosnet.nope' },
      ])}\n`,
    );
    expect(await client.next()).toEqual([
      { jsonrpc: '2.0', id: null, result: { name: 'b', existed: false } },
      { jsonrpc: '2.0', id: null, error: { code: -32601, message: 'Method not found: mosnet.nope' } },
    ]);
  });

  it('answers a batch with an array, leaving notifications out; an empty batch is -32600', async () => {
    const client = await connect();
    client.send(
      `${JSON.stringify([
        { jsonrpc: '2.0', id: 1, method: mosnetMethods.deleteTap, params: { name: 'a' } },
        { jsonrpc: '2.0', method: mosnetMethods.deleteTap, params: { name: 'b' } },
        { jsonrpc: '2.0', id: 2, method: 'nope' },
      ])}\n`,
    );
    expect(await client.next()).toEqual([
      { jsonrpc: '2.0', id: 1, result: { name: 'a', existed: false } },
      { jsonrpc: '2.0', id: 2, error: { code: -32601, message: 'Method not found: nope' } },
    ]);
    client.send('[]\n');
    expect(await client.next()).toMatchObject({ id: null, error: { code: -32600 } });
  });

  it('answers an over-long line with -32600 (with its id when it leads) and reads on', async () => {
    await server?.close();
    await start({ maxLineBytes: 1024 });
    const client = await connect();
    client.send(request(7, mosnetMethods.deleteTap, { name: 'x'.repeat(5000) }));
    expect(await client.next()).toMatchObject({ id: 7, error: { code: -32600 } });
    client.send(`{"jsonrpc":"2.0","method":"m","params":{"pad":"${'p'.repeat(5000)}"},"id":8}\n`);
    expect(await client.next()).toMatchObject({ id: 8, error: { code: -32600 } });
    client.send(`{"jsonrpc":"2.0","method":"m","params":{"pad":"${'p'.repeat(5000)}","id":1}}\n`);
    expect(await client.next()).toMatchObject({ id: null, error: { code: -32600 } });
    client.send(request(9, mosnetMethods.deleteTap, { name: 'tap0' }));
    expect(await client.next()).toMatchObject({ id: 9, result: { existed: false } });
  });

  it('answers rpc.discover with the document for the ops’ capabilities', async () => {
    const client = await connect();
    client.send(request(1, 'rpc.discover'));
    const full = (await client.next()) as { result: { methods: { name: string }[] } };
    expect(full.result.methods.map((method) => method.name)).toContain(mosnetMethods.listBridgePorts);
    ops.capabilities = {
      ...ops.capabilities,
      listBridgePorts: false,
      listPortForwards: false,
      tapOwner: false,
    };
    client.send(request(2, 'rpc.discover'));
    const reduced = (await client.next()) as {
      result: { methods: { name: string; params: { name: string }[] }[] };
    };
    const names = reduced.result.methods.map((method) => method.name);
    expect(names).not.toContain(mosnetMethods.listBridgePorts);
    expect(names).not.toContain(mosnetMethods.listForwards);
    const createTap = reduced.result.methods.find((method) => method.name === mosnetMethods.createTap);
    expect(createTap?.params.map((param) => param.name)).toEqual(['name', 'bridge', 'mtu', 'multi_queue']);
    client.send(request(3, mosnetMethods.listBridgePorts, { bridge: 'br0' }));
    expect(await client.next()).toMatchObject({ id: 3, error: { code: -32601 } });
  });
});

describe('createMosnetServer: closing', () => {
  it('aborts calls in progress, answers them, then closes connections', async () => {
    await start();
    ops.delayMs = 10_000;
    const client = new MosnetClient({ socketPath: dir.path() });
    closers.push(() => client.close());
    const outcome = client.call(mosnetMethods.deleteTap, { name: 'tap0' }).catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    await server?.close();
    expect(Date.now() - started).toBeLessThan(2_000);
    // The daemon's own ABORTED is a failure of the daemon as the caller sees it.
    expect(await outcome).toMatchObject({ code: 'BACKEND_FAILURE', details: { data: { code: 'ABORTED' } } });
  });

  it('rejects inputs that are programmer mistakes with TypeError', async () => {
    await expect(createMosnetServer({ ops: {} as FakeOps, socketPath: dir.path() })).rejects.toThrow(
      TypeError,
    );
    await expect(createMosnetServer({ ops, socketPath: dir.path(), mode: 0o1000 })).rejects.toThrow(
      TypeError,
    );
    await expect(createMosnetServer({ ops, socketPath: `/tmp/${'x'.repeat(120)}` })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
  });
});
