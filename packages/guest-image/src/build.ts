import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { syncDirectory, writeFileAtomic } from '@my-hypervisor/host-utils';
import { withBuildLock } from './build-lock.js';
import { extractVmlinux } from './bzimage.js';
import { type CpioEntry, writeCpio } from './cpio.js';
import { type DebianPackage, extractDeb, fetchDebianPackage, fetchKernelPackage } from './debian.js';
import { GuestImageError, invalidArgument, throwIfAborted } from './errors.js';
import { GUEST_ARGS_VERSION } from './guest-args.js';
import { initScript } from './init-script.js';
import { type ImageManifest, MANIFEST_VERSION } from './manifest.js';
import {
  GUEST_MODULES,
  type KernelModule,
  moduleLoadOrder,
  moduleLookupFor,
  readModuleFile,
} from './modules.js';
import {
  DEFAULT_IMAGE_STORE,
  ImageStore,
  INITRAMFS_FILE,
  KERNEL_FILE,
  MANIFEST_FILE,
  type StoredImage,
  validateImageName,
} from './store.js';

/** Where `.deb` files are kept between builds unless told otherwise. */
export const DEFAULT_DEB_CACHE = '/var/cache/myhv/debs';
/** Debian's kernel metapackage for x86-64: its Depends names the current `linux-image-<release>`. */
export const DEFAULT_KERNEL_PACKAGE = 'linux-image-amd64';
const BUSYBOX_PACKAGE = 'busybox-static';
/** Where the init finds the modules to load, one absolute path a line, in order. */
const MODULE_LIST = 'etc/myhv/modules';

/** Where `.deb` files come from: apt by default; tests and air-gapped hosts bring their own. */
export interface PackageSource {
  /** A kernel image package, a metapackage such as `linux-image-amd64` followed to the versioned one. */
  fetchKernel(name: string, options: PackageFetchOptions): Promise<DebianPackage>;
  fetch(name: string, options: PackageFetchOptions): Promise<DebianPackage>;
}

/** Where a PackageSource keeps `.deb` files, and the build's signal. */
export interface PackageFetchOptions {
  readonly cacheDir: string;
  readonly signal?: AbortSignal | undefined;
}

/** The apt-backed source: `apt-cache show` + `apt-get download` into the cache. */
export const aptPackageSource: PackageSource = {
  fetchKernel: fetchKernelPackage,
  fetch: fetchDebianPackage,
};

/**
 * The steps of a build, in order; `up-to-date` replaces the rest when nothing changed. `wait`: another build of
 * the same image runs (its pid in the detail); this one starts when it ends.
 */
export type BuildStep =
  | 'wait'
  | 'fetch'
  | 'up-to-date'
  | 'extract'
  | 'vmlinux'
  | 'modules'
  | 'initramfs'
  | 'write'
  | 'done';

/** One progress event of `buildImage`. */
export interface BuildProgress {
  readonly step: BuildStep;
  readonly detail: string;
}

/** What to build and where; only `name` is required. */
export interface BuildImageOptions {
  /** The image name, `[a-z][a-z0-9-]{0,31}`. */
  readonly name: string;
  /** Default `linux-image-amd64`. */
  readonly kernelPackage?: string;
  /** Default `/var/lib/myhv/images`. */
  readonly storeDir?: string;
  /** Default `/var/cache/myhv/debs`. */
  readonly cacheDir?: string;
  /** Modules to carry and load (their dependencies come along); default GUEST_MODULES. */
  readonly modules?: readonly string[];
  /** Rebuild even when the inputs are unchanged. */
  readonly force?: boolean;
  readonly onProgress?: (event: BuildProgress) => void;
  readonly signal?: AbortSignal;
  /** Default apt. */
  readonly packageSource?: PackageSource;
}

/** What `buildImage` did, and the image as stored. */
export interface BuildImageResult {
  /** False when the image was already built from the same inputs and was left alone. */
  readonly built: boolean;
  readonly image: StoredImage;
}

/**
 * Builds image `name`: the PVH `vmlinux` out of the kernel package's bzImage, and an initramfs with static
 * busybox, the modules in load order and our `/init`. Written to a temporary directory in the store and renamed
 * into place, so an image is whole or absent. Same package versions, init and modules as the stored image: no-op.
 */
