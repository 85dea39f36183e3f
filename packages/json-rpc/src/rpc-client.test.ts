import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JsonRpcError } from './errors.js';
import {
  JsonRpcClient,
  type JsonRpcClientOptions,
  type JsonRpcNotification,
  type JsonRpcProtocolIssue,
} from './rpc-client.js';

interface Message {
  readonly jsonrpc: string;
  readonly id?: number;
  readonly method: string;
  readonly params?: Record<string, unknown>;
}

/** A tiny server: every parsed line goes to `onMessage` with its socket; the test decides what goes back. */
interface Peer {
  readonly server: Server;
  readonly sockets: Set<Socket>;
  close(): Promise<void>;
}

let dir: string;
let socketPath: string;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'json-rpc-client-'));
  socketPath = join(dir, 'rpc.sock');
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await rm(dir, { recursive: true, force: true });
});

async function peer(onMessage: (message: Message, socket: Socket) => void): Promise<Peer> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        onMessage(JSON.parse(line) as Message, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  let closed: Promise<void> | undefined;
  const created: Peer = {
    server,
    sockets,
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return closed;
    },
  };
  cleanups.push(created.close);
  return created;
}

function client(options: Partial<JsonRpcClientOptions> = {}): JsonRpcClient {
  const created = new JsonRpcClient({ socketPath, ...options });
  cleanups.push(() => created.close());
  return created;
}

function line(message: Record<string, unknown>): string {
  return `${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`;
}

