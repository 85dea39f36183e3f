import { existsSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ChvClient } from '@my-hypervisor/chv-client';
import { isProcessAlive } from '@my-hypervisor/host-utils';
import { describe, expect, it } from 'vitest';
import { waitForConsole } from '../src/serial-console.js';
import type { VmmRecord } from '../src/state-store.js';
import { type Harness, makeHarness, pidsMentioning, vmmLabel } from './harness.js';

// `vmm.standby`: one idle VMM (and its held serial relay) kept for a running VM's next restore.

const alive = (p: { pid?: number; startTime?: number } | undefined) =>
  p?.pid !== undefined && isProcessAlive(p.pid, p.startTime);

/** A running VM `web` with a snapshot, once its standby is up: its id, snapshot and standby. */
async function snapshotted(h: Harness) {
  await h.manager.create({ name: 'web', kernel: h.kernel, memory: '64M' });
  const snapshot = await h.manager.snapshot('web');
  await h.manager.idle();
  const record = (await h.store.read('web'))!;
  return { id: record.id, snapshot, standby: record.resources.standby! };
}

async function vmmState(socketPath: string): Promise<string> {
  await using client = new ChvClient({ socketPath });
  return (await client.vmInfo()).state;
}

async function pingable(socketPath: string): Promise<boolean> {
  await using client = new ChvClient({ socketPath });
  return client.vmmPing().then(
    () => true,
    () => false,
  );
}