export async function buildImage(options: BuildImageOptions): Promise<BuildImageResult> {
  const name = validateImageName(options.name);
  const kernelPackage = options.kernelPackage ?? DEFAULT_KERNEL_PACKAGE;
  if (!/^[a-z0-9][a-z0-9+.-]{1,127}$/.test(kernelPackage)) {
    throw invalidArgument('kernelPackage', `${JSON.stringify(kernelPackage)} is not a Debian package name`);
  }
  const wanted = options.modules ?? GUEST_MODULES;
  for (const module of wanted) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(module))
      throw invalidArgument('modules', `${JSON.stringify(module)} is not a module name`);
  }
  const { signal } = options;
  const progress = (step: BuildStep, detail: string) => options.onProgress?.({ step, detail });
  const store = new ImageStore({ dir: options.storeDir ?? DEFAULT_IMAGE_STORE });
  const source = options.packageSource ?? aptPackageSource;
  const fetchOptions = { cacheDir: options.cacheDir ?? DEFAULT_DEB_CACHE, signal };
  throwIfAborted(signal);
  await store.ensure();
  return withBuildLock(
    store.dir,
    name,
    { signal, onWait: (pid) => progress('wait', `another build of ${name} runs (pid ${pid})`) },
    () => buildLocked({ ...options, name, kernelPackage }, wanted, store, source, fetchOptions, progress),
  );
}