const ok = (id: number | undefined, result: unknown) => line({ id, result });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('JsonRpcClient: calls', () => {
  it('pipelines calls on one connection and matches answers sent in reverse order', async () => {
    const held: { message: Message; socket: Socket }[] = [];
    await peer((message, socket) => {
      held.push({ message, socket });
      // Only once all are in: a client that waited for each answer would never get here.
      if (held.length === 200) {
        for (const { message: m, socket: s } of held.reverse())
          s.write(ok(m.id, { twice: (m.params?.n as number) * 2 }));
      }
    });
    const c = client();
    expect(c.connected).toBe(false);
    const results = await Promise.all(Array.from({ length: 200 }, (_, n) => c.call('double', { n })));
    expect(results).toEqual(Array.from({ length: 200 }, (_, n) => ({ twice: n * 2 })));
    expect(c.connectionCount).toBe(1);
    expect(c.connected).toBe(true);
    expect(c.pendingCalls).toBe(0);
  });

  it('tells onSent the id the request carries on the wire', async () => {
    const seen: number[] = [];
    await peer((message, socket) => {
      seen.push(message.id!);
      socket.write(ok(message.id, null));
    });
    const c = client();
    const sent: number[] = [];
    await Promise.all([1, 2].map(() => c.call('m', {}, { onSent: (id) => sent.push(id) })));
    expect(sent).toEqual(seen);
    expect(sent).toHaveLength(2);
  });

  it('rejects with REMOTE_ERROR keeping method, JSON-RPC code and data, and lifts a string data.field', async () => {
    await peer((message, socket) =>
      socket.write(
        line({
          id: message.id,
          error: { code: -32602, message: 'bad port', data: { field: 'hostPort', max: 65535 } },
        }),
      ),
    );
    const error = await client()
      .call('nat.add', {})
      .catch((e: unknown) => e);
    expect(JsonRpcError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({
      code: 'REMOTE_ERROR',
      details: {
        method: 'nat.add',
        rpcCode: -32602,
        field: 'hostPort',
        data: { field: 'hostPort', max: 65535 },
      },
    });
  });

  it('leaves details.field out when data.field is not a string', async () => {
    await peer((message, socket) =>
      socket.write(line({ id: message.id, error: { code: -32000, message: 'no', data: { field: 3 } } })),
    );
    const error = (await client()
      .call('m', {})
      .catch((e: unknown) => e)) as JsonRpcError;
    expect(error.code).toBe('REMOTE_ERROR');
    expect(error.details).not.toHaveProperty('field');
  });

  it('passes every rejection through mapError, and the constructor’s INVALID_ARGUMENT too', async () => {
    class MyError extends Error {
      constructor(readonly original: JsonRpcError) {
        super(original.message);
      }
    }
    const mapError = (error: JsonRpcError) => new MyError(error);
    const unreachable = await client({ mapError })
      .call('m', {})
      .catch((e: unknown) => e);
    expect(unreachable).toBeInstanceOf(MyError);
    expect((unreachable as MyError).original.code).toBe('UNAVAILABLE');

    await peer((message, socket) =>
      socket.write(line({ id: message.id, error: { code: 1, message: 'no' } })),
    );
    const c = client({ mapError });
    const remote = await c.call('m', {}).catch((e: unknown) => e);
    expect((remote as MyError).original.code).toBe('REMOTE_ERROR');
    const aborted = await c.call('m', {}, { signal: AbortSignal.abort() }).catch((e: unknown) => e);
    expect((aborted as MyError).original.code).toBe('ABORTED');
    expect(() => new JsonRpcClient({ socketPath: `/tmp/${'x'.repeat(120)}`, mapError })).toThrow(MyError);
  });

  it('rejects with UNAVAILABLE naming the socket, the service and the hint when nothing listens', async () => {
    const error = (await client({ serviceName: 'vmd', unavailableHint: 'start vmd' })
      .call('m', {})
      .catch((e: unknown) => e)) as JsonRpcError;
    expect(error).toMatchObject({ code: 'UNAVAILABLE', details: { socketPath, errno: 'ENOENT' } });
    expect(error.message).toContain('vmd');
    expect(error.message).toContain('start vmd');
  });
});

describe('JsonRpcClient: faults', () => {
  it('times out an unanswered call (TIMEOUT) and reports its late answer as late', async () => {
    const issues: JsonRpcProtocolIssue[] = [];
    let answerLate: (() => void) | undefined;
    await peer((message, socket) => {
      if (message.method === 'hang') answerLate = () => socket.write(ok(message.id, 'too late'));
      else socket.write(ok(message.id, 'prompt'));
    });
    const c = client({ onProtocolError: (issue) => issues.push(issue) });
    const started = Date.now();
    await expect(c.call('hang', {}, { timeoutMs: 100 })).rejects.toMatchObject({
      code: 'TIMEOUT',
      details: { method: 'hang', timeoutMs: 100 },
    });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(c.pendingCalls).toBe(0);
    answerLate?.();
    expect(await c.call('m', {})).toBe('prompt');
    expect(issues).toMatchObject([{ kind: 'late-response' }]);
  });

  it('aborts on the signal (ABORTED), reports the late answer as late, and sends nothing when already aborted', async () => {
    const issues: JsonRpcProtocolIssue[] = [];
    const seen: string[] = [];
    let answerLate: (() => void) | undefined;
    await peer((message, socket) => {
      seen.push(message.method);
      if (message.method === 'hang') answerLate = () => socket.write(ok(message.id, 'too late'));
      else socket.write(ok(message.id, 'prompt'));
    });
    const c = client({ onProtocolError: (issue) => issues.push(issue) });
    const controller = new AbortController();
    const pending = c.call('hang', {}, { signal: controller.signal });
    await sleep(50);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(c.call('never-sent', {}, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'ABORTED',
    });
    answerLate?.();
    expect(await c.call('m', {})).toBe('prompt');
    expect(seen).toEqual(['hang', 'm']);
    expect(issues).toMatchObject([{ kind: 'late-response' }]);
  });

  it('fails a call in flight with DISCONNECTED when the server drops the connection', async () => {
    await peer((_message, socket) => socket.destroy());
    const c = client();
    await expect(c.call('m', {})).rejects.toMatchObject({
      code: 'DISCONNECTED',
      details: { method: 'm', socketPath },
    });
    expect(c.pendingCalls).toBe(0);
    expect(c.connected).toBe(false);
  });

  it('reconnects after the server restarts', async () => {
    const answer = (message: Message, socket: Socket) => socket.write(ok(message.id, 'fine'));
    const first = await peer(answer);
    const c = client();
    expect(await c.call('m', {})).toBe('fine');
    await first.close();
    // Until the client has seen the close, a call still goes out on the old socket and fails as DISCONNECTED.
    while (c.connected) await sleep(5);
    await expect(c.call('m', {})).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await peer(answer);
    expect(await c.call('m', {})).toBe('fine');
    expect(c.connectionCount).toBe(2);
  });

  it('fails the call an over-long answer belongs to (MALFORMED_RESPONSE) and keeps the connection', async () => {
    let calls = 0;
    await peer((message, socket) => {
      calls++;
      if (calls === 1) socket.write(`{"jsonrpc":"2.0","id":${message.id},"result":"${'x'.repeat(4096)}"}\n`);
      else socket.write(ok(message.id, 'small'));
    });
    const c = client({ maxLineBytes: 1024 });
    await expect(c.call('big', {})).rejects.toMatchObject({
      code: 'MALFORMED_RESPONSE',
      details: { method: 'big', maxLineBytes: 1024 },
    });
    expect(await c.call('m', {})).toBe('small');
    expect(c.connectionCount).toBe(1);
  });

  it('fails a malformed answer to a known id with MALFORMED_RESPONSE', async () => {
    await peer((message, socket) => socket.write(`${JSON.stringify({ jsonrpc: '1.0', id: message.id })}\n`));
    await expect(client().call('m', {})).rejects.toMatchObject({ code: 'MALFORMED_RESPONSE' });
  });

  it('reports a line that is not JSON and answers the call after it', async () => {
    const issues: JsonRpcProtocolIssue[] = [];
    await peer((message, socket) => socket.write(`not json\n${ok(message.id, 'after')}`));
    const c = client({ onProtocolError: (issue) => issues.push(issue) });
    expect(await c.call('m', {})).toBe('after');
    expect(issues).toMatchObject([{ kind: 'invalid-json', line: 'not json' }]);
  });
});

describe('JsonRpcClient: notifications', () => {
  it('hands server notifications to onNotification, survives a throwing hook, and reports requests', async () => {
    const notifications: JsonRpcNotification[] = [];
    const issues: JsonRpcProtocolIssue[] = [];
    await peer((message, socket) =>
      socket.write(
        line({ method: 'vm.state', params: { name: 'a', state: 'running' } }) +
          line({ method: 'boom' }) +
          line({ id: 7, method: 'please.serve' }) +
          line({ method: 'after.boom', params: [1] }) +
          ok(message.id, 'answered'),
      ),
    );
    const c = client({
      onNotification: (notification) => {
        if (notification.method === 'boom') throw new Error('bad hook');
        notifications.push(notification);
      },
      onProtocolError: (issue) => issues.push(issue),
    });
    expect(await c.call('m', {})).toBe('answered');
    expect(notifications).toEqual([
      { method: 'vm.state', params: { name: 'a', state: 'running' } },
      { method: 'after.boom', params: [1] },
    ]);
    expect(issues).toMatchObject([{ kind: 'notification', id: 7 }]);
    expect(c.connectionCount).toBe(1);
    expect(await c.call('m', {})).toBe('answered');
  });

  it('reports notifications as protocol issues when no onNotification is set', async () => {
    const issues: JsonRpcProtocolIssue[] = [];
    await peer((message, socket) => socket.write(line({ method: 'event' }) + ok(message.id, 1)));
    const c = client({ onProtocolError: (issue) => issues.push(issue) });
    expect(await c.call('m', {})).toBe(1);
    expect(issues).toMatchObject([{ kind: 'notification' }]);
    expect(issues[0]).not.toHaveProperty('id');
  });

  it('notify() sends a notification without an id, on the connection calls use, and resolves once written', async () => {
    const seen: Message[] = [];
    let arrived: (() => void) | undefined;
    const arrival = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const server = await peer((message, socket) => {
      seen.push(message);
      if (message.id !== undefined) socket.write(ok(message.id, 'ok'));
      else arrived?.();
    });
    let connections = 0;
    server.server.on('connection', () => connections++);
    const c = client();
    await c.notify('$/cancel', { id: 41 });
    await arrival;
    expect(await c.call('m', {})).toBe('ok');
    expect(seen[0]).toEqual({ jsonrpc: '2.0', method: '$/cancel', params: { id: 41 } });
    expect(connections).toBe(1);
    expect(c.pendingCalls).toBe(0);
  });

  it('notify() rejects with UNAVAILABLE when nothing listens, and ABORTED on its signal or once closed', async () => {
    const c = client();
    await expect(c.notify('n', {})).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(c.notify('n', {}, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'ABORTED',
    });
    await c.close();
    await expect(c.notify('n', {})).rejects.toMatchObject({ code: 'ABORTED' });
  });
});

describe('JsonRpcClient: lifecycle and inputs', () => {
  it('closes idempotently; pending and later calls reject with ABORTED', async () => {
    await peer(() => undefined);
    const c = client();
    const pending = c.call('hang', {});
    await sleep(50);
    await Promise.all([c.close(), c[Symbol.asyncDispose]()]);
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(c.call('m', {})).rejects.toMatchObject({ code: 'ABORTED' });
    expect(c.connected).toBe(false);
  });

  it('throws TypeError for programmer mistakes and INVALID_ARGUMENT for an over-long socket path', async () => {
    expect(() => new JsonRpcClient({ socketPath, timeoutMs: 0 })).toThrow(TypeError);
    expect(() => new JsonRpcClient({ socketPath, maxLineBytes: 1.5 })).toThrow(TypeError);
    expect(() => new JsonRpcClient({ socketPath: '' })).toThrow(TypeError);
    expect(() => new JsonRpcClient({ socketPath: `/tmp/${'x'.repeat(120)}` })).toThrow(
      expect.objectContaining({
        code: 'INVALID_ARGUMENT',
        details: expect.objectContaining({ field: 'socketPath' }),
      }),
    );
    const c = client();
    expect(c.socketPath).toBe(socketPath);
    await expect(c.call('', {})).rejects.toThrow(TypeError);
    await expect(c.call('m', [] as unknown as Record<string, unknown>)).rejects.toThrow(TypeError);
    await expect(c.notify('m', [] as unknown as Record<string, unknown>)).rejects.toThrow(TypeError);
  });
});
