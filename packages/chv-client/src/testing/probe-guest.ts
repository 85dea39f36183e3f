import { chmod, writeFile } from 'node:fs/promises';

/**
 * The probe guest: a 1 KiB PVH kernel that proves a VMM really runs guests. It writes three lines to the serial
 * port (COM1, 0x3f8) and halts:
 *
 *   myhv-probe: booted
 *   myhv-probe: cmdline=<the kernel command line it was given>
 *   myhv-probe: halted
 *
 * The bytes are assembled here (no toolchain at run time). Layout: an ELF64 x86-64 executable with one PT_LOAD at
 * 1 MiB covering the whole file and a PT_NOTE holding the Xen `XEN_ELFNOTE_PHYS32_ENTRY` note (type 18), which is
 * how Cloud Hypervisor (and QEMU) find a PVH entry. The entry runs in 32-bit protected mode with paging off and
 * `%ebx` pointing at `hvm_start_info` (magic 0x336ec578; `cmdline_paddr` at offset 24). It never reacts to the
 * ACPI power button, so stopping it exercises the whole stop ladder.
 */

/** The first serial line of a probe guest that booted. */
export const PROBE_GUEST_MARKER = 'myhv-probe: booted';
const CMDLINE_PREFIX = 'myhv-probe: cmdline=';
const HALTED_LINE = 'myhv-probe: halted';

const LOAD_ADDRESS = 0x10_0000;
const HVM_START_MAGIC = 0x336e_c578;
const PT_LOAD = 1;
const PT_NOTE = 4;
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

/** What the probe guest printed, parsed from a serial log. */
export interface ProbeGuestOutput {
  /** The marker line was seen. */
  readonly booted: boolean;
  /** The command line the guest received, once its line is complete. */
  readonly cmdline: string | undefined;
  /** The last line was seen: the guest has finished and sits in `hlt`. */
  readonly halted: boolean;
}

/** Parses serial output (which may also hold firmware or VMM noise) for the probe guest's lines. */
export function parseProbeGuestOutput(serial: string): ProbeGuestOutput {
  const lines = serial.split('\n').map((line) => line.replace(/\r$/, ''));
  const start = lines.indexOf(PROBE_GUEST_MARKER);
  if (start < 0) return { booted: false, cmdline: undefined, halted: false };
  const rest = lines.slice(start + 1);
  const cmdlineLine = rest.length > 1 ? rest[0] : undefined;
  const cmdline = cmdlineLine?.startsWith(CMDLINE_PREFIX)
    ? cmdlineLine.slice(CMDLINE_PREFIX.length)
    : undefined;
  return { booted: true, cmdline, halted: rest.includes(HALTED_LINE) };
}

let cached: Uint8Array | undefined;

function image(): Uint8Array {
  cached ??= assembleProbeGuest();
  return cached;
}

/** The probe guest's ELF bytes (a fresh copy each call). */
export function probeGuestImage(): Uint8Array {
  return image().slice();
}

/** Writes the probe guest to `path` (mode 0644) and returns `path`. */
export async function writeProbeGuest(path: string): Promise<string> {
  await writeFile(path, probeGuestImage());
  await chmod(path, 0o644);
  return path;
}

/** Where the unloadable probe guest asks to be loaded: 256 GiB, beyond the memory of any VM a test makes. */
const UNLOADABLE_ADDRESS = 0x40_0000_0000n;

/**
 * The probe guest with its load segment moved to 256 GiB: it passes every kernel header check (ELF64 with the
 * PVH note), and the VMM then fails to load it at `vm.boot` — a real boot failure, the same on the real VMM
 * (`Cannot load the kernel into memory`) and the simulator, for tests of what a failed boot undoes.
 */
export function unloadableProbeGuestImage(): Uint8Array {
  const bytes = Buffer.from(image());
  const phoff = Number(bytes.readBigUInt64LE(32));
  bytes.writeBigUInt64LE(UNLOADABLE_ADDRESS, phoff + 16); // p_vaddr of the PT_LOAD
  bytes.writeBigUInt64LE(UNLOADABLE_ADDRESS, phoff + 24); // p_paddr
  return new Uint8Array(bytes);
}

