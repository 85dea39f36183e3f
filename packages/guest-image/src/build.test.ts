import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { probeGuestImage } from '@my-hypervisor/chv-client/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elfWithoutPvhNote, fakeBzImage, gzipPayload, hasTool, makeDeb } from '../test/fixtures.js';
import { type BuildProgress, buildImage, type PackageSource } from './build.js';
import { readCpio } from './cpio.js';
import type { DebianPackage } from './debian.js';
import { GuestImageError } from './errors.js';
import { initScript } from './init-script.js';
import { ImageStore } from './store.js';

const RELEASE = '6.1.0-99-amd64';
const MODULES_DEP = `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/fuse/fuse.ko.xz:
kernel/fs/fuse/virtiofs.ko: kernel/fs/fuse/fuse.ko.xz kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
`;
const MODULES = ['virtio_net', 'virtiofs'];

const missing = ['dpkg-deb', 'xz'].filter((tool) => !hasTool(tool));
if (missing.length > 0) console.log(`skipping the build tests: ${missing.join(' and ')} not installed`);

/** Packages made on the spot with dpkg-deb, handed out without apt or network; counts what was asked. */
class FakeSource implements PackageSource {
  readonly asked: string[] = [];
  constructor(
    public kernel: DebianPackage,
    public busybox: DebianPackage,
  ) {}
  async fetchKernel(name: string) {
    this.asked.push(name);
    return this.kernel;
  }
  async fetch(name: string) {
    this.asked.push(name);
    return this.busybox;
  }
}

