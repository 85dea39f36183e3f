import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeGuestImage, writeProbeGuest } from '@my-hypervisor/chv-client/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkKernelImage } from './kernel-image.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'myhv-kernel-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function check(name: string, bytes: Uint8Array | string) {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return checkKernelImage(path);
}

/** The probe guest with its PVH note's type changed: an ELF64 x86-64 kernel that has no PVH entry. */
function withoutPvhNote(): Uint8Array {
  const image = probeGuestImage();
  const v = new DataView(image.buffer);
  const phoff = Number(v.getBigUint64(32, true));
  for (let i = 0; i < v.getUint16(56, true); i++) {
    const at = phoff + i * 56;
    if (v.getUint32(at, true) !== 4) continue;
    const note = Number(v.getBigUint64(at + 8, true));
    expect(v.getUint32(note + 8, true)).toBe(18);
    v.setUint32(note + 8, 17, true);
  }
  return image;
}

/** A minimal bzImage: the real-mode setup header with boot flag, "HdrS", protocol 2.15 and LOADED_HIGH. */
function bzImageHeader({ version = 0x20f, loadflags = 0x01 } = {}): Uint8Array {
  const bytes = new Uint8Array(8192);
  const v = new DataView(bytes.buffer);
  bytes[0x1f1] = 4; // setup_sects
  v.setUint16(0x1fe, 0xaa55, true);
  bytes.set(new TextEncoder().encode('HdrS'), 0x202);
  v.setUint16(0x206, version, true);
  bytes[0x211] = loadflags;
  return bytes;
}

describe('checkKernelImage', () => {
  it('accepts the probe guest (ELF64 x86-64 with the PVH note)', async () => {
    const path = await writeProbeGuest(join(dir, 'probe'));
    expect(await checkKernelImage(path)).toEqual({ ok: true, format: 'pvh-elf' });
  });

  it('accepts a minimal bzImage setup header', async () => {
    expect(await check('bzImage', bzImageHeader())).toEqual({ ok: true, format: 'bzimage' });
  });

  it.each([
    ['an empty file', () => new Uint8Array(0), /^is empty$/, 'empty'],
    ['text', () => 'not a kernel', /^is not a kernel image Cloud Hypervisor can boot/, 'not-a-kernel'],
    [
      'a shell script',
      () => '#!/bin/sh\necho hi\n'.repeat(100),
      /neither an ELF vmlinux .* nor a bzImage/,
      'not-a-kernel',
    ],
    [
      'an ELF without the PVH note',
      withoutPvhNote,
      /without a PVH entry note.*Kernel lacks PVH header/,
      'no-pvh-note',
    ],
    [
      'the probe guest cut inside its ELF header',
      () => probeGuestImage().slice(0, 40),
      /is truncated/,
      'truncated',
    ],
    [
      'the probe guest cut before its notes',
      () => probeGuestImage().slice(0, 130),
      /is truncated: its ELF headers point to byte \d+, past the end of the file \(130 bytes\)/,
      'truncated',
    ],
    [
      'the probe guest cut inside its PVH note',
      () => probeGuestImage().slice(0, 185),
      /is truncated: its ELF headers point to byte 196/,
      'truncated',
    ],
    [
      'a 32-bit ELF',
      () => {
        const image = probeGuestImage();
        image[4] = 1;
        return image;
      },
      /is a 32-bit ELF/,
      'wrong-architecture',
    ],
    [
      'an ELF for another machine',
      () => {
        const image = probeGuestImage();
        new DataView(image.buffer).setUint16(18, 183, true); // aarch64
        return image;
      },
      /another architecture \(e_machine 183\)/,
      'wrong-architecture',
    ],
    ['a zImage (protocol below 2.00)', () => bzImageHeader({ version: 0x1ff }), /old zImage/, 'old-zimage'],
    ['a kernel not loaded high', () => bzImageHeader({ loadflags: 0 }), /old zImage/, 'old-zimage'],
  ])('refuses %s, saying why', async (title, bytes, problem, reason) => {
    const result = await check(title.replaceAll(' ', '-'), bytes());
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.problem).toMatch(problem);
    expect(result.ok ? undefined : result.reason).toBe(reason);
  });
});