/** Writes {@link unloadableProbeGuestImage} to `path` (mode 0644) and returns `path`. */
export async function writeUnloadableProbeGuest(path: string): Promise<string> {
  await writeFile(path, unloadableProbeGuestImage());
  await chmod(path, 0o644);
  return path;
}

/** True when `bytes` are the unloadable probe guest (the simulator fails `vm.boot` for it, as the real VMM does). */
export function isUnloadableProbeGuest(bytes: Uint8Array): boolean {
  const unloadable = unloadableProbeGuestImage();
  return bytes.length === unloadable.length && bytes.every((byte, i) => byte === unloadable[i]);
}

/** True when `bytes` are the probe guest (the simulator plays its serial output for such a kernel). */
export function isProbeGuest(bytes: Uint8Array): boolean {
  const probe = image();
  return bytes.length === probe.length && bytes.every((byte, i) => byte === probe[i]);
}

/** The serial output the probe guest writes when booted with `cmdline` (what tests expect to read). */
export function probeGuestSerial(cmdline: string): string {
  return `${PROBE_GUEST_MARKER}\n${CMDLINE_PREFIX}${cmdline}\n${HALTED_LINE}\n`;
}

/** A tiny 32-bit assembler: bytes, labels and the few fixups this guest needs. */
class Code {
  readonly bytes: number[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: { at: number; label: string; kind: 'rel8' | 'rel32' | 'abs32' }[] = [];

  emit(...bytes: number[]): this {
    this.bytes.push(...bytes);
    return this;
  }
  label(name: string): this {
    this.labels.set(name, this.bytes.length);
    return this;
  }
  imm32(value: number): this {
    return this.emit(value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff);
  }
  /** An absolute 32-bit address of a label (resolved against `base`). */
  abs32(label: string): this {
    this.fixups.push({ at: this.bytes.length, label, kind: 'abs32' });
    return this.emit(0, 0, 0, 0);
  }
  rel8(label: string): this {
    this.fixups.push({ at: this.bytes.length, label, kind: 'rel8' });
    return this.emit(0);
  }
  rel32(label: string): this {
    this.fixups.push({ at: this.bytes.length, label, kind: 'rel32' });
    return this.emit(0, 0, 0, 0);
  }
  ascii(text: string): this {
    for (const ch of text) this.emit(ch.charCodeAt(0));
    return this;
  }
  link(base: number): Uint8Array {
    const out = Uint8Array.from(this.bytes);
    const view = new DataView(out.buffer);
    for (const { at, label, kind } of this.fixups) {
      const target = this.labels.get(label);
      if (target === undefined) throw new Error(`probe guest: unknown label ${label}`);
      if (kind === 'abs32') view.setUint32(at, base + target, true);
      else if (kind === 'rel32') view.setInt32(at, target - (at + 4), true);
      else {
        const rel = target - (at + 1);
        if (rel < -128 || rel > 127) throw new Error(`probe guest: ${label} out of rel8 range`);
        view.setInt8(at, rel);
      }
    }
    return out;
  }
}

function probeCode(): Code {
  const c = new Code();
  c.label('entry')
    .emit(0xfc) // cld: lodsb walks forwards
    .emit(0xbc)
    .abs32('stack_top') // mov esp, stack_top
    .emit(0xbe)
    .abs32('marker') // mov esi, marker
    .emit(0xe8)
    .rel32('puts') // call puts
    .emit(0xbe)
    .abs32('cmdline_prefix') // mov esi, cmdline_prefix
    .emit(0xe8)
    .rel32('puts')
    .emit(0x81, 0x3b)
    .imm32(HVM_START_MAGIC) // cmp dword [ebx], magic
    .emit(0x75)
    .rel8('after_cmdline') // jne after_cmdline
    .emit(0x8b, 0x73, 0x18) // mov esi, [ebx+24]   (cmdline_paddr, low half: below 4 GiB by the PVH ABI)
    .emit(0x85, 0xf6) // test esi, esi
    .emit(0x74)
    .rel8('after_cmdline') // jz after_cmdline
    .emit(0xe8)
    .rel32('puts')
    .label('after_cmdline')
    .emit(0xbe)
    .abs32('halted') // mov esi, "\n" + halted line
    .emit(0xe8)
    .rel32('puts')
    .label('halt')
    .emit(0xf4) // hlt (interrupts are off: the vCPU sleeps)
    .emit(0xeb)
    .rel8('halt') // jmp halt
    .label('puts') // writes the NUL-terminated string at esi to COM1
    .emit(0x66, 0xba, 0xf8, 0x03) // mov dx, 0x3f8
    .label('puts_loop')
    .emit(0xac) // lodsb
    .emit(0x84, 0xc0) // test al, al
    .emit(0x74)
    .rel8('puts_done') // jz puts_done
    .emit(0xee) // out dx, al
    .emit(0xeb)
    .rel8('puts_loop') // jmp puts_loop
    .label('puts_done')
    .emit(0xc3) // ret
    .label('marker')
    .ascii(`${PROBE_GUEST_MARKER}\n\0`)
    .label('cmdline_prefix')
    .ascii(`${CMDLINE_PREFIX}\0`)
    .label('halted')
    .ascii(`\n${HALTED_LINE}\n\0`);
  while (c.bytes.length % 16) c.emit(0);
  c.label('stack_bottom');
  c.emit(...new Array<number>(256).fill(0));
  c.label('stack_top');
  return c;
}

function assembleProbeGuest(): Uint8Array {
  const ehdrSize = 64;
  const phdrSize = 56;
  const phnum = 2;
  const noteOffset = ehdrSize + phdrSize * phnum;
  const noteSize = 12 + 4 + 4; // header, "Xen\0", 4-byte descriptor
  // Four zero bytes after the note: QEMU reads the descriptor as a 64-bit value.
  const codeOffset = noteOffset + noteSize + 4;
  const code = probeCode().link(LOAD_ADDRESS + codeOffset);
  const entry = LOAD_ADDRESS + codeOffset;
  const fileSize = codeOffset + code.length;

  const out = new Uint8Array(fileSize);
  const v = new DataView(out.buffer);
  // ELF header.
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0); // magic, ELFCLASS64, little-endian, version 1, SysV
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, 62, true); // EM_X86_64
  v.setUint32(20, 1, true); // EV_CURRENT
  v.setBigUint64(24, BigInt(entry), true); // e_entry
  v.setBigUint64(32, BigInt(ehdrSize), true); // e_phoff
  v.setBigUint64(40, 0n, true); // e_shoff: no sections
  v.setUint32(48, 0, true); // e_flags
  v.setUint16(52, ehdrSize, true);
  v.setUint16(54, phdrSize, true);
  v.setUint16(56, phnum, true);
  v.setUint16(58, 64, true); // e_shentsize
  v.setUint16(60, 0, true); // e_shnum
  v.setUint16(62, 0, true); // e_shstrndx

  const phdr = (
    index: number,
    type: number,
    flags: number,
    offset: number,
    addr: number,
    filesz: number,
    memsz: number,
    align: number,
  ) => {
    const at = ehdrSize + index * phdrSize;
    v.setUint32(at, type, true);
    v.setUint32(at + 4, flags, true);
    v.setBigUint64(at + 8, BigInt(offset), true);
    v.setBigUint64(at + 16, BigInt(addr), true); // p_vaddr
    v.setBigUint64(at + 24, BigInt(addr), true); // p_paddr
    v.setBigUint64(at + 32, BigInt(filesz), true);
    v.setBigUint64(at + 40, BigInt(memsz), true);
    v.setBigUint64(at + 48, BigInt(align), true);
  };
  phdr(0, PT_LOAD, 7, 0, LOAD_ADDRESS, fileSize, fileSize, 0x1000); // RWX: code, strings and stack in one segment
  phdr(1, PT_NOTE, 4, noteOffset, LOAD_ADDRESS + noteOffset, noteSize, noteSize, 4);

  // The Xen PHYS32_ENTRY note.
  v.setUint32(noteOffset, 4, true); // namesz ("Xen\0")
  v.setUint32(noteOffset + 4, 4, true); // descsz
  v.setUint32(noteOffset + 8, XEN_ELFNOTE_PHYS32_ENTRY, true);
  out.set([0x58, 0x65, 0x6e, 0], noteOffset + 12);
  v.setUint32(noteOffset + 16, entry, true);

  out.set(code, codeOffset);
  return out;
}
