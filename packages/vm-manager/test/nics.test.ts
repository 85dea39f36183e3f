import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChvClient } from '@my-hypervisor/chv-client';
import { describe, expect, it } from 'vitest';
import { assertNicsPossible } from '../src/nics.js';
import type { VmRecord } from '../src/state-store.js';
import { BRIDGE, type Harness, makeHarness, vmmLabel } from './harness.js';

async function vmmNets(socketPath: string) {
  await using client = new ChvClient({ socketPath });
  return ((await client.vmInfo()).config.net ?? []).map((n) => ({ id: n.id, tap: n.tap, mac: n.mac }));
}

/** The IP reservations of the harness's network: address → owner. */
async function reservations(h: Harness): Promise<Map<string, string>> {
  const base = join(h.stateDir, 'ipam');
  const out = new Map<string, string>();
  for (const subnet of await readdir(base)) {
    for (const entry of await readdir(join(base, subnet))) {
      if (/^\d+\.\d+\.\d+\.\d+$/.test(entry))
        out.set(entry, (await readFile(join(base, subnet, entry), 'utf8')).trim());
    }
  }
  return out;
}

const bridgePorts = (h: Harness) =>
  h
    .memory!.snapshot()
    .bridges.find((b) => b.name === BRIDGE)
    ?.ports.map((p) => p) ?? [];

