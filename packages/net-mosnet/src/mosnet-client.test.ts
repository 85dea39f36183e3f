import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NetOpsError } from '@my-hypervisor/net-ops';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeOps } from '../test/support/fake-ops.js';
import { ok, rawPeer, socketDir, staleSocket } from '../test/support/sockets.js';
import { MosnetClient, type MosnetProtocolIssue } from './mosnet-client.js';
import { mosnetErrorCodes } from './rpc-errors.js';
import { createMosnetServer } from './server/index.js';

let dir: Awaited<ReturnType<typeof socketDir>>;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  dir = await socketDir();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await dir.remove();
});

function client(options: ConstructorParameters<typeof MosnetClient>[0] = {}): MosnetClient {
  const created = new MosnetClient({ socketPath: dir.path(), ...options });
  cleanups.push(() => created.close());
  return created;
}

async function peer(...args: Parameters<typeof rawPeer> extends [string, ...infer R] ? R : never) {
  const created = await rawPeer(dir.path(), ...args);
  cleanups.push(created.close);
  return created;
}

describe('MosnetClient: reaching the daemon', () => {
  it('rejects with BACKEND_UNAVAILABLE naming the socket and how to start mosnetd when nothing is there', async () => {
    const error = await client()
      .call('mosnet.vm.delete_tap', { name: 'tap0' })
      .catch((e: unknown) => e);
    expect(NetOpsError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ code: 'BACKEND_UNAVAILABLE', details: { errno: 'ENOENT' } });
    expect((error as Error).message).toContain(dir.path());
    expect((error as Error).message).toMatch(/mosnetd/);
    expect((error as Error).message).toMatch(/createMosnetServer/);
  });

  it('rejects with BACKEND_UNAVAILABLE when the socket file exists but nobody listens (refused)', async () => {
    await staleSocket(dir.path());
    const error = await client()
      .call('m', {})
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BACKEND_UNAVAILABLE', details: { errno: 'ECONNREFUSED' } });
  });

  it('connects lazily, once, and pipelines many calls on that one connection', async () => {
    let connections = 0;
    const server = await peer((request, socket) => socket.write(ok(request.id, request.params)));
    server.server.on('connection', () => connections++);
    const c = client();
    expect(c.connected).toBe(false);
    const results = await Promise.all([1, 2, 3].map((n) => c.call('echo', { n })));
    expect(results).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(connections).toBe(1);
    expect(c.connectionCount).toBe(1);
    expect(c.connected).toBe(true);
  });

  it('answers 1000 concurrent calls correctly even when the daemon answers them in reverse order', async () => {
    const held: { id: number; params: Record<string, unknown>; socket: import('node:net').Socket }[] = [];
    await peer((request, socket) => {
      held.push({ id: request.id, params: request.params, socket });
      // Answer only once all 1000 are in: a client that serialised calls would never get here.
      if (held.length === 1000) {
        for (const { id, params, socket: s } of held.reverse())
          s.write(ok(id, { twice: (params.n as number) * 2 }));
      }
    });
    const c = client();
    const results = await Promise.all(Array.from({ length: 1000 }, (_, n) => c.call('double', { n })));
    expect(results).toEqual(Array.from({ length: 1000 }, (_, n) => ({ twice: n * 2 })));
    expect(c.pendingCalls).toBe(0);
    expect(c.connectionCount).toBe(1);
  });

  it('reads a final response that has no newline before EOF', async () => {
    await peer((request, socket) =>
      socket.end(JSON.stringify({ jsonrpc: '2.0', id: request.id, result: 7 })),
    );
    expect(await client().call('m', {})).toBe(7);
  });
});

