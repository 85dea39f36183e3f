import { promises as fs } from 'node:fs';
import { invalidSpec } from './errors.js';
import { checkKernelImage } from './kernel-image.js';
import type { VmSpec } from './spec.js';

async function statOrUndefined(path: string) {
  return fs.stat(path).catch(() => undefined);
}

/**
 * What the schema cannot know: the kernel, initramfs and disks exist as files, the kernel is an image Cloud
 * Hypervisor can boot (from its headers), and every share is a directory (symlinks resolved). Runs before anything
 * is created, so a bad spec changes nothing.
 */
export async function assertSpecOnHost(spec: VmSpec): Promise<void> {
  const files: [string, string][] = [['kernel', spec.kernel]];
  if (spec.initramfs) files.push(['initramfs', spec.initramfs]);
  for (const [i, d] of spec.disks.entries()) files.push([`disks[${i}].path`, d.path]);
  for (const [field, path] of files) {
    const stat = await statOrUndefined(path);
    if (!stat) throw invalidSpec(field, `${path} does not exist`);
    if (!stat.isFile() && !stat.isBlockDevice()) throw invalidSpec(field, `${path} is not a file`);
  }
  const kernel = await checkKernelImage(spec.kernel).catch((error: NodeJS.ErrnoException) => ({
    ok: false as const,
    problem: `cannot be read (${error.code ?? error.message})`,
  }));
  if (!kernel.ok) throw invalidSpec('kernel', `${spec.kernel} ${kernel.problem}`);
  for (const [i, share] of spec.shares.entries()) {
    const stat = await statOrUndefined(share.hostPath);
    if (!stat) throw invalidSpec(`shares[${i}].hostPath`, `${share.hostPath} does not exist`);
    if (!stat.isDirectory())
      throw invalidSpec(`shares[${i}].hostPath`, `${share.hostPath} is not a directory`);
  }
}
