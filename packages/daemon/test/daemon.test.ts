import { getEventListeners } from 'node:events';
import { stat } from 'node:fs/promises';
import { createClient, type MyhvClient } from '@my-hypervisor/client';
import { JsonRpcError } from '@my-hypervisor/json-rpc';
import { type JournalEvent, NetworkStore, type StepEvent, VmManagerError } from '@my-hypervisor/vm-manager';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeWorld, realVmm, type World } from './harness.js';

let world: World;
const clients: MyhvClient[] = [];

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

const spec = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  kernel: world.kernel,
  memory: '64M',
  ...extra,
});

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  return (error as { code?: string } | undefined)?.code;
}

/** Creates VM `web` through `sdk` and cancels it once its VMM is up, mid-pipeline; its progress is collected. */
function createCancelledMidway(sdk: MyhvClient): { creating: Promise<unknown>; steps: StepEvent[] } {
  const controller = new AbortController();
  const steps: StepEvent[] = [];
  const creating = sdk.create(spec('web'), {
    signal: controller.signal,
    onProgress: (event) => {
      steps.push(event);
      if (event.step === 'vmm' && event.phase === 'done') controller.abort();
    },
  });
  return { creating, steps };
}

describe('myhvd through the SDK', () => {
  it('listens on a 0600 socket and answers what the in-process manager answers', async () => {
    await world.daemon();
    expect((await stat(world.socketPath)).mode & 0o777).toBe(0o600);
    const sdk = client();
    const created = await sdk.create(
      spec('web', { network: { forwards: [{ hostPort: 18080, guestPort: 80 }] } }),
    );
    expect(created).toMatchObject({ name: 'web', status: 'running', vmmAlive: true });
    const local = world.manager();
    expect(await sdk.list()).toEqual(await local.list());
    const { processes: _a, ...viaDaemon } = (await sdk.get('web')) as unknown as Record<string, unknown>;
    const { processes: _b, ...inProcess } = (await local.get('web')) as unknown as Record<string, unknown>;
    expect(viaDaemon).toEqual(inProcess);
    expect(await sdk.stop('web')).toMatchObject({ status: 'stopped' });
    expect(await sdk.start('web')).toMatchObject({ status: 'running' });
    expect(await sdk.pause('web')).toMatchObject({ status: 'paused' });
    expect(await sdk.resume('web')).toMatchObject({ status: 'running' });
    expect((await sdk.removeForward('web', { hostPort: 18080 })).removed).toBe(true);
    expect(await sdk.delete('web', { force: true })).toMatchObject({ name: 'web' });
    expect(await sdk.list()).toEqual([]);
    const status = await sdk.status();
    expect(status).toMatchObject({ pid: process.pid, vms: 0, stateDir: world.stateDir });
    expect(status.connections).toBeGreaterThanOrEqual(1);
  });

  it('lists at once what a manager in another process changed, from one serialized listing otherwise', async () => {
    await world.daemon();
    const sdk = client();
    const local = world.manager();
    await local.create(spec('a'));
    await sdk.create(spec('b'));
    const first = await sdk.list();
    expect(first.map((vm) => [vm.name, vm.status])).toEqual([
      ['a', 'running'],
      ['b', 'running'],
    ]);
    expect(await sdk.list()).toEqual(first);
    await local.stop('a');
    expect((await sdk.list()).map((vm) => [vm.name, vm.status])).toEqual([
      ['a', 'stopped'],
      ['b', 'running'],
    ]);
    await local.delete('a');
    expect((await sdk.list()).map((vm) => vm.name)).toEqual(['b']);
    expect(await sdk.list()).toEqual(await local.list());
  });

  it('answers daemon.hello with the settings it was given, and the state directory its manager really uses', async () => {
    await world.daemon({ settings: { subnet: '10.9.0.0/24', stateDir: '/elsewhere' } });
    const hello = await client().hello();
    expect(hello).toEqual({
      version: expect.any(String),
      pid: process.pid,
      settings: { subnet: '10.9.0.0/24', stateDir: world.stateDir },
    });
    expect((await client().status()).settings).toEqual(hello.settings);
    await expect(world.daemon({ settings: { subnet: 24 } as never })).rejects.toThrow(
      'settings.subnet must be a string',
    );
  });

  it("fails with the manager's own VmManagerError: same code, field and details", async () => {
    await world.daemon();
    const sdk = client();
    const missing = await sdk.get('nope').catch((e: unknown) => e);
    expect(VmManagerError.isInstance(missing)).toBe(true);
    expect(missing).toMatchObject({ code: 'NOT_FOUND' });
    // Refused by the manager's spec schema, field named as in-process.
    const bad = await sdk.create(spec('web', { cpus: 0 })).catch((e: unknown) => e);
    const local = await world
      .manager()
      .create(spec('web', { cpus: 0 }))
      .catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'cpus' } });
    expect((bad as VmManagerError).message).toBe((local as VmManagerError).message);
    // Refused by the daemon's envelope before any work.
    const extra = await sdk.stop('web', { gracefulMs: -1 }).catch((e: unknown) => e);
    expect(extra).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'gracefulMs' } });
    await sdk.create(spec('web'));
    expect(await codeOf(sdk.create(spec('web')))).toBe('ALREADY_EXISTS');
    expect(await codeOf(sdk.start('web'))).toBe('WRONG_STATE');
  });

  it('reports progress for each step of a long call, before its answer', async () => {
    await world.daemon();
    const steps: StepEvent[] = [];
    const vm = await client().create(spec('web'), { onProgress: (event) => steps.push(event) });
    expect(vm.status).toBe('running');
    expect(steps.length).toBeGreaterThan(3);
    expect(steps.every((s) => s.type === 'step' && s.vm === 'web' && s.op === 'create')).toBe(true);
    expect(steps.map((s) => s.phase)).toContain('done');
  });

  it('streams the events of every process (here: an in-process manager beside the daemon)', async () => {
    await world.daemon();
    const sdk = client();
    const controller = new AbortController();
    const seen: JournalEvent[] = [];
    const done = (async () => {
      for await (const event of sdk.events({ signal: controller.signal })) {
        seen.push(event);
        if (event.type === 'status' && event.status === 'running') break;
      }
    })();
    // Subscribed once the daemon answers a later call on the same connection.
    await sdk.status();
    await world.manager().create(spec('other'));
    await done;
    expect(seen.some((e) => e.type === 'step' && e.vm === 'other')).toBe(true);
    // The loop's break ended the subscription: the daemon holds none of it.
    await expect.poll(async () => (await sdk.status()).connections).toBeGreaterThanOrEqual(1);
  });

  it('a cancelled create is rolled back by the daemon, leaving nothing', async () => {
    await world.daemon();
    const sdk = client();
    const { creating } = createCancelledMidway(sdk);
    expect(await codeOf(creating)).toBe('ABORTED');
    await expect.poll(async () => (await sdk.list()).length, { timeout: 10_000 }).toBe(0);
    expect(world.memory.snapshot().taps).toEqual([]);
  });

  it("with onAbort 'wait', a cancelled create ends with the daemon's answer, after its undo steps", async () => {
    await world.daemon();
    const sdk = createClient({ socketPath: world.socketPath, onAbort: 'wait' });
    clients.push(sdk);
    const { creating, steps } = createCancelledMidway(sdk);
    const error = await creating.catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ABORTED' });
    // Rolled back before the answer came, and the undo steps were reported as progress.
    expect(steps.some((e) => e.phase === 'undone')).toBe(true);
    expect(await sdk.list()).toEqual([]);
    expect(world.memory.snapshot().taps).toEqual([]);
    expect(() => createClient({ onAbort: 'later' as never })).toThrow("onAbort must be 'reject' or 'wait'");
  });

  it('queues work on one VM in the order it came (no BUSY) while other VMs go ahead', async () => {
    await world.daemon();
    const [a, b] = [client(), client()];
    await a.create(spec('one'));
    // Pipelined on one connection, so they arrive in this order; the manager's lock alone would answer BUSY or
    // WRONG_STATE to some of them.
    const results = await Promise.allSettled([
      a.stop('one'),
      a.start('one'),
      a.restart('one'),
      b.create(spec('two')),
      a.pause('one'),
    ]);
    expect(results.map((r) => (r.status === 'rejected' ? String(r.reason) : r.status))).toEqual([
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'fulfilled',
    ]);
    expect((await a.get('one')).status).toBe('paused');
  });

  it('20 clients creating and deleting at once: every call answered, nothing left', async () => {
    await world.daemon();
    const many = Array.from({ length: 20 }, () => client());
    await Promise.all(
      many.map(async (sdk, i) => {
        await sdk.create(spec(`vm${i}`));
        await sdk.delete(`vm${i}`, { force: true });
      }),
    );
    expect(await many[0]!.list()).toEqual([]);
    expect(world.memory.snapshot().taps).toEqual([]);
  });

  it('closing the daemon leaves VMs running; the next daemon adopts them', async () => {
    const first = await world.daemon();
    const sdk = client();
    const vm = await sdk.create(spec('web'));
    await first.close();
    expect(await codeOf(sdk.list())).toMatch(/UNAVAILABLE|DISCONNECTED/);
    await world.daemon();
    const again = await sdk.get('web');
    expect(again).toMatchObject({ status: 'running', vmmAlive: true, pid: vm.pid });
  });

  it("serves the VM's logs and the host's recorded networks", async () => {
    await world.daemon();
    const sdk = client();
    await sdk.create(spec('web'));
    await expect.poll(async () => (await sdk.logs('web')).text, { timeout: 10_000 }).toContain('myhv-probe');
    const serial = await sdk.logs('web', { maxBytes: 16 });
    expect(serial).toMatchObject({ vm: 'web', log: 'serial', path: (await sdk.get('web')).paths.serialLog });
    expect(serial.text.length).toBeLessThanOrEqual(16);
    expect((await sdk.logs('web', { log: 'vmm' })).log).toBe('vmm');
    expect(await sdk.networks()).toEqual(await new NetworkStore(world.stateDir).list());
    expect(await codeOf(sdk.logs('nope'))).toBe('NOT_FOUND');
  });

  it('a signal shared by many calls keeps no listener of a finished one', async () => {
    await world.daemon();
    const sdk = client();
    const controller = new AbortController();
    for (let i = 0; i < 5; i++) await sdk.list({ signal: controller.signal });
    await sdk.get('nope', { signal: controller.signal }).catch(() => undefined);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('says clearly when nothing listens: UNAVAILABLE, naming the socket', async () => {
    const error = await client()
      .list()
      .catch((e: unknown) => e);
    expect(JsonRpcError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ code: 'UNAVAILABLE', details: { socketPath: world.socketPath } });
    expect((error as Error).message).toMatch(/myhvd/);
  });

  it('refuses to start beside a live daemon on the same socket', async () => {
    await world.daemon();
    await expect(world.daemon()).rejects.toMatchObject({ code: 'ADDRESS_IN_USE' });
  });
});

describe.skipIf(!realVmm)('myhvd through the SDK, on the real cloud-hypervisor', () => {
  it('creates, snapshots, restores and deletes a probe-guest VM', async () => {
    await using real = await makeWorld({ vmm: 'real' });
    await real.daemon();
    await using sdk = createClient({ socketPath: real.socketPath });
    const vm = await sdk.create({ name: 'real', kernel: real.kernel, memory: '64M' });
    expect(vm).toMatchObject({ status: 'running', vmmAlive: true });
    await expect.poll(async () => (await sdk.logs('real')).text, { timeout: 10_000 }).toContain('myhv-probe');
    const snapshot = await sdk.snapshot('real');
    expect((await sdk.restore('real', { from: snapshot.id })).status).toBe('running');
    expect((await sdk.stats('real')).vm).toBeDefined();
    await sdk.delete('real', { force: true });
    expect(await sdk.list()).toEqual([]);
  });
});
