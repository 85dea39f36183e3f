import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { probeGuestImage } from '@my-hypervisor/chv-client/testing';
import type { DebianPackage } from '../src/debian.js';
import { sha256OfFile } from '../src/debian.js';

/** The probe guest with its PVH note's type changed: an ELF64 x86-64 kernel without a PVH entry. */
export function elfWithoutPvhNote(): Uint8Array {
  const image = probeGuestImage();
  const v = new DataView(image.buffer);
  const phoff = Number(v.getBigUint64(32, true));
  for (let i = 0; i < v.getUint16(56, true); i++) {
    const at = phoff + i * 56;
    if (v.getUint32(at, true) === 4) v.setUint32(Number(v.getBigUint64(at + 8, true)) + 8, 17, true);
  }
  return image;
}

/** A bzImage as the kernel build lays it out: setup sectors, then decompressor code, then the payload. */
export function fakeBzImage(
  payload: Uint8Array,
  { setupSects = 4, version = 0x20f, payloadLength = payload.length } = {},
): Uint8Array {
  const setupEnd = (setupSects + 1) * 512;
  const codeBytes = 0x200; // stands in for the decompressor before the payload
  const bytes = new Uint8Array(setupEnd + codeBytes + payload.length + 0x100);
  const v = new DataView(bytes.buffer);
  bytes[0x1f1] = setupSects;
  v.setUint16(0x1fe, 0xaa55, true);
  bytes.set(new TextEncoder().encode('HdrS'), 0x202);
  v.setUint16(0x206, version, true);
  bytes[0x211] = 0x01; // LOADED_HIGH
  v.setUint32(0x248, codeBytes, true);
  v.setUint32(0x24c, payloadLength, true);
  bytes.set(payload, setupEnd + codeBytes);
  return bytes;
}

/** gzip carries the size in its own trailer; the kernel build appends it for every other compressor. */
export function gzipPayload(data: Uint8Array): Uint8Array {
  return new Uint8Array(gzipSync(data));
}

export function toolPayload(tool: 'xz' | 'zstd', data: Uint8Array): Uint8Array {
  const args = tool === 'xz' ? ['--check=crc32', '--stdout'] : ['-q', '--stdout'];
  return withSize(new Uint8Array(execFileSync(tool, args, { input: data })), data.length);
}

export function withSize(compressed: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(compressed.length + 4);
  out.set(compressed);
  new DataView(out.buffer).setUint32(compressed.length, size, true);
  return out;
}

export function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Builds a `.deb` from `files` (path → bytes) with `dpkg-deb --build`. */
export async function makeDeb(
  dir: string,
  control: { package: string; version: string },
  files: Record<string, Uint8Array | string>,
): Promise<DebianPackage> {
  const root = join(dir, `${control.package}-${control.version}`);
  await mkdir(join(root, 'DEBIAN'), { recursive: true });
  await writeFile(
    join(root, 'DEBIAN/control'),
    `Package: ${control.package}\nVersion: ${control.version}\nArchitecture: amd64\nMaintainer: test <t@example.org>\nDescription: test package\n`,
  );
  for (const [path, data] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), data);
  }
  const path = join(dir, `${control.package}_${control.version}_amd64.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', root, path], { stdio: 'ignore' });
  const sha256 = await sha256OfFile(path);
  if (sha256 === undefined) throw new Error(`no ${path}`);
  return { path, package: control.package, version: control.version, arch: 'amd64', sha256 };
}
