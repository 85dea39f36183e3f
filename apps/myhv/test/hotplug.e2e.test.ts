import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, json, myhv, pidsMentioning, Sandbox, virtiofsdMissing } from './myhv.js';

const skip =
  e2eSkipReason() ??
  (virtiofsdMissing() ? 'virtiofsd is missing (apt-get install qemu-system-common)' : undefined);
if (skip) console.warn(`skipped: the vm disk / vm share e2e tests, because ${skip}`);

interface Devices {
  disks: { id: string; path: string; readOnly: boolean }[];
  shares: { id: string; tag: string; hostPath: string; readOnly: boolean }[];
}

describe.skipIf(skip !== undefined)('myhv vm disk and vm share (simulator VMM)', () => {
  const box = new Sandbox('hotplug');
  const run = (...args: string[]) => myhv(args, box.env);

  beforeAll(async () => {
    box.create();
    // Booted with a share, so its memory is shared and more shares can be hot-plugged.
    const created = await run('vm', 'create', 'hp', '--kernel', box.kernel, '--share', `${box.share}:base`);
    expect(created.code, created.stderr).toBe(0);
  });
  afterAll(() => {
    box.destroy();
  });

  it('adds, lists and removes a disk; bad input is exit 2 naming the field', async () => {
    // A VMM under Landlock opens new files only in its VM's disk directory; from elsewhere: exit 2, naming it.
    const { vm } = json<{ vm: { paths: { dir: string }; confinement?: { landlock?: string[] } } }>(
      await run('--json', 'vm', 'inspect', 'hp'),
    );
    if (vm.confinement?.landlock) {
      const elsewhere = join(box.dir, 'elsewhere.img');
      writeFileSync(elsewhere, Buffer.alloc(4096));
      const refused = await run('--json', 'vm', 'disk', 'add', 'hp', elsewhere);
      expect(refused.code, refused.stderr).toBe(2);
      expect(JSON.parse(refused.stderr).error).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'path' });
    }
    const image = join(vm.confinement?.landlock ? join(vm.paths.dir, 'disks') : box.dir, 'data.img');
    writeFileSync(image, Buffer.alloc(4096));
    const added = await run('--json', 'vm', 'disk', 'add', 'hp', `${image}:ro`);
    expect(added.code, added.stderr).toBe(0);
    const disk = json<{ disk: Devices['disks'][number] }>(added).disk;
    expect(disk).toMatchObject({ path: image, readOnly: true });

    const listed = await run('--json', 'vm', 'disk', 'ls', 'hp');
    expect(json<{ disks: Devices['disks'] }>(listed).disks).toEqual([disk]);

    const twice = await run('--json', 'vm', 'disk', 'add', 'hp', image);
    expect(twice.code).toBe(2);
    expect(JSON.parse(twice.stderr).error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'disks[1].path',
    });
    const missing = await run('vm', 'disk', 'add', 'hp', join(box.dir, 'nope.img'));
    expect(missing.code).toBe(2);

    const removed = await run('--json', 'vm', 'disk', 'rm', 'hp', disk.id);
    expect(removed.code, removed.stderr).toBe(0);
    expect(json<{ devices: Devices }>(removed).devices.disks).toEqual([]);
    expect((await run('vm', 'disk', 'rm', 'hp', disk.id)).code).toBe(1);
  });

  it('adds a share with its own virtiofsd, keeps it across stop/start, removes it', async () => {
    const extra = join(box.dir, 'extra');
    mkdirSync(extra, { mode: 0o700 });
    const added = await run('--json', 'vm', 'share', 'add', 'hp', `${extra}:extra`);
    expect(added.code, added.stderr).toBe(0);
    expect(json<{ share: Devices['shares'][number] }>(added).share).toMatchObject({
      id: 'fs-extra',
      tag: 'extra',
      readOnly: false,
    });
    expect(pidsMentioning(extra).length).toBeGreaterThan(0);

    expect((await run('vm', 'stop', 'hp')).code).toBe(0);
    expect((await run('vm', 'start', 'hp')).code).toBe(0);
    const listed = await run('--json', 'vm', 'share', 'ls', 'hp');
    expect(json<{ shares: Devices['shares'] }>(listed).shares.map((s) => s.tag)).toEqual(['base', 'extra']);

    const bad = await run('--json', 'vm', 'share', 'add', 'hp', `${extra}:bad tag`);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stderr).error).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'shares[2].tag' });

    const removed = await run('vm', 'share', 'rm', 'hp', 'extra');
    expect(removed.code, removed.stderr).toBe(0);
    expect(pidsMentioning(extra)).toEqual([]);
  });
});