describe.skipIf(missing.length > 0)('buildImage (fake packages, no network)', () => {
  let dir: string;
  let kernel: DebianPackage;
  let busybox: DebianPackage;
  const fuseKo = new TextEncoder().encode('fuse module bytes');
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'myhv-build-'));
    const mod = (name: string) => `module ${name}`;
    kernel = await makeDeb(
      dir,
      { package: `linux-image-${RELEASE}`, version: '6.1.999-1' },
      {
        [`boot/vmlinuz-${RELEASE}`]: fakeBzImage(gzipPayload(probeGuestImage())),
        [`boot/config-${RELEASE}`]: 'CONFIG_PVH=y\n',
        [`lib/modules/${RELEASE}/modules.dep`]: MODULES_DEP,
        [`lib/modules/${RELEASE}/kernel/drivers/virtio/virtio_ring.ko`]: mod('virtio_ring'),
        [`lib/modules/${RELEASE}/kernel/drivers/virtio/virtio.ko`]: mod('virtio'),
        [`lib/modules/${RELEASE}/kernel/net/core/failover.ko`]: mod('failover'),
        [`lib/modules/${RELEASE}/kernel/drivers/net/net_failover.ko`]: mod('net_failover'),
        [`lib/modules/${RELEASE}/kernel/drivers/net/virtio_net.ko`]: mod('virtio_net'),
        [`lib/modules/${RELEASE}/kernel/fs/fuse/fuse.ko.xz`]: new Uint8Array(
          execFileSync('xz', ['-c'], { input: fuseKo }),
        ),
        [`lib/modules/${RELEASE}/kernel/fs/fuse/virtiofs.ko`]: mod('virtiofs'),
      },
    );
    busybox = await makeDeb(
      dir,
      { package: 'busybox-static', version: '1:1.35.0-4' },
      { 'bin/busybox': 'busybox!' },
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes vmlinux, initramfs and manifest; an identical second build is a no-op', async () => {
    const storeDir = join(dir, 'store1');
    const source = new FakeSource(kernel, busybox);
    const events: BuildProgress[] = [];
    const first = await buildImage({
      name: 'test',
      storeDir,
      cacheDir: dir,
      modules: MODULES,
      packageSource: source,
      onProgress: (e) => events.push(e),
    });
    expect(first.built).toBe(true);
    expect(source.asked).toEqual(['linux-image-amd64', 'busybox-static']);
    expect(events.map((e) => e.step)).toEqual([
      'fetch',
      'fetch',
      'extract',
      'vmlinux',
      'modules',
      'initramfs',
      'write',
      'done',
    ]);

    const { image } = first;
    expect(new Uint8Array(await readFile(image.kernel))).toEqual(probeGuestImage());
    const entries = readCpio(gunzipSync(await readFile(image.initramfs)));
    const byPath = new Map(entries.map((e) => [e.path, e]));
    expect(byPath.get('init')).toMatchObject({ type: 'file', mode: 0o755 });
    expect(new TextDecoder().decode(byPath.get('init')?.data)).toBe(initScript());
    expect(byPath.get('bin/busybox')).toMatchObject({ type: 'file', mode: 0o755 });
    expect(byPath.get('bin/sh')).toMatchObject({ type: 'symlink', target: 'busybox' });
    expect(byPath.get('dev/console')).toMatchObject({ type: 'char', major: 5, minor: 1 });
    // Compressed modules are stored decompressed: busybox insmod reads plain ELF only.
    expect(byPath.get(`lib/modules/${RELEASE}/kernel/fs/fuse/fuse.ko`)?.data).toEqual(fuseKo);
    const order = [
      'kernel/drivers/virtio/virtio_ring.ko',
      'kernel/drivers/virtio/virtio.ko',
      'kernel/net/core/failover.ko',
      'kernel/drivers/net/net_failover.ko',
      'kernel/drivers/net/virtio_net.ko',
      'kernel/fs/fuse/fuse.ko',
      'kernel/fs/fuse/virtiofs.ko',
    ].map((p) => `/lib/modules/${RELEASE}/${p}`);
    expect(new TextDecoder().decode(byPath.get('etc/myhv/modules')?.data)).toBe(`${order.join('\n')}\n`);
    for (const path of order) expect(byPath.has(path.slice(1))).toBe(true);
    // Every parent directory comes before what it holds, as the kernel's unpacker needs.
    for (const [i, entry] of entries.entries()) {
      const parent = entry.path.slice(0, entry.path.lastIndexOf('/'));
      if (parent !== '') expect(entries.findIndex((e) => e.path === parent)).toBeLessThan(i);
    }

    expect(image.manifest).toMatchObject({
      name: 'test',
      kernel: { package: kernel.package, version: '6.1.999-1', release: RELEASE, sha256: kernel.sha256 },
      busybox: { version: '1:1.35.0-4' },
      modules: ['virtio_ring', 'virtio', 'failover', 'net_failover', 'virtio_net', 'fuse', 'virtiofs'],
    });
    expect(image.manifest.files.vmlinux.size).toBe(probeGuestImage().length);
    expect((await stat(image.dir)).mode & 0o777).toBe(0o700);
    expect((await stat(image.kernel)).mode & 0o777).toBe(0o644);

    const before = await stat(image.kernel);
    const second = await buildImage({
      name: 'test',
      storeDir,
      cacheDir: dir,
      modules: MODULES,
      packageSource: source,
    });
    expect(second.built).toBe(false);
    expect((await stat(image.kernel)).mtimeMs).toBe(before.mtimeMs);
    expect(await readdir(storeDir)).toEqual(['test']);

    // A new busybox version is a new input: rebuilt, and the manifest says so.
    source.busybox = { ...busybox, version: '1:1.36.0-1' };
    const third = await buildImage({
      name: 'test',
      storeDir,
      cacheDir: dir,
      modules: MODULES,
      packageSource: source,
    });
    expect(third.built).toBe(true);
    expect(third.image.manifest.busybox.version).toBe('1:1.36.0-1');
    expect(await readdir(storeDir)).toEqual(['test']);
    expect((await new ImageStore({ dir: storeDir }).list()).images.map((i) => i.name)).toEqual(['test']);
  });

  it('runs one build of an image at a time: a second one waits, then finds it up to date', async () => {
    const storeDir = join(dir, 'store-lock');
    const build = (events: BuildProgress[]) =>
      buildImage({
        name: 'twice',
        storeDir,
        cacheDir: dir,
        modules: MODULES,
        packageSource: new FakeSource(kernel, busybox),
        onProgress: (e) => events.push(e),
      });
    const a: BuildProgress[] = [];
    const b: BuildProgress[] = [];
    const results = await Promise.all([build(a), build(b)]);
    // Without the lock the second rename failed (ENOTEMPTY) or both built.
    expect(results.map((r) => r.built).sort()).toEqual([false, true]);
    const waited = results[0]!.built ? b : a;
    expect(waited[0]).toMatchObject({
      step: 'wait',
      detail: `another build of twice runs (pid ${process.pid})`,
    });
    expect(waited.map((e) => e.step)).toEqual(['wait', 'fetch', 'fetch', 'up-to-date']);
    expect(await readdir(storeDir)).toEqual(['twice']);
  });

  it('takes over the lock of a build that died, and stops waiting when aborted', async () => {
    const storeDir = join(dir, 'store-stale');
    await mkdir(storeDir, { mode: 0o700 });
    const options = { name: 'stale', storeDir, cacheDir: dir, modules: MODULES };
    // A pid that is not running (pid_max is at most 2^22).
    await writeFile(join(storeDir, '.build-stale.lock'), '4194305 1\n');
    const built = await buildImage({ ...options, packageSource: new FakeSource(kernel, busybox) });
    expect(built.built).toBe(true);
    expect(await readdir(storeDir)).toEqual(['stale']);

    // Held by a live process (this one, as another build would be): the waiting build ends on abort.
    await writeFile(join(storeDir, '.build-stale.lock'), `${process.pid}\n`);
    const stop = new AbortController();
    const events: BuildProgress[] = [];
    const waiting = buildImage({
      ...options,
      force: true,
      packageSource: new FakeSource(kernel, busybox),
      onProgress: (e) => {
        events.push(e);
        stop.abort();
      },
      signal: stop.signal,
    });
    await expect(waiting).rejects.toMatchObject({ code: 'ABORTED' });
    expect(events.map((e) => e.step)).toEqual(['wait']);
    expect(await readFile(join(storeDir, '.build-stale.lock'), 'utf8')).toBe(`${process.pid}\n`);
  });

  it('leaves the store untouched when the kernel has no PVH note (NO_PVH_NOTE)', async () => {
    const storeDir = join(dir, 'store2');
    const bad = await makeDeb(
      join(dir),
      { package: 'linux-image-6.1.0-98-amd64', version: '1' },
      {
        'boot/vmlinuz-6.1.0-98-amd64': fakeBzImage(gzipPayload(elfWithoutPvhNote())),
        'lib/modules/6.1.0-98-amd64/modules.dep': '',
      },
    );
    const error = await buildImage({
      name: 'bad',
      storeDir,
      cacheDir: dir,
      modules: MODULES,
      packageSource: new FakeSource(bad, busybox),
    }).catch((e: unknown) => e);
    expect(GuestImageError.isInstance(error) && error.code).toBe('NO_PVH_NOTE');
    expect(await readdir(storeDir)).toEqual([]);
  });

  it('refuses a bad image name or module name before fetching anything (INVALID_ARGUMENT)', async () => {
    const source = new FakeSource(kernel, busybox);
    for (const options of [
      { name: 'Bad Name' },
      { name: 'ok', modules: ['virtio net'] },
      { name: 'ok', kernelPackage: '-oDir=/tmp' },
    ]) {
      const error = await buildImage({
        storeDir: join(dir, 'store3'),
        packageSource: source,
        ...options,
      }).catch((e: unknown) => e);
      expect(GuestImageError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
    }
    expect(source.asked).toEqual([]);
  });
});