describe(`extra NICs (memory network, ${vmmLabel})`, () => {
  it('hot-plugs a NIC with its own TAP and address, keeps it across stop/start, and removes it by id', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({ name: 'n', kernel: h.kernel, memory: '64M' });

    const devices = await h.manager.addNic('n');
    expect(devices.nics).toHaveLength(1);
    const nic = devices.nics[0]!;
    expect(nic).toMatchObject({ id: 'nic1', ip: expect.stringMatching(/^10\.62\.0\.\d+$/) });
    expect(nic.ip).not.toBe(vm.ip);
    expect(nic.tap).not.toBe(vm.tap);
    expect(bridgePorts(h)).toEqual(expect.arrayContaining([vm.tap, nic.tap]));
    expect((await reservations(h)).get(nic.ip!)).toBe(`${vm.id}.nic1`);
    let nets = await vmmNets(vm.paths.socket!);
    expect(nets).toHaveLength(2);
    expect(nets[1]).toEqual({ id: 'nic1', tap: nic.tap, mac: nic.mac });
    expect((await h.manager.get('n')).pending).toBeUndefined();

    // A MAC of its own, given in any case; one in use is refused before anything changes.
    const second = await h.manager.addNic('n', { mac: '52:54:00:AB:CD:EF' });
    expect(second.nics.map((n) => [n.id, n.mac])).toEqual([
      ['nic1', nic.mac],
      ['nic2', '52:54:00:ab:cd:ef'],
    ]);
    const ports = bridgePorts(h);
    await expect(h.manager.addNic('n', { mac: '52:54:00:ab:cd:ef' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: { field: 'nics[2].mac' },
    });
    await expect(h.manager.addNic('n', { mac: '53:54:00:00:00:01' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: { field: 'nics[2].mac' },
    });
    expect(bridgePorts(h)).toEqual(ports);

    // The next boot has both, under the same ids.
    await h.manager.stop('n');
    const started = await h.manager.start('n');
    nets = await vmmNets(started.paths.socket!);
    expect(nets.map((n) => n.id).slice(1)).toEqual(['nic1', 'nic2']);

    const after = await h.manager.removeNic('n', 'nic1');
    expect(after.nics.map((n) => n.id)).toEqual(['nic2']);
    nets = await vmmNets(started.paths.socket!);
    expect(nets.map((n) => n.id).slice(1)).toEqual(['nic2']);
    expect(bridgePorts(h)).not.toContain(nic.tap);
    expect([...(await reservations(h)).keys()]).not.toContain(nic.ip);
    await expect(h.manager.removeNic('n', 'nic1')).rejects.toMatchObject({
      code: 'NOT_FOUND',
      details: { field: 'id' },
    });

    // Reconcile knows the remaining NIC's TAP and address as the VM's: it sweeps neither.
    const report = await h.manager.reconcile();
    expect(report.changes).toEqual([]);
    const nic2 = after.nics[0]!;
    expect(bridgePorts(h)).toContain(nic2.tap);

    // Deleting the VM takes every TAP and address it had.
    await h.manager.delete('n', { force: true });
    expect(bridgePorts(h)).toEqual([]);
    expect([...(await reservations(h)).values()]).toEqual([]);
  });

  it('cold-plugs a NIC into a stopped VM, which boots with it; a VM made with nics boots with them', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'cold', kernel: h.kernel, memory: '64M' });
    await h.manager.stop('cold');
    const { nics } = await h.manager.addNic('cold');
    expect((await h.manager.get('cold')).status).toBe('stopped');
    expect(bridgePorts(h)).toContain(nics[0]!.tap);
    const started = await h.manager.start('cold');
    expect((await vmmNets(started.paths.socket!)).map((n) => n.id)[1]).toBe('nic1');

    const made = await h.manager.create({
      name: 'made',
      kernel: h.kernel,
      memory: '64M',
      nics: [{ id: 'nic1' }, { id: 'nic3', mac: '52:54:00:00:00:03' }],
    });
    const nets = await vmmNets(made.paths.socket!);
    expect(nets.slice(1).map((n) => [n.id, n.mac])).toEqual([
      ['nic1', expect.any(String)],
      ['nic3', '52:54:00:00:00:03'],
    ]);
    expect((await h.manager.devices('made')).nics.every((n) => n.ip !== undefined)).toBe(true);
  });

  it('refuses a NIC on a VM without a network, and bad nics in a spec, before anything changes', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'alone', kernel: h.kernel, memory: '64M', network: { enabled: false } });
    await expect(h.manager.addNic('alone')).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: { field: 'network' },
    });
    const bad = [
      [{ nics: [{ id: 'eth1' }] }, 'nics[0].id'],
      [{ nics: [{ id: 'nic1' }, { id: 'nic1' }] }, 'nics[1].id'],
      [{ nics: [{ id: 'nic1', mac: 'nope' }] }, 'nics[0].mac'],
      [{ nics: [{ id: 'nic1' }], network: { enabled: false } }, 'nics[0]'],
    ] as const;
    for (const [extra, field] of bad) {
      await expect(
        h.manager.create({ name: 'bad', kernel: h.kernel, memory: '64M', ...extra }),
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', details: { field } });
    }
    expect((await h.manager.list()).map((v) => v.name)).toEqual(['alone']);
  });

  it('reconcile settles a NIC add cut short: kept when the VMM has it, else its TAP and address go', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({ name: 'crash', kernel: h.kernel, memory: '64M' });
    /** As a process killed right after `vm.add-net` (or before it) leaves the record: pending, no spec entry. */
    const interrupt = async () => {
      const record = (await h.store.read('crash'))!;
      delete record.spec.nics;
      record.pending = { op: 'nic-add', step: 'vm.add-net nic1', since: new Date().toISOString() };
      await h.store.write(record);
    };

    const { nics } = await h.manager.addNic('crash');
    await interrupt();
    let report = await h.manager.reconcile();
    expect(report.changes.map((c) => c.action)).toContain('settled an interrupted nic-add: NIC nic1 kept');
    expect((await h.manager.devices('crash')).nics.map((n) => n.id)).toEqual(['nic1']);
    expect((await h.manager.get('crash')).pending).toBeUndefined();

    // The VMM never got it: the TAP and the address go.
    await using client = new ChvClient({ socketPath: vm.paths.socket! });
    await client.vmRemoveDevice({ id: 'nic1' });
    await interrupt();
    report = await h.manager.reconcile();
    expect(report.changes.map((c) => c.action)).toContain(
      'settled an interrupted nic-add: NIC nic1 removed with its TAP and address',
    );
    expect((await h.manager.devices('crash')).nics).toEqual([]);
    expect(bridgePorts(h)).not.toContain(nics[0]!.tap);
    expect([...(await reservations(h)).values()]).toEqual([vm.id]);
  });

  it('after a "reboot" of the network, drift names the NIC\'s TAP and gc (or start) makes it again', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({
      name: 'rb',
      kernel: h.kernel,
      memory: '64M',
      nics: [{ id: 'nic1' }],
    });
    const [nic] = (await h.manager.devices('rb')).nics;
    await h.manager.stop('rb');
    h.memory!.reboot();
    const drift = await h.manager.drift();
    expect(drift.filter((d) => d.kind === 'tap').map((d) => d.target)).toEqual([vm.tap, nic!.tap]);
    const report = await h.manager.reconcile();
    expect(report.changes.filter((c) => c.kind === 'tap').map((c) => c.target)).toEqual([vm.tap, nic!.tap]);
    expect(bridgePorts(h)).toEqual([vm.tap, nic!.tap]);
    expect(await h.manager.drift()).toEqual([]);
    const started = await h.manager.start('rb');
    expect((await vmmNets(started.paths.socket!)).map((n) => n.tap)).toEqual([vm.tap, nic!.tap]);
  });

  it('restores a snapshot only with the NICs it was taken with (its config names their TAPs)', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'snap', kernel: h.kernel, memory: '64M', nics: [{ id: 'nic1' }] });
    await h.manager.snapshot('snap');
    await h.manager.addNic('snap');
    await expect(h.manager.restore('snap')).rejects.toMatchObject({
      code: 'CONFLICT',
      details: { fields: ['nics'] },
    });
    await h.manager.removeNic('snap', 'nic2');
    const restored = await h.manager.restore('snap');
    expect(restored.status).toBe('running');
    expect((await vmmNets(restored.paths.socket!)).map((n) => n.id).slice(1)).toEqual(['nic1']);
  });

  it('refuses NICs on the namespace backend, where the VM has one interface in its own namespace', () => {
    const record = {
      name: 'ns',
      spec: { network: { enabled: true } },
      resources: { network: { netns: 'myhv-0123456789ab' } },
    } as unknown as VmRecord;
    expect(() => assertNicsPossible(record, 'network')).toThrow(/namespace backend/);
  });
});