async function buildLocked(
  options: BuildImageOptions & { name: string; kernelPackage: string },
  wanted: readonly string[],
  store: ImageStore,
  source: PackageSource,
  fetchOptions: PackageFetchOptions,
  progress: (step: BuildStep, detail: string) => void,
): Promise<BuildImageResult> {
  const { name, kernelPackage, signal } = options;
  progress('fetch', kernelPackage);
  progress('fetch', BUSYBOX_PACKAGE);
  // Each apt-cache call loads apt's whole cache (about a second): the two packages are looked up side by side.
  const [kernel, busybox] = await Promise.all([
    source.fetchKernel(kernelPackage, fetchOptions),
    source.fetch(BUSYBOX_PACKAGE, fetchOptions),
  ]);
  const init = initScript();
  const initSha256 = sha256(init);
  const inputs = sha256(
    JSON.stringify({
      manifestVersion: MANIFEST_VERSION,
      kernel: debIdentity(kernel),
      busybox: debIdentity(busybox),
      init: initSha256,
      guestArgsVersion: GUEST_ARGS_VERSION,
      modules: wanted,
    }),
  );
  if (options.force !== true) {
    const current = await store.inspect(name).catch(() => undefined);
    if (current?.manifest.inputs === inputs) {
      progress('up-to-date', `${name}: ${kernel.package} ${kernel.version}, busybox ${busybox.version}`);
      return { built: false, image: current };
    }
  }

  const work = await mkdtemp(join(store.dir, `.build-${name}-`));
  try {
    progress('extract', `${kernel.package} ${kernel.version}`);
    const kernelRoot = join(work, 'kernel');
    await extractDeb(kernel.path, kernelRoot, { signal });
    const busyboxRoot = join(work, 'busybox');
    await extractDeb(busybox.path, busyboxRoot, { signal });

    const { release, vmlinuz } = await findVmlinuz(kernelRoot, kernel);
    progress('vmlinux', `unpacking ${vmlinuz}`);
    const vmlinux = await extractVmlinux(new Uint8Array(await readFile(join(kernelRoot, vmlinuz))), {
      signal,
    });

    progress('modules', wanted.join(' '));
    const moduleDir = await findModuleDir(kernelRoot, release, kernel);
    const { lookup, builtin } = await moduleLookupFor(moduleDir, { signal });
    const modules = await moduleLoadOrder(wanted, lookup, { builtin });

    progress('initramfs', `busybox ${busybox.version}, ${modules.length} modules`);
    const entries = await initramfsEntries({ busyboxRoot, moduleDir, release, modules, init, signal });
    const initramfs = new Uint8Array(await promisify(gzip)(writeCpio(entries), { level: 9 }));

    progress('write', store.paths(name).dir);
    const out = join(work, 'image');
    await mkdir(out, { mode: 0o700 });
    const manifest: ImageManifest = {
      manifestVersion: MANIFEST_VERSION,
      name,
      created: new Date().toISOString(),
      kernel: { ...debIdentity(kernel), release },
      busybox: debIdentity(busybox),
      init: { sha256: initSha256 },
      guestArgsVersion: GUEST_ARGS_VERSION,
      modules: modules.map((m) => m.name),
      files: {
        vmlinux: { sha256: sha256(vmlinux), size: vmlinux.length },
        'initramfs.cpio.gz': { sha256: sha256(initramfs), size: initramfs.length },
      },
      inputs,
    };
    await writeFileAtomic(join(out, KERNEL_FILE), vmlinux, 0o644);
    await writeFileAtomic(join(out, INITRAMFS_FILE), initramfs, 0o644);
    await writeFileAtomic(join(out, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`, 0o644);
    throwIfAborted(signal);
    await replaceDir(out, store.paths(name).dir, store.dir);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const image = await store.inspect(name);
  progress(
    'done',
    `${image.dir}: vmlinux ${image.manifest.files.vmlinux.size} bytes, initramfs ${image.manifest.files[INITRAMFS_FILE].size} bytes`,
  );
  return { built: true, image };
}

function debIdentity(deb: DebianPackage): ImageManifest['busybox'] {
  return { package: deb.package, version: deb.version, arch: deb.arch, sha256: deb.sha256 };
}

/** The one `boot/vmlinuz-<release>` a kernel image package ships. */
async function findVmlinuz(root: string, deb: DebianPackage): Promise<{ release: string; vmlinuz: string }> {
  const names = await readdir(join(root, 'boot')).catch(() => [] as string[]);
  const found = names.filter((n) => /^vmlinuz-[A-Za-z0-9._+-]+$/.test(n));
  if (found.length !== 1 || found[0] === undefined) {
    throw new GuestImageError(
      'BAD_PACKAGE',
      `${deb.package} ${deb.version} ships ${found.length === 0 ? 'no' : found.length} boot/vmlinuz-* files, not one`,
      { details: { package: deb.package } },
    );
  }
  return { release: found[0].slice('vmlinuz-'.length), vmlinuz: join('boot', found[0]) };
}

/** `lib/modules/<release>`, or `usr/lib/modules/<release>` in a merged-/usr package. */
async function findModuleDir(root: string, release: string, deb: DebianPackage): Promise<string> {
  for (const base of ['lib/modules', 'usr/lib/modules']) {
    const dir = join(root, base, release);
    if ((await readdir(dir).catch(() => undefined)) !== undefined) return dir;
  }
  throw new GuestImageError('BAD_PACKAGE', `${deb.package} ships no lib/modules/${release}`, {
    details: { package: deb.package },
  });
}

async function initramfsEntries(input: {
  busyboxRoot: string;
  moduleDir: string;
  release: string;
  modules: readonly KernelModule[];
  init: string;
  signal: AbortSignal | undefined;
}): Promise<CpioEntry[]> {
  const busybox = await readFirst(input.busyboxRoot, ['bin/busybox', 'usr/bin/busybox']);
  if (busybox === undefined) {
    throw new GuestImageError('BAD_PACKAGE', `${BUSYBOX_PACKAGE} ships no bin/busybox`);
  }
  const dirs = new Set([
    'bin',
    'dev',
    'etc',
    'etc/myhv',
    'lib',
    'mnt',
    'proc',
    'root',
    'run',
    'sbin',
    'sys',
    'usr',
    'var',
  ]);
  const files: CpioEntry[] = [];
  const loadList: string[] = [];
  for (const module of input.modules) {
    // busybox insmod reads plain ELF only, so compressed modules are stored decompressed.
    const path = `lib/modules/${input.release}/${module.path.replace(/\.(xz|zst|gz)$/, '')}`;
    const data = await readModuleFile(join(input.moduleDir, module.path), { signal: input.signal });
    for (let at = path.indexOf('/'); at > 0; at = path.indexOf('/', at + 1)) dirs.add(path.slice(0, at));
    files.push({ type: 'file', path, mode: 0o644, data });
    loadList.push(`/${path}`);
  }
  return [
    ...[...dirs].sort().map((path): CpioEntry => ({ type: 'dir', path, mode: 0o755 })),
    { type: 'dir', path: 'tmp', mode: 0o1777 },
    { type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
    { type: 'char', path: 'dev/null', mode: 0o666, major: 1, minor: 3 },
    { type: 'file', path: 'bin/busybox', mode: 0o755, data: busybox },
    { type: 'symlink', path: 'bin/sh', target: 'busybox' },
    { type: 'file', path: 'init', mode: 0o755, data: new TextEncoder().encode(input.init) },
    {
      type: 'file',
      path: MODULE_LIST,
      mode: 0o644,
      data: new TextEncoder().encode(loadList.map((l) => `${l}\n`).join('')),
    },
    ...files,
  ];
}

async function readFirst(root: string, paths: readonly string[]): Promise<Uint8Array | undefined> {
  for (const path of paths) {
    const bytes = await readFile(join(root, path)).catch(() => undefined);
    if (bytes !== undefined) return new Uint8Array(bytes);
  }
  return undefined;
}

/** Puts `from` at `to` (a directory, maybe present): the old one is renamed aside first, then removed. */
async function replaceDir(from: string, to: string, parent: string): Promise<void> {
  const aside = join(parent, `.old-${randomBytes(6).toString('hex')}`);
  let moved = false;
  try {
    await rename(to, aside);
    moved = true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await rename(from, to);
  await syncDirectory(parent);
  if (moved) await rm(aside, { recursive: true, force: true });
}

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
