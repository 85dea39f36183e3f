import { promises as fs } from 'node:fs';
import { totalmem } from 'node:os';
import { invalidSpec } from './errors.js';
import { checkKernelImage } from './kernel-image.js';
import type { VmSpec } from './spec.js';

async function statOrUndefined(path: string) {
  return fs.stat(path).catch(() => undefined);
}

function gib(bytes: number): string {
  return `${Math.round((bytes / 1024 ** 3) * 10) / 10}G`;
}

/**
 * What the schema cannot know: the memory fits in the host's RAM, the kernel, initramfs and disks exist as files
 * (no file twice, whatever the path says), the kernel is an image Cloud Hypervisor can boot (from its headers),
 * and every share is a directory (symlinks resolved). Runs before anything is created, so a bad spec changes
 * nothing.
 */
export async function assertSpecOnHost(spec: VmSpec, hostMemoryBytes = totalmem()): Promise<void> {
  if (spec.memory > hostMemoryBytes) {
    throw invalidSpec('memory', `${gib(spec.memory)} is more than this host's RAM (${gib(hostMemoryBytes)})`);
  }
  const files: [string, string][] = [['kernel', spec.kernel]];
  if (spec.initramfs) files.push(['initramfs', spec.initramfs]);
  for (const [i, d] of spec.disks.entries()) files.push([`disks[${i}].path`, d.path]);
  // The schema compared disk paths; a symlink or hard link to the same disk is the same file too.
  const diskFiles = new Map<string, string>();
  for (const [field, path] of files) {
    const stat = await statOrUndefined(path);
    if (!stat) throw invalidSpec(field, `${path} does not exist`);
    if (!stat.isFile() && !stat.isBlockDevice()) throw invalidSpec(field, `${path} is not a file`);
    if (!field.startsWith('disks[')) continue;
    const first = diskFiles.get(`${stat.dev}:${stat.ino}`);
    if (first !== undefined) throw invalidSpec(field, `${path} is the same file as ${first}`);
    diskFiles.set(`${stat.dev}:${stat.ino}`, field);
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
