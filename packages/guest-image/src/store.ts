import { lstat, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GuestImageError, invalidArgument } from './errors.js';
import { type ImageManifest, imageManifestSchema } from './manifest.js';

/** Where `myhv image build` keeps images unless told otherwise. */
export const DEFAULT_IMAGE_STORE = '/var/lib/myhv/images';

const IMAGE_NAME = /^[a-z][a-z0-9-]{0,31}$/;
export const KERNEL_FILE = 'vmlinux';
export const INITRAMFS_FILE = 'initramfs.cpio.gz';
export const MANIFEST_FILE = 'manifest.json';

/** Throws INVALID_ARGUMENT unless `name` is an image name: `[a-z][a-z0-9-]{0,31}`. */
export function validateImageName(name: unknown): string {
  if (typeof name !== 'string' || !IMAGE_NAME.test(name)) {
    throw invalidArgument('name', `${JSON.stringify(name)} is not an image name ([a-z][a-z0-9-]{0,31})`);
  }
  return name;
}

/** An image in the store, with the paths a VM needs. */
export interface StoredImage {
  readonly name: string;
  readonly dir: string;
  readonly kernel: string;
  readonly initramfs: string;
  readonly manifest: ImageManifest;
}

/** A directory in the store that is not a usable image, and why. */
export interface BrokenImage {
  readonly name: string;
  readonly dir: string;
  readonly problem: string;
}

/** Where the store lives. */
export interface ImageStoreOptions {
  /** Default `/var/lib/myhv/images`. */
  readonly dir?: string;
}

/**
 * The image store: one directory per image holding `vmlinux`, `initramfs.cpio.gz` and `manifest.json`.
 * Trusted like the manager's own directories: whoever can write there chooses the kernel a VM boots, so a
 * symbolic link, a directory writable by group or others, or one owned by another user is refused.
 */
export class ImageStore {
  readonly dir: string;

  constructor(options: ImageStoreOptions = {}) {
    this.dir = options.dir ?? DEFAULT_IMAGE_STORE;
  }

  /** The paths of image `name` (which need not exist). */
  paths(name: string): { dir: string; kernel: string; initramfs: string; manifest: string } {
    const dir = join(this.dir, validateImageName(name));
    return {
      dir,
      kernel: join(dir, KERNEL_FILE),
      initramfs: join(dir, INITRAMFS_FILE),
      manifest: join(dir, MANIFEST_FILE),
    };
  }

  /** Creates the store directory (0700) if missing, and checks that it can be trusted. */
  async ensure(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await assertTrusted(this.dir, 'dir');
  }

  /** Every image, by name; directories that are not usable images are listed in `broken`. */
  async list(): Promise<{ images: StoredImage[]; broken: BrokenImage[] }> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { images: [], broken: [] };
      throw error;
    }
    await assertTrusted(this.dir, 'dir');
    const images: StoredImage[] = [];
    const broken: BrokenImage[] = [];
    // Dot-names are builds in progress or being removed; other names are someone else's files.
    for (const name of names.filter((n) => IMAGE_NAME.test(n)).sort()) {
      try {
        images.push(await this.inspect(name));
      } catch (error) {
        if (!GuestImageError.isInstance(error) || error.code === 'NOT_FOUND') throw error;
        broken.push({ name, dir: join(this.dir, name), problem: error.message });
      }
    }
    return { images, broken };
  }

  /** Image `name` with its manifest; NOT_FOUND when absent, CORRUPT_IMAGE when its files are not as written. */
  async inspect(name: string): Promise<StoredImage> {
    const paths = this.paths(name);
    if (!(await exists(paths.dir))) {
      throw new GuestImageError('NOT_FOUND', `no image ${name} in ${this.dir}`, { details: { name } });
    }
    await assertTrusted(this.dir, 'dir');
    await assertTrusted(paths.dir, 'dir');
    for (const file of [paths.manifest, paths.kernel, paths.initramfs]) {
      if (!(await exists(file))) {
        throw new GuestImageError('CORRUPT_IMAGE', `image ${name} has no ${file}`, { details: { name } });
      }
      await assertTrusted(file, 'file');
    }
    let manifest: ImageManifest;
    try {
      manifest = imageManifestSchema.parse(JSON.parse(await readFile(paths.manifest, 'utf8')));
    } catch (error) {
      throw new GuestImageError('CORRUPT_IMAGE', `image ${name} has an unreadable ${MANIFEST_FILE}`, {
        cause: error,
        details: { name },
      });
    }
    for (const [file, path] of [
      [KERNEL_FILE, paths.kernel],
      [INITRAMFS_FILE, paths.initramfs],
    ] as const) {
      const size = (await lstat(path)).size;
      if (size !== manifest.files[file].size) {
        throw new GuestImageError(
          'CORRUPT_IMAGE',
          `image ${name}: ${file} has ${size} bytes, its manifest says ${manifest.files[file].size}`,
          { details: { name } },
        );
      }
    }
    return { name, dir: paths.dir, kernel: paths.kernel, initramfs: paths.initramfs, manifest };
  }

  /** Removes image `name`; NOT_FOUND when absent. Renamed away first, so a half-removed image is never listed. */
  async remove(name: string): Promise<void> {
    const { dir } = this.paths(name);
    if (!(await exists(dir))) {
      throw new GuestImageError('NOT_FOUND', `no image ${name} in ${this.dir}`, { details: { name } });
    }
    await assertTrusted(this.dir, 'dir');
    const doomed = join(this.dir, `.remove-${name}-${process.pid}-${Date.now()}`);
    await rename(dir, doomed);
    await rm(doomed, { recursive: true, force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/** UNSAFE_PERMISSIONS for a symlink, a wrong type, another owner, or group/other write access. */
export async function assertTrusted(path: string, kind: 'dir' | 'file'): Promise<void> {
  const stat = await lstat(path);
  const euid = process.geteuid?.() ?? 0;
  let problem: string | undefined;
  if (stat.isSymbolicLink()) problem = 'a symbolic link';
  else if (kind === 'dir' ? !stat.isDirectory() : !stat.isFile())
    problem = `not a ${kind === 'dir' ? 'directory' : 'regular file'}`;
  else if (stat.uid !== 0 && stat.uid !== euid) problem = `owned by uid ${stat.uid}`;
  else if ((stat.mode & 0o022) !== 0) problem = 'writable by group or others';
  if (problem !== undefined) {
    throw new GuestImageError(
      'UNSAFE_PERMISSIONS',
      `refusing to use ${path}: it is ${problem}, and whoever can change it chooses the kernel a VM boots`,
      { details: { path, uid: stat.uid, mode: stat.mode & 0o7777 } },
    );
  }
}
