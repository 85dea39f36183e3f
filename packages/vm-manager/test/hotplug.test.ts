import { link, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChvClient } from '@my-hypervisor/chv-client';
import { describe, expect, it } from 'vitest';
import { hasVirtiofsd, isRoot, makeHarness, pidsMentioning, vmmLabel } from './harness.js';

async function vmmConfig(socketPath: string) {
  await using client = new ChvClient({ socketPath });
  return (await client.vmInfo()).config;
}

async function diskFile(dir: string, name: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, Buffer.alloc(4096));
  return path;
}

describe(`disk hot-plug (memory network, ${vmmLabel})`, () => {
  it('adds a disk to a running VM, keeps it across stop/start, and removes it by id', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const boot = await diskFile(join(h.shareDir, '..'), 'boot.img');
    const vm = await h.manager.create({ name: 'd', kernel: h.kernel, disks: [{ path: boot }] });
    // A VMM under Landlock opens new files only in its own disk directory (made when it starts).
    const data = await diskFile(
      vm.confinement?.landlock ? join(vm.paths.dir, 'disks') : join(h.shareDir, '..'),
      'data.img',
    );

    const devices = await h.manager.addDisk('d', { path: data, readOnly: true });
    expect(devices.disks.map((d) => d.path)).toEqual([boot, data]);
    const added = devices.disks[1]!;
    expect(added.readOnly).toBe(true);
    let config = await vmmConfig(vm.paths.socket!);
    expect(config.disks?.map((d) => [d.id, d.path, d.readonly])).toEqual([
      [devices.disks[0]!.id, boot, false],
      [added.id, data, true],
    ]);
    expect((await h.manager.get('d')).pending).toBeUndefined();

    // The next boot has it, under the same id.
    await h.manager.stop('d');
    const started = await h.manager.start('d');
    config = await vmmConfig(started.paths.socket!);
    expect(config.disks?.map((d) => d.id)).toEqual(devices.disks.map((d) => d.id));

    const after = await h.manager.removeDisk('d', added.id);
    expect(after.disks.map((d) => d.path)).toEqual([boot]);
    config = await vmmConfig(started.paths.socket!);
    expect(config.disks?.map((d) => d.path)).toEqual([boot]);
    expect((await h.manager.get('d')).spec.disks.map((d) => d.path)).toEqual([boot]);
  });

  it('cold-plugs a disk into a stopped VM (spec only), which boots with it', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'cold', kernel: h.kernel });
    await h.manager.stop('cold');
    const data = await diskFile(join(h.shareDir, '..'), 'data.img');
    const { disks } = await h.manager.addDisk('cold', { path: data });
    expect((await h.manager.get('cold')).status).toBe('stopped');
    const started = await h.manager.start('cold');
    expect((await vmmConfig(started.paths.socket!)).disks?.map((d) => d.id)).toEqual([disks[0]!.id]);

    await h.manager.stop('cold');
    expect((await h.manager.removeDisk('cold', data)).disks).toEqual([]);
    const again = await h.manager.start('cold');
    expect((await vmmConfig(again.paths.socket!)).disks ?? []).toEqual([]);
  });

  it('refuses bad disks before any change, naming the field', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const boot = await diskFile(join(h.shareDir, '..'), 'boot.img');
    const vm = await h.manager.create({ name: 'bad', kernel: h.kernel, disks: [{ path: boot }] });
    const alias = join(h.shareDir, '..', 'alias.img');
    await link(boot, alias);
    const cases: [unknown, string][] = [
      [{ path: join(h.shareDir, '..', 'missing.img') }, 'disks[1].path'],
      [{ path: h.shareDir }, 'disks[1].path'],
      [{ path: 'relative.img' }, 'disks[1].path'],
      [{ path: boot }, 'disks[1].path'],
      [{ path: boot.replace('/boot.img', '//boot.img') }, 'disks[1].path'],
      [{ path: alias }, 'disks[1].path'],
    ];
    for (const [request, field] of cases) {
      await expect(h.manager.addDisk('bad', request as { path: string })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        details: { field },
      });
    }
    await expect(h.manager.removeDisk('bad', 'disk-nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(h.manager.addDisk('nope', { path: boot })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await h.manager.get('bad')).spec.disks).toHaveLength(1);
    expect((await vmmConfig(vm.paths.socket!)).disks).toHaveLength(1);
  });

  it('reconcile drops a disk whose interrupted add never reached the VMM', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'crash', kernel: h.kernel });
    const data = await diskFile(join(h.shareDir, '..'), 'data.img');
    // What a crash right before vm.add-disk leaves: the disk in the spec, the call pending.
    const { diskDeviceId } = await import('../src/device-ids.js');
    const record = (await h.store.read('crash'))!;
    record.spec.disks.push({ path: data, readOnly: false });
    record.pending = {
      op: 'disk-add',
      step: `vm.add-disk ${diskDeviceId(data)}`,
      since: new Date().toISOString(),
    };
    await h.store.write(record);

    const report = await h.manager.reconcile();
    expect(report.changes.map((c) => c.action)).toEqual([
      `settled an interrupted disk-add: disk ${diskDeviceId(data)} removed`,
    ]);
    const vm = await h.manager.get('crash');
    expect(vm.spec.disks).toEqual([]);
    expect(vm.pending).toBeUndefined();
    expect(vm.status).toBe('running');
  });
});

