import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, json, myhv, Sandbox, virtiofsdMissing } from './myhv.js';

const skip =
  e2eSkipReason() ??
  (virtiofsdMissing() ? 'virtiofsd is missing (apt-get install qemu-system-common)' : undefined);
if (skip) console.warn(`skipped: the myhv image e2e tests, because ${skip}`);

const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

/**
 * An image laid out as `myhv image build` writes it (guest-image's ImageStore): `vmlinux` (here the probe guest,
 * which the simulator "runs"), `initramfs.cpio.gz` and `manifest.json`, in a 0700 directory. Building a real
 * one needs a Debian kernel package download; guest-image's own tests do that.
 */
function writeFakeImage(box: Sandbox, name: string): { dir: string; kernel: string; initramfs: string } {
  const dir = join(box.stateDir, 'images', name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const kernel = join(dir, 'vmlinux');
  const initramfs = join(dir, 'initramfs.cpio.gz');
  const vmlinux = readFileSync(box.kernel);
  const cpio = Buffer.from('not really a cpio archive');
  writeFileSync(kernel, vmlinux, { mode: 0o644 });
  writeFileSync(initramfs, cpio, { mode: 0o644 });
  const deb = { arch: 'amd64', sha256: sha256('deb') };
  const manifest = {
    manifestVersion: 1,
    name,
    created: '2026-12-06T00:00:00.000Z',
    kernel: {
      package: 'linux-image-6.1.0-28-amd64',
      version: '6.1.119-1',
      ...deb,
      release: '6.1.0-28-amd64',
    },
    busybox: { package: 'busybox-static', version: '1:1.35.0-4+b3', ...deb },
    init: { sha256: sha256('init') },
    guestArgsVersion: 1,
    modules: ['virtio_net', 'virtiofs'],
    files: {
      vmlinux: { sha256: sha256(vmlinux), size: vmlinux.length },
      'initramfs.cpio.gz': { sha256: sha256(cpio), size: cpio.length },
    },
    inputs: sha256(name),
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest), { mode: 0o644 });
  return { dir, kernel, initramfs };
}

