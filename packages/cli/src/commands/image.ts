import type { BrokenImage, BuildProgress, StoredImage } from '@my-hypervisor/guest-image';
import { openManager } from '../backends.js';
import type { CommandContext } from '../context.js';
import { CliError, invalidValue } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { formatDuration } from '../format.js';
import { DEFAULT_IMAGE, debCacheDir, imageStore, parseImageName } from '../images.js';
import { interruptible } from '../interruptible.js';
import type { CommandHandler } from '../run.js';

/** A Debian package name (policy §5.6.1), checked before it reaches apt. */
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]{1,99}$/;

/** What `--json` prints for an image: where its files are and its manifest. */
function imageJson(image: StoredImage) {
  return {
    name: image.name,
    dir: image.dir,
    kernel: image.kernel,
    initramfs: image.initramfs,
    manifest: image.manifest,
  };
}

/** `63.2 MiB`: file sizes for people. */
function formatSize(bytes: number): string {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function sizeOf(image: StoredImage): string {
  const { files } = image.manifest;
  return formatSize(files.vmlinux.size + files['initramfs.cpio.gz'].size);
}

/** The VMs whose spec names image `name` (made from it with `vm create --image`). */
async function vmsUsing(ctx: CommandContext, name: string): Promise<string[]> {
  const { manager } = await openManager(await ctx.config(), { kind: 'read' });
  return (await manager.list()).filter((vm) => vm.spec.image === name).map((vm) => vm.name);
}

/**
 * `myhv image build [NAME] [--kernel-package PKG] [--force]`: a PVH vmlinux from a Debian kernel package and a
 * busybox initramfs with our init, into `<stateDir>/images/NAME`. Unchanged inputs: nothing is rebuilt.
 */
export const imageBuild: CommandHandler = async (ctx, [rawName]) => {
  const name = parseImageName(rawName ?? DEFAULT_IMAGE);
  const kernelPackage =
    ctx.options.kernelPackage === undefined ? undefined : String(ctx.options.kernelPackage);
  if (kernelPackage !== undefined && !PACKAGE_NAME.test(kernelPackage)) {
    throw invalidValue(
      '--kernel-package',
      `${JSON.stringify(kernelPackage)} is not a Debian package name`,
      'e.g. --kernel-package linux-image-cloud-amd64',
    );
  }
  const config = await ctx.config();
  const { out } = ctx;
  const { buildImage } = await import('@my-hypervisor/guest-image');
  const started = Date.now();
  const result = await interruptible(ctx, (signal) =>
    buildImage({
      name,
      storeDir: imageStore(config).dir,
      cacheDir: debCacheDir(config),
      ...(kernelPackage !== undefined ? { kernelPackage } : {}),
      force: ctx.options.force === true,
      signal,
      onProgress: (event: BuildProgress) => out.note(`  ${event.step.padEnd(10)} ${event.detail}`),
    }),
  );
  const { image, built } = result;
  out.result({ built, image: imageJson(image) }, () => {
    const { kernel, busybox, modules } = image.manifest;
    const what = `${kernel.package} ${kernel.version}, busybox ${busybox.version}, ${modules.length} modules, ${sizeOf(image)}`;
    out.print(
      out.ok(
        built
          ? `built image ${name} (${what}) in ${formatDuration(Date.now() - started)}`
          : `image ${name} is up to date (${what}); --force rebuilds it`,
      ),
    );
    out.print(`  ${image.dir}`);
  });
  return ExitCode.OK;
};

/** `myhv image ls`: the images in the store, and any directory there that is not a usable image. */
export const imageLs: CommandHandler = async (ctx) => {
  const store = imageStore(await ctx.config());
  const { images, broken } = await store.list();
  const { out } = ctx;
  out.result({ images: images.map(imageJson), broken }, () => {
    if (images.length === 0 && broken.length === 0) {
      out.print(`no images in ${store.dir}; \`myhv image build\` makes the default one`);
      return;
    }
    const rows = images.map((i) => [
      i.name,
      `${i.manifest.kernel.package} ${i.manifest.kernel.version}`,
      sizeOf(i),
      i.manifest.created,
    ]);
    for (const b of broken as BrokenImage[]) rows.push([b.name, `broken: ${b.problem}`, '-', '-']);
    out.table(['name', 'kernel', 'size', 'created'], rows);
  });
  return ExitCode.OK;
};

/** `myhv image inspect NAME`: an image's files, manifest, and the VMs made from it. */
export const imageInspect: CommandHandler = async (ctx, [rawName]) => {
  const name = parseImageName(rawName);
  const image = await imageStore(await ctx.config()).inspect(name);
  const vms = await vmsUsing(ctx, name);
  const { out } = ctx;
  out.result({ image: imageJson(image), vms }, () => {
    const m = image.manifest;
    out.fields([
      ['name', image.name],
      ['created', m.created],
      ['kernel', `${m.kernel.package} ${m.kernel.version} (${m.kernel.release})`],
      ['busybox', `${m.busybox.package} ${m.busybox.version}`],
      ['modules', m.modules.join(' ') || '-'],
      ['vmlinux', `${image.kernel} (${formatSize(m.files.vmlinux.size)})`],
      ['initramfs', `${image.initramfs} (${formatSize(m.files['initramfs.cpio.gz'].size)})`],
      ['guest args', `version ${m.guestArgsVersion}`],
      ['vms', vms.join(', ') || '-'],
    ]);
  });
  return ExitCode.OK;
};

/** `myhv image rm NAME [--force]`: refused while a VM was made from it, unless forced. */
export const imageRm: CommandHandler = async (ctx, [rawName]) => {
  const name = parseImageName(rawName);
  const store = imageStore(await ctx.config());
  // NOT_FOUND first: a typo is reported as such, not as "in use".
  await store.inspect(name).catch((error: unknown) => {
    if ((error as { code?: unknown }).code === 'NOT_FOUND') throw error;
  });
  const vms = await vmsUsing(ctx, name);
  if (vms.length > 0 && ctx.options.force !== true) {
    throw new CliError(
      'IN_USE',
      `image ${name} is used by ${vms.length === 1 ? 'VM' : 'VMs'} ${vms.join(', ')}`,
      {
        details: {
          vms,
          hint: `remove ${vms.length === 1 ? 'it' : 'them'} first (\`myhv vm rm\`), or pass --force (they cannot start again)`,
        },
      },
    );
  }
  await store.remove(name);
  ctx.out.result({ removed: name, vms }, () => {
    ctx.out.print(ctx.out.ok(`removed image ${name}`));
    if (vms.length > 0) ctx.out.note(`note: ${vms.join(', ')} cannot start again without it`);
  });
  return ExitCode.OK;
};
