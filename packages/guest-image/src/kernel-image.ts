import { promises as fs } from 'node:fs';

/**
 * What Cloud Hypervisor can boot directly on x86-64 (vmm/src/vm.rs `load_kernel`): an ELF64 x86-64 `vmlinux`
 * with a PVH entry note, else a bzImage. Anything else fails only at `vm.boot`, after the network and the VMM
 * were set up, so it is checked up front from the headers: a few reads of a few KiB, never the whole file.
 */
export type KernelImageFormat = 'pvh-elf' | 'bzimage';

/** Why a kernel was refused, for code that acts on it; `problem` says it in words. */
export type KernelImageProblem =
  | 'empty'
  | 'not-a-kernel'
  | 'truncated'
  | 'wrong-architecture'
  | 'bad-elf'
  | 'no-pvh-note'
  | 'old-zimage';

/** The verdict on a kernel: its format, or why Cloud Hypervisor could not boot it. */
export type KernelImageCheck =
  | { readonly ok: true; readonly format: KernelImageFormat }
  | { readonly ok: false; readonly reason: KernelImageProblem; readonly problem: string };

/** Reads up to `length` bytes at `offset` (fewer at the end of the file). */
export type ReadAt = (offset: number, length: number) => Promise<Uint8Array>;

const HEADER_BYTES = 4096;
/** Program headers and notes of a real vmlinux are a few KiB; a bound keeps a hostile header from costing much. */
const MAX_READ_BYTES = 64 * 1024;
const EM_X86_64 = 62;
const PT_NOTE = 4;
const PHDR64_SIZE = 56;
const XEN_ELFNOTE_PHYS32_ENTRY = 18;
const BZIMAGE_MAGIC = 0x5372_6448; // "HdrS" at 0x202
const LOADED_HIGH = 0x01;

const NOT_A_KERNEL =
  'is not a kernel image Cloud Hypervisor can boot: neither an ELF vmlinux with a PVH entry nor a bzImage';

/** Checks the kernel at `path` (a regular file or block device that exists). */
export async function checkKernelImage(path: string): Promise<KernelImageCheck> {
  const handle = await fs.open(path, 'r');
  try {
    const stat = await handle.stat();
    // A block device reports size 0: then the reads alone tell where it ends.
    const size = stat.isFile() ? stat.size : undefined;
    const readAt: ReadAt = async (offset, length) => {
      const buffer = new Uint8Array(Math.max(0, Math.min(length, MAX_READ_BYTES)));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
      return buffer.subarray(0, bytesRead);
    };
    return await checkKernelBytes(readAt, size);
  } finally {
    await handle.close();
  }
}

/** The same check over any byte source of `size` bytes (undefined when unknown). */
export async function checkKernelBytes(readAt: ReadAt, size: number | undefined): Promise<KernelImageCheck> {
  const header = await readAt(0, HEADER_BYTES);
  if (header.length === 0) return fail('empty', 'is empty');
  const end = size ?? Number.POSITIVE_INFINITY;
  if (startsWith(header, [0x7f, 0x45, 0x4c, 0x46])) return checkElf(header, readAt, end);
  if (header.length >= 0x206 && view(header).getUint32(0x202, true) === BZIMAGE_MAGIC) {
    return checkBzImage(header);
  }
  return fail('not-a-kernel', NOT_A_KERNEL);
}

async function checkElf(header: Uint8Array, readAt: ReadAt, size: number): Promise<KernelImageCheck> {
  if (header.length < 64)
    return fail('truncated', `is truncated: ${header.length} bytes, less than an ELF64 header`);
  const elfClass = header[4];
  if (elfClass === 1) {
    return fail(
      'wrong-architecture',
      'is a 32-bit ELF; Cloud Hypervisor boots 64-bit x86-64 kernels (a PVH vmlinux or a bzImage)',
    );
  }
  if (elfClass !== 2) return fail('bad-elf', `is not a valid ELF (class ${elfClass})`);
  if (header[5] !== 1)
    return fail('wrong-architecture', 'is a big-endian ELF; Cloud Hypervisor boots x86-64 kernels');
  const h = view(header);
  const machine = h.getUint16(18, true);
  if (machine !== EM_X86_64) {
    return fail(
      'wrong-architecture',
      `is an ELF for another architecture (e_machine ${machine}), not x86-64`,
    );
  }
  const phoff = Number(h.getBigUint64(32, true));
  const phentsize = h.getUint16(54, true);
  const phnum = h.getUint16(56, true);
  if (phentsize !== PHDR64_SIZE || phnum === 0)
    return fail('bad-elf', 'is an ELF without valid program headers');
  const phEnd = phoff + phnum * phentsize;
  if (phEnd > size) return fail('truncated', truncated(phEnd, size));
  const table = await readAt(phoff, phnum * phentsize);
  if (table.length < phnum * phentsize) return fail('truncated', truncated(phEnd, size));
  const ph = view(table);
  for (let i = 0; i < phnum; i++) {
    const at = i * phentsize;
    if (ph.getUint32(at, true) !== PT_NOTE) continue;
    const offset = Number(ph.getBigUint64(at + 8, true));
    const length = Number(ph.getBigUint64(at + 32, true));
    if (offset + length > size) return fail('truncated', truncated(offset + length, size));
    const notes = await readAt(offset, length);
    if (notes.length < Math.min(length, MAX_READ_BYTES))
      return fail('truncated', truncated(offset + length, size));
    if (hasPvhNote(notes)) return { ok: true, format: 'pvh-elf' };
  }
  return fail(
    'no-pvh-note',
    'is an ELF kernel without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): Cloud Hypervisor would refuse it ' +
      'with "Kernel lacks PVH header"; build it with CONFIG_PVH=y, or boot its bzImage',
  );
}

/** Walks ELF notes (`namesz, descsz, type`, name and desc each padded to 4 bytes) for Xen's PVH entry. */
function hasPvhNote(notes: Uint8Array): boolean {
  const v = view(notes);
  let at = 0;
  while (at + 12 <= notes.length) {
    const namesz = v.getUint32(at, true);
    const descsz = v.getUint32(at + 4, true);
    const type = v.getUint32(at + 8, true);
    const name = new TextDecoder().decode(notes.subarray(at + 12, at + 12 + namesz)).replace(/\0+$/, '');
    if (type === XEN_ELFNOTE_PHYS32_ENTRY && name === 'Xen') return true;
    at += 12 + align4(namesz) + align4(descsz);
  }
  return false;
}

function checkBzImage(header: Uint8Array): KernelImageCheck {
  const h = view(header);
  const version = header.length >= 0x208 ? h.getUint16(0x206, true) : 0;
  const loadflags = header.length > 0x211 ? (header[0x211] ?? 0) : 0;
  // linux-loader's BzImage::load refuses protocol < 2.00 and kernels not loaded high (zImage).
  if (version < 0x200 || (loadflags & LOADED_HIGH) === 0) {
    return fail(
      'old-zimage',
      'is an old zImage (boot protocol below 2.00 or not loaded high); Cloud Hypervisor needs a bzImage',
    );
  }
  return { ok: true, format: 'bzimage' };
}

function truncated(needed: number, size: number): string {
  const has = Number.isFinite(size) ? ` (${size} bytes)` : '';
  return `is truncated: its ELF headers point to byte ${needed}, past the end of the file${has}`;
}

function fail(reason: KernelImageProblem, problem: string): KernelImageCheck {
  return { ok: false, reason, problem };
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  return prefix.every((byte, i) => bytes[i] === byte);
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
