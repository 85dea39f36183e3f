import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GuestImageError } from './errors.js';
import { type ImageManifest, MANIFEST_VERSION } from './manifest.js';
import { ImageStore, validateImageName } from './store.js';

let root: string;
let store: ImageStore;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'myhv-images-'));
  store = new ImageStore({ dir: join(root, 'images') });
  await store.ensure();
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const sha = 'b'.repeat(64);
function manifest(name: string, kernelSize = 4, initramfsSize = 2): ImageManifest {
  return {
    manifestVersion: MANIFEST_VERSION,
    name,
    created: '2026-12-06T00:00:00.000Z',
    kernel: {
      package: 'linux-image-6.1.0-57-amd64',
      version: '6.1.192-3',
      arch: 'amd64',
      sha256: sha,
      release: '6.1.0-57-amd64',
    },
    busybox: { package: 'busybox-static', version: '1:1.35.0-4', arch: 'amd64', sha256: sha },
    init: { sha256: sha },
    guestArgsVersion: 1,
    modules: ['virtio_ring'],
    files: {
      vmlinux: { sha256: sha, size: kernelSize },
      'initramfs.cpio.gz': { sha256: sha, size: initramfsSize },
    },
    inputs: sha,
  };
}

async function putImage(name: string, manifestText = JSON.stringify(manifest(name))) {
  const dir = join(store.dir, name);
  await mkdir(dir, { mode: 0o700 });
  await writeFile(join(dir, 'vmlinux'), 'ELF!', { mode: 0o644 });
  await writeFile(join(dir, 'initramfs.cpio.gz'), 'gz', { mode: 0o644 });
  await writeFile(join(dir, 'manifest.json'), manifestText, { mode: 0o644 });
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (error === undefined) return undefined;
  if (!GuestImageError.isInstance(error)) throw error;
  return error.code;
}

describe('ImageStore', () => {
  it('lists, inspects and removes images', async () => {
    await putImage('debian');
    await putImage('a-2');
    await mkdir(join(store.dir, '.build-x-123'));
    const { images, broken } = await store.list();
    expect(images.map((i) => i.name)).toEqual(['a-2', 'debian']);
    expect(broken).toEqual([]);
    const image = await store.inspect('debian');
    expect(image.kernel).toBe(join(store.dir, 'debian', 'vmlinux'));
    expect(image.initramfs).toBe(join(store.dir, 'debian', 'initramfs.cpio.gz'));
    expect(image.manifest.kernel.release).toBe('6.1.0-57-amd64');
    await store.remove('debian');
    expect((await store.list()).images.map((i) => i.name)).toEqual(['a-2']);
    expect(await codeOf(store.inspect('debian'))).toBe('NOT_FOUND');
    expect(await codeOf(store.remove('debian'))).toBe('NOT_FOUND');
  });

  it('lists an empty store when its directory does not exist yet', async () => {
    expect(await new ImageStore({ dir: join(root, 'none') }).list()).toEqual({ images: [], broken: [] });
  });

  it('reports broken images apart: bad manifest, missing file, size that does not match', async () => {
    await putImage('good');
    await putImage('bad-json', '{');
    await putImage('bad-size', JSON.stringify(manifest('bad-size', 999)));
    await putImage('no-kernel');
    await rm(join(store.dir, 'no-kernel', 'vmlinux'));
    const { images, broken } = await store.list();
    expect(images.map((i) => i.name)).toEqual(['good']);
    expect(broken.map((b) => b.name)).toEqual(['bad-json', 'bad-size', 'no-kernel']);
    expect(await codeOf(store.inspect('bad-json'))).toBe('CORRUPT_IMAGE');
  });

  it.each(['Debian', '1abc', 'a_b', '', '../etc', 'a/b', 'x'.repeat(33), '.hidden'])(
    'refuses the name %j (INVALID_ARGUMENT) before touching the disk',
    async (name) => {
      expect(() => validateImageName(name)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      expect(await codeOf(store.inspect(name))).toBe('INVALID_ARGUMENT');
      expect(await codeOf(store.remove(name))).toBe('INVALID_ARGUMENT');
    },
  );

  it('accepts names up to 32 characters', () => {
    expect(validateImageName(`a${'0'.repeat(31)}`)).toHaveLength(32);
  });

  it('refuses a symlinked image, a group-writable store or file (UNSAFE_PERMISSIONS)', async () => {
    await putImage('real');
    await symlink(join(store.dir, 'real'), join(store.dir, 'link'));
    expect(await codeOf(store.inspect('link'))).toBe('UNSAFE_PERMISSIONS');
    await chmod(join(store.dir, 'real', 'vmlinux'), 0o666);
    expect(await codeOf(store.inspect('real'))).toBe('UNSAFE_PERMISSIONS');
    await chmod(join(store.dir, 'real', 'vmlinux'), 0o644);
    await chmod(store.dir, 0o777);
    expect(await codeOf(store.inspect('real'))).toBe('UNSAFE_PERMISSIONS');
    expect(await codeOf(store.list())).toBe('UNSAFE_PERMISSIONS');
  });
});
