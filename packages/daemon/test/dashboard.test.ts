import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type MyhvClient } from '@my-hypervisor/client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { makeWorld, type World } from './harness.js';

let world: World;
let uiDir: string;
const clients: MyhvClient[] = [];

beforeAll(async () => {
  // The server's own tests cover the assets; a page is all the daemon needs to start one.
  uiDir = await mkdtemp(join(tmpdir(), 'myhvd-ui-'));
  await mkdir(join(uiDir, 'assets'));
  await writeFile(join(uiDir, 'index.html'), '<!doctype html><title>myhv</title>');
});
afterAll(() => rm(uiDir, { recursive: true, force: true }));
beforeEach(async () => {
  world = await makeWorld();
});
afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  await world[Symbol.asyncDispose]();
});

function client(): MyhvClient {
  const c = createClient({ socketPath: world.socketPath });
  clients.push(c);
  return c;
}

/** Logs in with a link from the daemon's socket, as `myhv dashboard url` does; returns a call function. */
async function loggedIn(sdk: MyhvClient) {
  const { url, expiresAt } = await sdk.dashboardLogin();
  expect(Date.parse(expiresAt)).toBeGreaterThan(Date.now());
  const base = new URL(url).origin;
  const login = await fetch(url, { redirect: 'manual' });
  expect(login.status).toBe(303);
  const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
  const { csrfToken } = (await (await fetch(`${base}/session`, { headers: { cookie } })).json()) as {
    csrfToken: string;
  };
  let id = 0;
  const call = async (method: string, params: Record<string, unknown> = {}) => {
    const reply = await fetch(`${base}/rpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie, origin: base, 'x-csrf-token': csrfToken },
      body: JSON.stringify({ jsonrpc: '2.0', id: ++id, method, params }),
    });
    expect(reply.status).toBe(200);
    return (await reply.json()) as {
      result?: unknown;
      error?: { code: number; message: string; data?: { code?: string; details?: Record<string, unknown> } };
    };
  };
  return { base, cookie, call };
}

describe('myhvd with its dashboard', () => {
  it('hands out login links over its socket, and the browser sees the same VMs and errors as the socket', async () => {
    const daemon = await world.daemon({ dashboard: { port: 0, uiDir } });
    expect(daemon.dashboard?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await stat(join(world.stateDir, 'dashboard.secret'))).mode & 0o777).toBe(0o600);
    const sdk = client();
    const { call } = await loggedIn(sdk);
    const created = await call('vm.create', { spec: { name: 'web', kernel: world.kernel, memory: '64M' } });
    expect(created.result).toMatchObject({ name: 'web', status: 'running' });
    expect((await call('vm.list')).result).toEqual(await sdk.list());
    // The same schema checks a bad spec, and the error names the field the form shows it at.
    const bad = await call('vm.create', { spec: { name: 'db', kernel: world.kernel, memory: '1K' } });
    expect(bad.error?.data).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'memory' } });
    const missing = await call('vm.stop', { name: 'nope' });
    expect(missing.error?.data).toMatchObject({ code: 'NOT_FOUND' });
    // Administration stays on the socket.
    expect((await call('host.reconcile')).error?.code).toBe(-32601);
    expect((await call('dashboard.login')).error?.code).toBe(-32601);
    expect((await call('vm.stop', { name: 'web' })).result).toMatchObject({ status: 'stopped' });
    expect((await sdk.get('web')).status).toBe('stopped');
  });

  it('streams the journal as it happens, and refuses the console of a VM that is not running', async () => {
    await world.daemon({ dashboard: { port: 0, uiDir } });
    const sdk = client();
    const { base, cookie, call } = await loggedIn(sdk);
    const controller = new AbortController();
    const stream = await fetch(`${base}/events?vm=web`, { headers: { cookie }, signal: controller.signal });
    const reader = stream.body!.getReader();
    let text = '';
    await sdk.create({ name: 'web', kernel: world.kernel, memory: '64M' });
    while (!/"type":"status","vm":"web","status":"running"/.test(text)) {
      text += Buffer.from((await reader.read()).value!).toString();
    }
    controller.abort();
    expect(text).toMatch(/^id: \d+-\d+-\d+$/m);
    expect((await call('vm.stop', { name: 'web' })).result).toMatchObject({ status: 'stopped' });
    const closed = await new Promise<[number, string]>((resolve, reject) => {
      const ws = new WebSocket(`${base.replace('http', 'ws')}/vms/web/console`, {
        headers: { cookie, origin: base },
      });
      ws.once('close', (code, reason) => resolve([code, reason.toString()]));
      ws.once('error', reject);
    });
    expect(closed[0]).toBe(4412);
    expect(closed[1]).toMatch(/no serial console/);
  });

  it('answers WRONG_STATE for a login link when it serves no dashboard, and refuses a bad dashboard before any work', async () => {
    await world.daemon();
    await expect(client().dashboardLogin()).rejects.toMatchObject({ code: 'WRONG_STATE' });
    await expect(
      world.daemon({
        socketPath: join(world.runDir, 'other.sock'),
        dashboard: { port: 0, host: '0.0.0.0', uiDir },
      }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'dashboard.host' } });
    await expect(
      world.daemon({ socketPath: join(world.runDir, 'other.sock'), dashboard: { port: 99_999, uiDir } }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'dashboard.port' } });
    await expect(stat(join(world.runDir, 'other.sock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