describe('MosnetClient: faults', () => {
  it('fails a call in flight with BACKEND_UNAVAILABLE when the daemon closes mid-call, then reconnects', async () => {
    let first = true;
    await peer((request, socket) => {
      if (first) {
        first = false;
        socket.destroy();
        return;
      }
      socket.write(ok(request.id, 'fine'));
    });
    const c = client();
    await expect(c.call('m', {})).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    expect(c.pendingCalls).toBe(0);
    expect(await c.call('m', {})).toBe('fine');
    expect(c.connectionCount).toBe(2);
  });

  it('reports a garbage line and keeps answering the calls around it', async () => {
    const issues: MosnetProtocolIssue[] = [];
    await peer((request, socket) => socket.write(`this is not json\n${ok(request.id, 'after')}`));
    const c = client({ onProtocolError: (issue) => issues.push(issue) });
    expect(await c.call('m', {})).toBe('after');
    expect(issues).toMatchObject([{ kind: 'invalid-json', line: 'this is not json' }]);
  });

  it('reports a response for an unknown id and a notification without touching pending calls', async () => {
    const issues: MosnetProtocolIssue[] = [];
    await peer((request, socket) =>
      socket.write(
        ok(99_999, 'stranger') +
          `${JSON.stringify({ jsonrpc: '2.0', method: 'mosnet.event', params: {} })}\n` +
          `${JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } })}\n` +
          `${JSON.stringify([1, 2])}\n` +
          ok(request.id, 'mine'),
      ),
    );
    const c = client({ onProtocolError: (issue) => issues.push(issue) });
    expect(await c.call('m', {})).toBe('mine');
    expect(issues.map((issue) => issue.kind)).toEqual([
      'unknown-id',
      'notification',
      'error-without-id',
      'invalid-message',
    ]);
    expect(issues[0]).toMatchObject({ id: 99_999 });
  });

  it('reads id null as a valid id no call of ours carries, and keeps it apart from a missing id', async () => {
    const issues: MosnetProtocolIssue[] = [];
    await peer((request, socket) =>
      socket.write(
        `${JSON.stringify({ jsonrpc: '2.0', id: null, result: 'for a request sent with id null' })}\n` +
          `${JSON.stringify({ jsonrpc: '2.0', id: null, method: 'mosnet.ask' })}\n` +
          `${JSON.stringify({ jsonrpc: '2.0', method: 'mosnet.event' })}\n` +
          ok(request.id, 'mine'),
      ),
    );
    const c = client({ onProtocolError: (issue) => issues.push(issue) });
    expect(await c.call('m', {})).toBe('mine');
    expect(issues.map((issue) => [issue.kind, 'id' in issue ? issue.id : 'no id'])).toEqual([
      ['unknown-id', null],
      ['notification', null],
      ['notification', 'no id'],
    ]);
  });

  it('survives a hook that throws', async () => {
    await peer((request, socket) => socket.write(`garbage\n${ok(request.id, 1)}`));
    const c = client({
      onProtocolError: () => {
        throw new Error('bad hook');
      },
    });
    expect(await c.call('m', {})).toBe(1);
  });

  it('fails the call a 2 MiB line answers (BACKEND_FAILURE) without buffering it, and later calls work', async () => {
    const issues: MosnetProtocolIssue[] = [];
    let calls = 0;
    await peer((request, socket) => {
      calls++;
      if (calls === 1) {
        socket.write(`{"jsonrpc":"2.0","id":${request.id},"result":"${'x'.repeat(2 * 1024 * 1024)}"}\n`);
      } else if (calls === 2) {
        // Over-long and without a findable id: dropped and reported; the real answer follows.
        socket.write(`${'y'.repeat(2 * 1024 * 1024)}\n${ok(request.id, 'second')}`);
      } else socket.write(ok(request.id, 'third'));
    });
    const c = client({ onProtocolError: (issue) => issues.push(issue) });
    const error = await c.call('big', {}).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BACKEND_FAILURE', details: { maxLineBytes: 1024 * 1024 } });
    expect(await c.call('m', {})).toBe('second');
    expect(await c.call('m', {})).toBe('third');
    expect(issues).toMatchObject([{ kind: 'line-too-long' }]);
    expect(c.connectionCount).toBe(1);
  });

  it('times out a call the daemon never answers (TIMEOUT), reports the late answer, and keeps working', async () => {
    const issues: MosnetProtocolIssue[] = [];
    const ignored: number[] = [];
    let release: (() => void) | undefined;
    await peer((request, socket) => {
      if (request.method === 'hang') {
        ignored.push(request.id);
        release = () => socket.write(ok(request.id, 'too late'));
        return;
      }
      socket.write(ok(request.id, 'prompt'));
    });
    const c = client({ timeoutMs: 5_000, onProtocolError: (issue) => issues.push(issue) });
    const started = Date.now();
    await expect(c.call('hang', {}, { timeoutMs: 100 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(c.pendingCalls).toBe(0);
    expect(await c.call('m', {})).toBe('prompt');
    release?.();
    expect(await c.call('m', {})).toBe('prompt');
    expect(issues).toMatchObject([{ kind: 'late-response', id: ignored[0] }]);
  });

  it('times out each call on its own deadline, a short one after a long one included', async () => {
    await peer(() => undefined);
    const c = client();
    const started = Date.now();
    const long = c.call('hang', {}, { timeoutMs: 1_500 }).catch((error: unknown) => error);
    const short = c.call('hang', {}, { timeoutMs: 100 }).catch((error: unknown) => error);
    expect(await short).toMatchObject({ code: 'TIMEOUT', details: { timeoutMs: 100 } });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(await long).toMatchObject({ code: 'TIMEOUT', details: { timeoutMs: 1_500 } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
    expect(c.pendingCalls).toBe(0);
  });

  it('aborts with ABORTED on the caller’s signal, and sends nothing for an already aborted one', async () => {
    const seen: string[] = [];
    await peer((request) => seen.push(request.method));
    const c = client();
    const controller = new AbortController();
    const pending = c.call('hang', {}, { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 50));
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(c.call('never-sent', {}, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'ABORTED',
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen).toEqual(['hang']);
    expect(c.pendingCalls).toBe(0);
  });

  it('reconnects after the daemon restarts between calls', async () => {
    const ops = new FakeOps();
    const c = client();
    let server = await createMosnetServer({ ops, socketPath: dir.path() });
    expect(await c.call('mosnet.vm.delete_tap', { name: 'tap0' })).toEqual({ name: 'tap0', existed: false });
    await server.close();
    await expect(c.call('mosnet.vm.delete_tap', { name: 'tap0' })).rejects.toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
    });
    server = await createMosnetServer({ ops, socketPath: dir.path() });
    cleanups.push(() => server.close());
    expect(await c.call('mosnet.vm.delete_tap', { name: 'tap0' })).toEqual({ name: 'tap0', existed: false });
    expect(c.connectionCount).toBe(2);
  });

  it('fails a malformed response to a known id with BACKEND_FAILURE', async () => {
    await peer((request, socket) => socket.write(`${JSON.stringify({ jsonrpc: '1.0', id: request.id })}\n`));
    await expect(client().call('m', {})).rejects.toMatchObject({ code: 'BACKEND_FAILURE' });
  });
});

describe('MosnetClient: errors the daemon answers', () => {
  const cases = [
    [mosnetErrorCodes.METHOD_NOT_FOUND, 'UNSUPPORTED'],
    [mosnetErrorCodes.INVALID_PARAMS, 'INVALID_ARGUMENT'],
    [-32000, 'BACKEND_FAILURE'],
    [-32099, 'BACKEND_FAILURE'],
    [mosnetErrorCodes.NOT_FOUND, 'NOT_FOUND'],
    [mosnetErrorCodes.ALREADY_EXISTS, 'ALREADY_EXISTS'],
    [mosnetErrorCodes.CONFLICT, 'CONFLICT'],
    [mosnetErrorCodes.PERMISSION_DENIED, 'PERMISSION_DENIED'],
    [mosnetErrorCodes.UNSUPPORTED, 'UNSUPPORTED'],
    [mosnetErrorCodes.INTERNAL_ERROR, 'BACKEND_FAILURE'],
    [42, 'BACKEND_FAILURE'],
  ] as const;

  it.each(cases)('maps JSON-RPC error %i to %s, keeping message and data', async (rpcCode, code) => {
    await peer((request, socket) =>
      socket.write(
        `${JSON.stringify({
          jsonrpc: '2.0',
          id: request.id,
          error: { code: rpcCode, message: 'daemon says no', data: { field: 'host_port', why: 'because' } },
        })}\n`,
      ),
    );
    const error = await client()
      .call('mosnet.nat.add_forward', {})
      .catch((e: unknown) => e);
    expect(NetOpsError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({
      code,
      details: { command: 'mosnet.nat.add_forward', rpcCode, data: { field: 'host_port', why: 'because' } },
    });
    expect((error as Error).message).toContain('daemon says no');
  });
});

describe('MosnetClient: lifecycle and inputs', () => {
  it('does not keep the process alive once idle, even without close()', async () => {
    const server = await createMosnetServer({ ops: new FakeOps(), socketPath: dir.path() });
    cleanups.push(() => server.close());
    const fixture = fileURLToPath(new URL('../test/fixtures/idle-client.ts', import.meta.url));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=@my-hypervisor/source', fixture, dir.path()],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const killer = setTimeout(() => child.kill(), 20_000);
    const code = await new Promise((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
    clearTimeout(killer);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ name: 'tap0', existed: false });
  });

  it('closes idempotently; pending calls and later calls reject with ABORTED', async () => {
    await peer(() => undefined);
    const c = client();
    const pending = c.call('hang', {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    await Promise.all([c.close(), c[Symbol.asyncDispose]()]);
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(c.call('m', {})).rejects.toMatchObject({ code: 'ABORTED' });
    expect(c.connected).toBe(false);
  });

  it('throws TypeError for programmer mistakes and INVALID_ARGUMENT for a socket path over 107 bytes', async () => {
    expect(() => new MosnetClient({ timeoutMs: 0 })).toThrow(TypeError);
    expect(() => new MosnetClient({ maxLineBytes: 1.5 })).toThrow(TypeError);
    expect(() => new MosnetClient({ socketPath: '' })).toThrow(TypeError);
    expect(() => new MosnetClient({ socketPath: `/tmp/${'x'.repeat(120)}` })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
    const c = client();
    await expect(c.call('', {})).rejects.toThrow(TypeError);
    await expect(c.call('m', [] as unknown as Record<string, unknown>)).rejects.toThrow(TypeError);
    expect(new MosnetClient().socketPath).toBe('/var/run/mosnet.sock');
  });
});
