import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import {
  isProbeGuest,
  PROBE_GUEST_MARKER,
  parseProbeGuestOutput,
  probeGuestImage,
  probeGuestSerial,
  writeProbeGuest,
} from './probe-guest.js';

const QEMU = '/usr/bin/qemu-system-x86_64';

describe('probe guest image', () => {
  const image = probeGuestImage();
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);

  it('is an ELF64 x86-64 executable whose PT_LOAD sits at 1 MiB and covers the whole file', () => {
    expect([...image.subarray(0, 4)]).toEqual([0x7f, 0x45, 0x4c, 0x46]);
    expect(image[4]).toBe(2); // ELFCLASS64
    expect(view.getUint16(18, true)).toBe(62); // EM_X86_64
    const phoff = Number(view.getBigUint64(32, true));
    expect(view.getUint32(phoff, true)).toBe(1); // PT_LOAD
    expect(view.getBigUint64(phoff + 24, true)).toBe(0x10_0000n);
    expect(Number(view.getBigUint64(phoff + 32, true))).toBe(image.length);
  });

  it('carries the Xen PHYS32_ENTRY note pointing into the loaded segment', () => {
    const phoff = Number(view.getBigUint64(32, true));
    const note = phoff + 56;
    expect(view.getUint32(note, true)).toBe(4); // PT_NOTE
    const at = Number(view.getBigUint64(note + 8, true));
    expect(view.getUint32(at + 8, true)).toBe(18);
    expect(new TextDecoder().decode(image.subarray(at + 12, at + 15))).toBe('Xen');
    const entry = view.getUint32(at + 16, true);
    expect(entry).toBeGreaterThan(0x10_0000);
    expect(entry).toBeLessThan(0x10_0000 + image.length);
  });

  it('is recognised by isProbeGuest, and other bytes are not', () => {
    expect(isProbeGuest(probeGuestImage())).toBe(true);
    const changed = probeGuestImage();
    changed[changed.length - 300] = (changed[changed.length - 300] ?? 0) ^ 1;
    expect(isProbeGuest(changed)).toBe(false);
    expect(isProbeGuest(new TextEncoder().encode('not a kernel'))).toBe(false);
  });
});

describe('parseProbeGuestOutput', () => {
  it('reads the marker, the command line and the halt from noisy serial output', () => {
    const serial = `SeaBIOS noise\r\nBooting from ROM..${probeGuestSerial('ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:off')}`;
    // The marker must start a line: firmware noise before it on the same line does not count.
    expect(parseProbeGuestOutput(serial).booted).toBe(false);
    expect(parseProbeGuestOutput(`noise\n${probeGuestSerial('a b')}`)).toEqual({
      booted: true,
      cmdline: 'a b',
      halted: true,
    });
  });

  it('does not report a command line whose line is still being written', () => {
    expect(parseProbeGuestOutput(`${PROBE_GUEST_MARKER}\nmyhv-probe: cmdline=ip=10.0`)).toEqual({
      booted: true,
      cmdline: undefined,
      halted: false,
    });
    expect(parseProbeGuestOutput('')).toEqual({ booted: false, cmdline: undefined, halted: false });
  });
});

// The image is only worth something if a real x86 CPU runs it. KVM may be absent (it is on some CI hosts), so the
// bytes are also run under QEMU's software CPU (TCG), which boots PVH ELF kernels the same way Cloud Hypervisor does.
describe.skipIf(!existsSync(QEMU))('probe guest on a real (emulated) x86 CPU', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('prints its marker and the exact command line QEMU gave it, then halts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'probe-'));
    dirs.push(dir);
    const kernel = await writeProbeGuest(join(dir, 'probe.elf'));
    const serialFile = join(dir, 'serial.log');
    const cmdline = 'console=ttyS0 ip=10.62.0.2::10.62.0.1:255.255.255.0::eth0:off myhv.id=abc';
    const qemu = spawn(
      QEMU,
      [
        '-machine',
        'microvm',
        '-m',
        '64',
        '-nodefaults',
        '-no-reboot',
        '-display',
        'none',
        '-monitor',
        'none',
      ].concat(['-serial', `file:${serialFile}`, '-kernel', kernel, '-append', cmdline]),
      { stdio: 'ignore' },
    );
    try {
      let output = parseProbeGuestOutput('');
      for (let waited = 0; waited < 15_000 && !output.halted; waited += 20) {
        await sleep(20);
        output = parseProbeGuestOutput(await readFile(serialFile, 'utf8').catch(() => ''));
      }
      expect(output).toEqual({ booted: true, cmdline, halted: true });
    } finally {
      qemu.kill('SIGKILL');
    }
  });
});
if (!existsSync(QEMU))
  console.warn(`skipped: probe guest under QEMU, because ${QEMU} is missing (apt install qemu-system-x86)`);
