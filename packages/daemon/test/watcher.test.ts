import { createClient } from '@my-hypervisor/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeWorld, type World } from './harness.js';

let world: World;

beforeEach(async () => {
  world = await makeWorld();
});
afterEach(async () => {
  await world[Symbol.asyncDispose]();
});

describe('myhvd watches the VMMs', () => {
  it('a VMM killed behind its back: `always` is restarted, `no` is marked stopped with its forwards kept', async () => {
    const logs: string[] = [];
    await world.daemon({
      watchIntervalMs: 100,
      onLog: (entry) => logs.push(`${entry.vm ?? '-'} ${entry.message}`),
    });
    await using sdk = createClient({ socketPath: world.socketPath });
    const base = { kernel: world.kernel, memory: '64M' };
    const keep = await sdk.create({ ...base, name: 'keep', restart: 'always' });
    const drop = await sdk.create({
      ...base,
      name: 'drop',
      network: { forwards: [{ hostPort: 18081, guestPort: 80 }] },
    });
    process.kill(keep.pid!, 'SIGKILL');
    process.kill(drop.pid!, 'SIGKILL');
    // Both exits seen, in whichever order the watcher met them.
    await expect
      .poll(async () => (await sdk.status()).watcher, { timeout: 15_000, interval: 100 })
      .toMatchObject({ exited: 2, restarted: 1 });
    const restarted = await sdk.get('keep');
    expect(restarted).toMatchObject({ status: 'running', vmmAlive: true });
    expect(restarted.pid).not.toBe(keep.pid);
    const stopped = await sdk.get('drop');
    expect(stopped).toMatchObject({ status: 'stopped', vmmAlive: false });
    expect(stopped.forwards).toEqual(drop.forwards);
    expect(world.memory.snapshot().forwards).toHaveLength(1);
    const status = await sdk.status();
    expect(status.watcher).toMatchObject({ exited: 2, restarted: 1 });
    expect(logs).toContain('keep restarted (restart: always)');
  });

  it('puts back network pieces deleted behind its back (a forward, a TAP) and says what it found', async () => {
    const logs: string[] = [];
    await world.daemon({
      watchIntervalMs: 100,
      driftIntervalMs: 200,
      onLog: (entry) => logs.push(`${entry.vm ?? '-'} ${entry.message}`),
    });
    await using sdk = createClient({ socketPath: world.socketPath });
    const vm = await sdk.create({
      kernel: world.kernel,
      memory: '64M',
      name: 'net',
      network: { forwards: [{ hostPort: 18082, guestPort: 80 }] },
    });
    const forward = world.memory.snapshot().forwards[0]!;
    await world.memory.removePortForward(forward);
    await world.memory.deleteTap(vm.tap!);
    await expect
      .poll(async () => (await sdk.status()).watcher.drift, { timeout: 15_000, interval: 100 })
      .toBe(2);
    expect(world.memory.snapshot().forwards).toEqual([forward]);
    expect(world.memory.snapshot().taps.map((t) => t.name)).toContain(vm.tap);
    expect(logs).toContain(`net network drift: TAP ${vm.tap} is not on bridge myhvd0`);
    expect(logs).toContain(`net network drift: forward tcp/18082 → ${vm.ip}:80 is not installed`);
    expect(logs).toContain('- network drift repaired: 2 change(s)');
    expect(await sdk.get('net')).toMatchObject({ status: 'running', vmmAlive: true });
  });

  it('leaves VMs alone that were stopped through the API', async () => {
    await world.daemon({ watchIntervalMs: 50 });
    await using sdk = createClient({ socketPath: world.socketPath });
    await sdk.create({ kernel: world.kernel, memory: '64M', name: 'quiet', restart: 'always' });
    await sdk.stop('quiet');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await sdk.get('quiet')).status).toBe('stopped');
    expect((await sdk.status()).watcher).toMatchObject({ exited: 0, restarted: 0 });
  });
});