const shareSkip = !isRoot
  ? 'needs root to run virtiofsd'
  : !hasVirtiofsd
    ? 'virtiofsd is not installed'
    : undefined;
if (shareSkip) console.warn(`share hot-plug tests skipped: ${shareSkip}`);

describe.skipIf(shareSkip !== undefined)('share hot-plug (real virtiofsd, simulator VMM)', () => {
  it('adds a share to a VM booted with shares, keeps it across stop/start, removes it, and delete releases it', async () => {
    await using h = await makeHarness({ backend: 'memory', shares: true });
    const vm = await h.manager.create({
      name: 's',
      kernel: h.kernel,
      shares: [{ hostPath: h.shareDir, tag: 'base' }],
    });
    const extra = join(h.shareDir, '..', 'extra');
    await mkdir(extra);

    // Not read-only: the C virtiofsd installed here cannot enforce it.
    const devices = await h.manager.addShare('s', { hostPath: extra, tag: 'extra' });
    expect(devices.shares.map((s) => [s.id, s.tag])).toEqual([
      ['fs-base', 'base'],
      ['fs-extra', 'extra'],
    ]);
    const info = await h.manager.get('s');
    const socket = info.shares.find((s) => s.tag === 'extra')!.socketPath!;
    expect(socket).toBeTruthy();
    expect(await pidsMentioning(socket)).not.toEqual([]);
    expect((await vmmConfig(vm.paths.socket!)).fs?.map((f) => [f.id, f.tag])).toEqual([
      ['fs-base', 'base'],
      ['fs-extra', 'extra'],
    ]);

    await h.manager.stop('s');
    expect(await pidsMentioning(socket)).toEqual([]);
    const started = await h.manager.start('s');
    expect((await vmmConfig(started.paths.socket!)).fs?.map((f) => f.id)).toEqual(['fs-base', 'fs-extra']);

    const after = await h.manager.removeShare('s', 'extra');
    expect(after.shares.map((s) => s.tag)).toEqual(['base']);
    expect((await vmmConfig(started.paths.socket!)).fs?.map((f) => f.tag)).toEqual(['base']);
    const restarted = await h.manager.get('s');
    expect(restarted.shares.map((s) => s.tag)).toEqual(['base']);
    const extraSocket = `${socket}`;
    expect(await pidsMentioning(extraSocket)).toEqual([]);

    await h.manager.addShare('s', { hostPath: extra, tag: 'again' });
    const againSocket = (await h.manager.get('s')).shares.find((s) => s.tag === 'again')!.socketPath!;
    expect(await pidsMentioning(againSocket)).not.toEqual([]);
    await h.manager.delete('s', { force: true });
    expect(await pidsMentioning(againSocket)).toEqual([]);
  });

  it('refuses a live share add to a VM booted without shares, and cold-plugs it when stopped', async () => {
    await using h = await makeHarness({ backend: 'memory', shares: true });
    await h.manager.create({ name: 'plain', kernel: h.kernel });
    await expect(h.manager.addShare('plain', { hostPath: h.shareDir, tag: 'data' })).rejects.toMatchObject({
      code: 'WRONG_STATE',
    });
    expect((await h.manager.get('plain')).spec.shares).toEqual([]);
    expect((await h.manager.get('plain')).shares).toEqual([]);

    await h.manager.stop('plain');
    await h.manager.addShare('plain', { hostPath: h.shareDir, tag: 'data', guestPath: '/srv/data' });
    // Kept in the spec: our init mounts it there at every boot of a VM made from an image.
    expect((await h.manager.get('plain')).spec.shares).toEqual([
      { hostPath: h.shareDir, tag: 'data', readOnly: false, guestPath: '/srv/data' },
    ]);
    const started = await h.manager.start('plain');
    const config = await vmmConfig(started.paths.socket!);
    expect(config.memory?.shared).toBe(true);
    expect(config.fs?.map((f) => f.id)).toEqual(['fs-data']);
  });

  it('refuses bad shares naming the field', async () => {
    await using h = await makeHarness({ backend: 'memory', shares: true });
    await h.manager.create({ name: 'b', kernel: h.kernel, shares: [{ hostPath: h.shareDir, tag: 'data' }] });
    const file = join(h.stateDir, 'file');
    await writeFile(file, '');
    const cases: [unknown, string][] = [
      [{ hostPath: h.shareDir, tag: 'data' }, 'shares[1].tag'],
      [{ hostPath: h.shareDir, tag: 'bad tag' }, 'shares[1].tag'],
      [{ hostPath: h.shareDir, tag: '' }, 'shares[1].tag'],
      [{ hostPath: join(h.stateDir, 'missing'), tag: 'x' }, 'shares[1].hostPath'],
      [{ hostPath: file, tag: 'x' }, 'shares[1].hostPath'],
    ];
    for (const [request, field] of cases) {
      await expect(
        h.manager.addShare('b', request as { hostPath: string; tag: string }),
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', details: { field } });
    }
    await expect(h.manager.removeShare('b', 'nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await h.manager.get('b')).spec.shares).toHaveLength(1);
  });

  it('reconcile releases the virtiofsd of a share whose add-fs never ran', async () => {
    await using h = await makeHarness({ backend: 'memory', shares: true });
    const vm = await h.manager.create({
      name: 'c',
      kernel: h.kernel,
      shares: [{ hostPath: h.shareDir, tag: 'base' }],
    });
    const extra = join(h.shareDir, '..', 'extra');
    await mkdir(extra);
    // What a crash between virtiofsd starting and vm.add-fs leaves (prepared by hand, as addShare does).
    const storage = h.manager.options.storage!;
    const record = (await h.store.read('c'))!;
    const id = `${record.id}-extra`;
    const prepared = await storage.prepare({ id, hostPath: extra, tag: 'extra' });
    record.spec.shares.push({ hostPath: extra, tag: 'extra', readOnly: false });
    record.resources.shares.push({ id, tag: 'extra', record: prepared.record });
    record.pending = { op: 'share-add', step: 'vm.add-fs extra', since: new Date().toISOString() };
    await h.store.write(record);
    expect(await pidsMentioning(prepared.record.socketPath)).not.toEqual([]);

    const report = await h.manager.reconcile();
    expect(report.changes.map((c) => c.action)).toContain(
      'settled an interrupted share-add: share extra removed and its virtiofsd released',
    );
    expect(await pidsMentioning(prepared.record.socketPath)).toEqual([]);
    const after = await h.manager.get('c');
    expect(after.spec.shares.map((s) => s.tag)).toEqual(['base']);
    expect(after.shares.map((s) => s.tag)).toEqual(['base']);
    expect(after.pending).toBeUndefined();
    expect((await vmmConfig(vm.paths.socket!)).fs?.map((f) => f.tag)).toEqual(['base']);
  });
});