describe(`standby VMMs (vmm.standby, ${vmmLabel})`, () => {
  it('a snapshot leaves a standby; restore takes it over, its relay serves the console, and the next one starts', async () => {
    await using h = await makeHarness({ backend: 'memory', vmm: { standby: true } });
    await h.manager.create({ name: 'web', kernel: h.kernel, memory: '64M' });
    const id = (await h.store.read('web'))!.id;
    const old = (await h.store.read('web'))!.resources.vmm!;
    // Without a snapshot there is nothing to restore: no standby.
    await h.manager.idle();
    expect((await h.store.read('web'))!.resources.standby).toBeUndefined();

    await h.manager.snapshot('web');
    await h.manager.idle();
    const standby = (await h.store.read('web'))!.resources.standby!;
    expect(alive(standby)).toBe(true);
    expect(alive(standby.serialRelay)).toBe(true);
    expect(standby.socketPath).toBe(join(h.runDir, `${id}.next`, 'api.sock'));
    // An idle VMM: it answers, with no VM yet.
    expect(await pingable(standby.socketPath)).toBe(true);
    expect(readFileSync(join(h.stateDir, 'vms', 'web', 'standby.pid'), 'utf8').trim()).toBe(
      String(standby.pid),
    );

    const steps: string[] = [];
    const restored = await h.manager.restore('web', {
      onProgress: (e) => {
        if (e.phase === 'start') steps.push(e.step);
      },
    });
    expect(restored.status).toBe('running');
    expect(steps.filter((step) => step !== 'uid')).toEqual([
      'vmm-stop',
      'vmm',
      'network-ensure',
      'forwards-ensure',
      'vmm-gone',
      'vm.restore',
      'serial-relay',
      'record',
    ]);
    const record = (await h.store.read('web'))!;
    const vmm = record.resources.vmm!;
    // The standby is the VM's VMM now, where the VM's VMM always is; the old one and its relay are gone.
    expect(vmm.pid).toBe(standby.pid);
    expect(vmm.serialRelay).toEqual(standby.serialRelay);
    expect(vmm.socketPath).toBe(join(h.runDir, id, 'api.sock'));
    expect(vmm.pidFile).toBe(join(h.stateDir, 'vms', 'web', 'vmm.pid'));
    expect(readFileSync(vmm.pidFile, 'utf8').trim()).toBe(String(vmm.pid));
    expect(await vmmState(vmm.socketPath)).toBe('Running');
    expect(alive(old)).toBe(false);
    expect(alive(old.serialRelay)).toBe(false);
    // Released, the held relay connects to the serial socket the restore bound and serves the console.
    await waitForConsole(vmm.serialRelay!, join(h.runDir, id, 'console.sock'));
    const console = await h.manager.console('web');
    console.destroy();

    // The next standby, for the next restore.
    await h.manager.idle();
    const next = (await h.store.read('web'))!.resources.standby!;
    expect(alive(next)).toBe(true);
    expect(next.pid).not.toBe(standby.pid);
    expect(await h.manager.restore('web')).toMatchObject({ status: 'running' });
    expect((await h.store.read('web'))!.resources.vmm!.pid).toBe(next.pid);
  });

  it('stop ends the standby and its relay; start makes one again (the VM has a snapshot); delete leaves nothing', async () => {
    await using h = await makeHarness({ backend: 'memory', vmm: { standby: true } });
    const { id, standby: first } = await snapshotted(h);

    await h.manager.stop('web', { gracefulMs: 0 });
    expect(alive(first)).toBe(false);
    expect(alive(first.serialRelay)).toBe(false);
    expect((await h.store.read('web'))!.resources.standby).toBeUndefined();
    expect(existsSync(join(h.runDir, `${id}.next`))).toBe(false);
    await h.manager.idle();
    expect((await h.store.read('web'))!.resources.standby).toBeUndefined();

    await h.manager.start('web');
    await h.manager.idle();
    const second = (await h.store.read('web'))!.resources.standby!;
    expect(alive(second)).toBe(true);

    await h.manager.delete('web', { force: true });
    await h.manager.idle();
    expect(alive(second)).toBe(false);
    expect(alive(second.serialRelay)).toBe(false);
    expect(await pidsMentioning(h.runDir)).toEqual([]);
    expect(await readdir(h.runDir)).not.toContain(`${id}.next`);
  });

  it('removing the last snapshot ends the standby; without the option a VM gets none', async () => {
    await using h = await makeHarness({ backend: 'memory', vmm: { standby: true } });
    const { snapshot, standby } = await snapshotted(h);
    await h.manager.removeSnapshot('web', snapshot.id);
    expect(alive(standby)).toBe(false);
    expect((await h.store.read('web'))!.resources.standby).toBeUndefined();

    await using plain = await makeHarness({ backend: 'memory' });
    await plain.manager.create({ name: 'web', kernel: plain.kernel, memory: '64M' });
    await plain.manager.snapshot('web');
    await plain.manager.idle();
    expect((await plain.store.read('web'))!.resources.standby).toBeUndefined();
  });

  it('a standby that died is not used: the restore starts a VMM as without one', async () => {
    await using h = await makeHarness({ backend: 'memory', vmm: { standby: true } });
    const { standby } = await snapshotted(h);
    process.kill(standby.pid!, 'SIGKILL');
    process.kill(standby.serialRelay!.pid, 'SIGKILL');
    await waitGone(standby);

    expect(await h.manager.restore('web')).toMatchObject({ status: 'running' });
    const vmm = (await h.store.read('web'))!.resources.vmm!;
    expect(vmm.pid).not.toBe(standby.pid);
    expect(await vmmState(vmm.socketPath)).toBe('Running');
    expect(alive(vmm.serialRelay)).toBe(true);
  });

  it('reconcile stops a standby and relay no record names, and removes their directory', async () => {
    await using h = await makeHarness({ backend: 'memory', vmm: { standby: true } });
    const { id } = await snapshotted(h);
    // As if the process that started them died before its write: the record does not name them.
    const record = (await h.store.read('web'))!;
    const standby = record.resources.standby!;
    delete record.resources.standby;
    await h.store.write(record);

    const report = await h.manager.reconcile();
    expect(report.errors).toEqual([]);
    expect(report.changes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'vmm', target: String(standby.pid) }),
        expect.objectContaining({ kind: 'serial-relay', target: String(standby.serialRelay!.pid) }),
        expect.objectContaining({ kind: 'run-dir', target: join(h.runDir, `${id}.next`) }),
      ]),
    );
    await waitGone(standby);
    // The VM itself is untouched.
    const vmm = (await h.store.read('web'))!.resources.vmm!;
    expect(alive(vmm)).toBe(true);
    expect(await vmmState(vmm.socketPath)).toBe('Running');
  });
});

async function waitGone(vmm: VmmRecord): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (alive(vmm) || alive(vmm.serialRelay)) {
    if (Date.now() > deadline) throw new Error(`process ${vmm.pid} did not go`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
