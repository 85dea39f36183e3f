import { createConnection } from 'node:net';
import { createClient } from '@my-hypervisor/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../src/index.js';
import { makeWorld, type World } from './harness.js';

// The daemon never crashes on input and answers every request line with a JSON-RPC message: random bytes,
// truncated and mutated requests, wrong types for every param of every method, huge lines.

let world: World;
let daemon: Daemon;

beforeAll(async () => {
  world = await makeWorld();
  daemon = await world.daemon({ maxLineBytes: 64 * 1024 });
});
afterAll(async () => {
  await world[Symbol.asyncDispose]();
});

/** A seeded PRNG (mulberry32), so a failing case can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const methods = [
  'vm.create',
  'vm.get',
  'vm.list',
  'vm.start',
  'vm.stop',
  'vm.delete',
  'vm.resize',
  'vm.forward.add',
  'vm.forward.remove',
  'vm.disk.add',
  'vm.share.add',
  'vm.snapshot.create',
  'vm.restore',
  'events.journal',
  'events.subscribe',
  'host.reconcile',
  'rpc.discover',
  '$/cancel',
];
const oddValues: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  1e308,
  '',
  'x'.repeat(300),
  '../../etc/passwd',
  'a\nb',
  [],
  [1, 2],
  {},
  { __proto__: { polluted: true } },
  { constructor: { prototype: { polluted: true } } },
];

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

/** One fuzz line and whether it must be answered (notifications, and lines of only whitespace, are not). */
function fuzzCase(rand: () => number, n: number): { line: string; answered: boolean } {
  const kind = n % 6;
  if (kind === 0) {
    // Random bytes (no newline inside, not all whitespace).
    const bytes = Array.from({ length: 1 + Math.floor(rand() * 200) }, () => 33 + Math.floor(rand() * 94));
    return { line: String.fromCharCode(...bytes), answered: true };
  }
  const params: Record<string, unknown> = {};
  for (const key of ['name', 'spec', 'cpus', 'memory', 'hostPort', 'forward', 'path', 'id', 'vm', 'limit']) {
    if (rand() < 0.4) params[key] = pick(rand, oddValues);
  }
  const request: Record<string, unknown> = { jsonrpc: '2.0', id: n, method: pick(rand, methods), params };
  if (kind === 1) {
    // Truncated somewhere inside.
    const text = JSON.stringify(request);
    return { line: text.slice(0, 1 + Math.floor(rand() * (text.length - 2))), answered: true };
  }
  if (kind === 2) {
    // Wrong envelope types.
    const field = pick(rand, ['jsonrpc', 'method', 'params', 'id']);
    request[field] = pick(rand, oddValues);
    // A request whose id became something else is still answered (with id null when unreadable).
    return { line: JSON.stringify(request), answered: !(field === 'id' && request.id === undefined) };
  }
  if (kind === 3) {
    // A batch of mixed requests.
    return {
      line: JSON.stringify([request, { ...request, id: `${n}b`, method: pick(rand, methods) }]),
      answered: true,
    };
  }
  if (kind === 4) {
    // Params of the wrong kind altogether.
    request.params = pick(rand, [[1], 'x', 5, null, true]);
    return { line: JSON.stringify(request), answered: true };
  }
  return { line: JSON.stringify(request), answered: true };
}

/** Sends `lines` on a fresh connection and collects every answer line until `expected` have come. */
function exchange(lines: readonly string[], expected: number): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path: world.socketPath });
    const answers: unknown[] = [];
    let buffered = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`only ${answers.length} of ${expected} answers came`));
    }, 20_000);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let newline = buffered.indexOf('\n');
      while (newline !== -1) {
        answers.push(JSON.parse(buffered.slice(0, newline)));
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
      }
      if (answers.length >= expected) {
        clearTimeout(timer);
        socket.destroy();
        resolve(answers);
      }
    });
    socket.on('error', reject);
    socket.write(lines.map((line) => `${line}\n`).join(''));
  });
}

describe('myhvd under fuzzed input', () => {
  it('answers 300 random, truncated and mistyped requests with JSON-RPC messages and keeps serving', async () => {
    const rand = random(20261206);
    const cases = Array.from({ length: 300 }, (_, n) => fuzzCase(rand, n));
    const answered = cases.filter((c) => c.answered).length;
    const answers = await exchange(
      cases.map((c) => c.line),
      answered,
    );
    expect(answers.length).toBeGreaterThanOrEqual(answered);
    for (const answer of answers.flat()) {
      expect(answer).toMatchObject({ jsonrpc: '2.0' });
      const message = answer as { result?: unknown; error?: { code: unknown; message: unknown } };
      if (message.error) {
        expect(typeof message.error.code).toBe('number');
        expect(typeof message.error.message).toBe('string');
      }
    }
    // None of it created anything, polluted a prototype, or took the daemon down.
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await using sdk = createClient({ socketPath: world.socketPath });
    expect(await sdk.list()).toEqual([]);
    expect((await sdk.status()).pid).toBe(process.pid);
    void daemon;
  });

  it('drops a line over the limit without holding it, answers INVALID_REQUEST with its id, and goes on', async () => {
    const huge = `{"jsonrpc":"2.0","id":7,"method":"vm.get","params":{"name":"${'x'.repeat(200_000)}"}}`;
    const answers = await exchange([huge, '{"jsonrpc":"2.0","id":8,"method":"vm.list"}'], 2);
    expect(answers[0]).toMatchObject({ id: 7, error: { code: -32600 } });
    expect(answers[1]).toEqual({ jsonrpc: '2.0', id: 8, result: [] });
  });

  it('answers unknown methods, positional params and non-JSON with the standard codes', async () => {
    const answers = await exchange(
      [
        '{"jsonrpc":"2.0","id":1,"method":"vm.explode"}',
        '{"jsonrpc":"2.0","id":2,"method":"vm.get","params":["web"]}',
        '{"jsonrpc":"2.0","id":3,"method":"vm.get","params":{"name":5}}',
        '{"jsonrpc":"2.0","id":4,"method":"vm.get","params":{"name":"web","extra":1}}',
        'nope',
      ],
      5,
    );
    // Each is answered as it finishes: the parse error first.
    expect(answers).toHaveLength(5);
    expect(answers).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: 1, error: expect.objectContaining({ code: -32601 }) }),
        expect.objectContaining({ id: 2, error: expect.objectContaining({ code: -32602 }) }),
        expect.objectContaining({
          id: 3,
          error: expect.objectContaining({
            code: -32602,
            data: { code: 'INVALID_ARGUMENT', details: { field: 'name' } },
          }),
        }),
        expect.objectContaining({ id: 4, error: expect.objectContaining({ code: -32602 }) }),
        expect.objectContaining({ id: null, error: expect.objectContaining({ code: -32700 }) }),
      ]),
    );
  });
});
