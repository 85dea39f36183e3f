import { promises as fs } from 'node:fs';
import { totalmem } from 'node:os';
import { checkKernelImage } from '@my-hypervisor/guest-image/core';
import { invalidSpec } from './errors.js';
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
  for (const [field, path] of files) await assertFile(field, path);
  await assertDisksOnHost(spec.disks);
  const kernel = await checkKernelImage(spec.kernel).catch((error: NodeJS.ErrnoException) => ({
    ok: false as const,
    problem: `cannot be read (${error.code ?? error.message})`,
  }));
  if (!kernel.ok) throw invalidSpec('kernel', `${spec.kernel} ${kernel.problem}`);
  await assertSharesOnHost(spec.shares);
}

async function assertFile(field: string, path: string) {
  const stat = await statOrUndefined(path);
  if (!stat) throw invalidSpec(field, `${path} does not exist`);
  if (!stat.isFile() && !stat.isBlockDevice()) throw invalidSpec(field, `${path} is not a file`);
  return stat;
}

/** Every disk is a file or block device, and no file is there twice (the schema compared paths; links too). */
export async function assertDisksOnHost(disks: VmSpec['disks']): Promise<void> {
  const diskFiles = new Map<string, string>();
  for (const [i, d] of disks.entries()) {
    const field = `disks[${i}].path`;
    const stat = await assertFile(field, d.path);
    const first = diskFiles.get(`${stat.dev}:${stat.ino}`);
    if (first !== undefined) throw invalidSpec(field, `${d.path} is the same file as ${first}`);
    diskFiles.set(`${stat.dev}:${stat.ino}`, field);
  }
}

/** Every share is a directory (symlinks resolved). */
export async function assertSharesOnHost(shares: VmSpec['shares']): Promise<void> {
  for (const [i, share] of shares.entries()) {
    const stat = await statOrUndefined(share.hostPath);
    if (!stat) throw invalidSpec(`shares[${i}].hostPath`, `${share.hostPath} does not exist`);
    if (!stat.isDirectory())
      throw invalidSpec(`shares[${i}].hostPath`, `${share.hostPath} is not a directory`);
  }
}
