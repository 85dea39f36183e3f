import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage } from '../../src/build.js';
import { readCpio } from '../../src/cpio.js';
import { initScript } from '../../src/init-script.js';
import { checkKernelImage } from '../../src/kernel-image.js';
import { GUEST_MODULES } from '../../src/modules.js';
import { cacheDir, debianPackagesUnavailable } from './debian-cache.js';

describe('an image from the real Debian packages', () => {
  let storeDir: string;
  let unavailable: string | undefined;
  beforeAll(async () => {
    storeDir = await mkdtemp(join(tmpdir(), 'myhv-image-store-'));
    unavailable = await debianPackagesUnavailable();
  }, 600_000);
  afterAll(async () => {
    await rm(storeDir, { recursive: true, force: true });
  });

  it('builds vmlinux (PVH ELF) and an initramfs with busybox, init and the modules in order; a rebuild is a no-op', async (ctx) => {
    if (unavailable !== undefined) {
      console.log(`skipping: ${unavailable}`);
      ctx.skip(unavailable);
    }
    const started = performance.now();
    const first = await buildImage({ name: 'debian', storeDir, cacheDir });
    const coldMs = performance.now() - started;
    expect(first.built).toBe(true);
    const { image } = first;

    expect(await checkKernelImage(image.kernel)).toEqual({ ok: true, format: 'pvh-elf' });
    const vmlinux = await readFile(image.kernel);
    expect(vmlinux.includes(`Linux version ${image.manifest.kernel.release}`)).toBe(true);

    const entries = readCpio(gunzipSync(await readFile(image.initramfs)));
    const byPath = new Map(entries.map((e) => [e.path, e]));
    expect(new TextDecoder().decode(byPath.get('init')?.data)).toBe(initScript());
    expect(byPath.get('bin/busybox')?.data?.subarray(0, 4)).toEqual(Uint8Array.of(0x7f, 0x45, 0x4c, 0x46));
    expect(image.manifest.modules).toEqual([...GUEST_MODULES]);
    const loadList = new TextDecoder().decode(byPath.get('etc/myhv/modules')?.data).trim().split('\n');
    expect(loadList.map((p) => p.slice(p.lastIndexOf('/') + 1))).toEqual(GUEST_MODULES.map((m) => `${m}.ko`));
    for (const path of loadList) {
      expect(byPath.get(path.slice(1))?.data?.subarray(0, 4), path).toEqual(
        Uint8Array.of(0x7f, 0x45, 0x4c, 0x46),
      );
    }

    const again = performance.now();
    const second = await buildImage({ name: 'debian', storeDir, cacheDir });
    const warmMs = performance.now() - again;
    expect(second.built).toBe(false);
    console.log(
      `image build from cached .debs: first ${Math.round(coldMs)} ms (kernel ${image.manifest.kernel.version}, vmlinux ` +
        `${image.manifest.files.vmlinux.size} B, initramfs ${image.manifest.files['initramfs.cpio.gz'].size} B), ` +
        `no-op rebuild ${Math.round(warmMs)} ms`,
    );
  }, 600_000);
});