describe.skipIf(skip !== undefined)('myhv image and vm create --image (simulator VMM)', () => {
  const box = new Sandbox('images');
  const run = (...args: string[]) => myhv(args, box.env);

  beforeAll(() => {
    box.create();
  });
  afterAll(() => {
    box.destroy();
  });

  it('lists an empty store; refuses bad names (exit 2) and missing images (exit 1)', async () => {
    const listed = await run('--json', 'image', 'ls');
    expect(listed.code, listed.stderr).toBe(0);
    expect(json(listed)).toEqual({ images: [], broken: [] });
    expect((await run('image', 'ls')).stdout).toMatch(/no images/);

    for (const args of [
      ['image', 'inspect', 'Bad'],
      ['image', 'rm', '../x'],
      ['image', 'build', 'no spaces'],
      ['image', 'build', '--kernel-package', 'a b'],
      ['vm', 'create', 'a', '--image', 'Nope'],
    ]) {
      const bad = await run('--json', ...args);
      expect(bad.code, args.join(' ')).toBe(2);
      expect(JSON.parse(bad.stderr)).toMatchObject({ error: { code: 'INVALID_ARGUMENT' } });
    }
    const missing = await run('--json', 'image', 'inspect', 'nope');
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stderr).error).toMatchObject({ source: 'GuestImageError', code: 'NOT_FOUND' });
    const noImage = await run('--json', 'vm', 'create', 'a', '--image', 'nope');
    expect(noImage.code).toBe(1);
    expect(JSON.parse(noImage.stderr).error.code).toBe('NOT_FOUND');
  });

  it('creates a VM from an image: kernel and initramfs from the store, myhv.* arguments for its init', async () => {
    const image = writeFakeImage(box, 'fake');
    const listed = await run('--json', 'image', 'ls');
    expect(json<{ images: { name: string; kernel: string }[] }>(listed).images).toMatchObject([
      { name: 'fake', kernel: image.kernel },
    ]);
    const inspected = await run('--json', 'image', 'inspect', 'fake');
    expect(json(inspected)).toMatchObject({
      image: { name: 'fake', dir: image.dir, manifest: { modules: ['virtio_net', 'virtiofs'] } },
      vms: [],
    });

    const created = await run(
      '--json',
      'vm',
      'create',
      'web',
      '--image',
      'fake',
      '--command',
      'echo hi',
      '--share',
      `${box.share}:data:rw:/data`,
    );
    expect(created.code, created.stderr).toBe(0);
    const shown = await run('--json', 'vm', 'inspect', 'web');
    const { vm } = json<{ vm: { ip: string; spec: Record<string, unknown> } }>(shown);
    expect(vm.spec).toMatchObject({
      kernel: image.kernel,
      initramfs: image.initramfs,
      image: 'fake',
      command: 'echo hi',
      shares: [{ hostPath: box.share, tag: 'data', readOnly: false, guestPath: '/data' }],
    });

    // (rw: the C virtiofsd some hosts have cannot serve read-only.) The probe guest prints the command line it was given: the init's arguments reached the guest.
    let cmdline = '';
    for (let i = 0; i < 50 && !cmdline; i++) {
      const logs = json<{ lines: string[] }>(await run('--json', 'vm', 'logs', 'web'));
      cmdline = logs.lines.find((l) => l.startsWith('myhv-probe: cmdline='))?.slice(20) ?? '';
      if (!cmdline) await sleep(100);
    }
    const tokens = cmdline.split(' ');
    expect(tokens).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^ip=/),
        `myhv.ip=${vm.ip}/24`,
        expect.stringMatching(/^myhv\.gw=/),
        expect.stringMatching(/^myhv\.dns=/),
        'myhv.hostname=web',
        'myhv.share=data:/data',
        `myhv.cmd=${Buffer.from('echo hi').toString('base64url')}`,
      ]),
    );

    const inUse = await run('--json', 'image', 'rm', 'fake');
    expect(inUse.code).toBe(1);
    expect(JSON.parse(inUse.stderr).error).toMatchObject({ code: 'IN_USE' });
    expect(JSON.parse(inUse.stderr).error.message).toContain('web');
    expect(json(await run('--json', 'image', 'inspect', 'fake'))).toMatchObject({ vms: ['web'] });
  });

  it('--wait-ready times out with exit 1 when the guest never says ready; the VM keeps running', async () => {
    // The simulator's probe guest prints no ready line (it is no image init).
    const created = await run(
      'vm',
      'create',
      'slow',
      '--image',
      'fake',
      '--wait-ready',
      '--ready-timeout',
      '1s',
    );
    expect(created.code, created.stderr).toBe(1);
    expect(created.stderr).toMatch(/slow printed no ready line within 1s; it keeps running/);
    expect(created.stdout).toMatch(/created slow/);
    const shown = json<{ vm: { status: string } }>(await run('--json', 'vm', 'inspect', 'slow'));
    expect(shown.vm.status).toBe('running');

    expect((await run('vm', 'stop', 'slow', '-t', '0')).code).toBe(0);
    const started = await run('--json', 'vm', 'start', 'slow', '--ready-timeout', '500ms');
    expect(started.code).toBe(1);
    expect(JSON.parse(started.stderr).error).toMatchObject({ code: 'TIMEOUT', exitCode: 1 });
    expect(started.stdout).toBe('');

    const bad = await run('vm', 'start', 'slow', '--wait-ready', '--ready-timeout', 'soon');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--ready-timeout/);
  });

  it('boots the image named default when neither --kernel nor --image is given', async () => {
    const before = await run('--json', 'vm', 'create', 'plain');
    expect(before.code).toBe(2);
    expect(JSON.parse(before.stderr).error).toMatchObject({ field: '--kernel' });

    const image = writeFakeImage(box, 'default');
    const created = await run('vm', 'create', 'plain', '--no-network');
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/using image default/);
    const { vm } = json<{ vm: { spec: { kernel: string; image: string } } }>(
      await run('--json', 'vm', 'inspect', 'plain'),
    );
    expect(vm.spec).toMatchObject({ kernel: image.kernel, image: 'default' });
  });

  it('removes an unused image; --force removes a used one', async () => {
    expect((await run('vm', 'rm', '--force', 'plain')).code).toBe(0);
    const removed = await run('--json', 'image', 'rm', 'default');
    expect(removed.code, removed.stderr).toBe(0);
    expect(json(removed)).toEqual({ removed: 'default', vms: [] });

    const forced = await run('image', 'rm', '--force', 'fake');
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toMatch(/slow, web cannot start again/);
    expect(json(await run('--json', 'image', 'ls'))).toEqual({ images: [], broken: [] });
  });
});
