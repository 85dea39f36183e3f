import { probeGuestImage } from '@my-hypervisor/chv-client/testing';
import { describe, expect, it } from 'vitest';
import {
  elfWithoutPvhNote,
  fakeBzImage,
  gzipPayload,
  hasTool,
  toolPayload,
  withSize,
} from '../test/fixtures.js';
import { extractVmlinux, findPayload } from './bzimage.js';
import { GuestImageError } from './errors.js';

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    if (!GuestImageError.isInstance(error)) throw error;
    return error.code;
  }
}

describe('extractVmlinux', () => {
  it('unpacks a gzip payload to the PVH ELF it holds', async () => {
    const elf = probeGuestImage();
    expect(await extractVmlinux(fakeBzImage(gzipPayload(elf)))).toEqual(elf);
  });

  it.skipIf(!hasTool('xz'))('unpacks an xz payload (with the size the kernel build appends)', async () => {
    const elf = probeGuestImage();
    const bzImage = fakeBzImage(toolPayload('xz', elf), { setupSects: 27 });
    expect(findPayload(bzImage).compression).toBe('xz');
    expect(await extractVmlinux(bzImage)).toEqual(elf);
  });

  it.skipIf(!hasTool('zstd'))('unpacks a zstd payload', async () => {
    const elf = probeGuestImage();
    expect(await extractVmlinux(fakeBzImage(toolPayload('zstd', elf)))).toEqual(elf);
  });

  it.each([
    ['a file that is no bzImage', () => new TextEncoder().encode('#!/bin/sh\n'.repeat(200)), 'NO_PAYLOAD'],
    [
      'a bzImage naming no payload',
      () => fakeBzImage(gzipPayload(probeGuestImage()), { payloadLength: 0 }),
      'NO_PAYLOAD',
    ],
    [
      'boot protocol 2.07 (no payload fields)',
      () => fakeBzImage(gzipPayload(probeGuestImage()), { version: 0x207 }),
      'NO_PAYLOAD',
    ],
    [
      'an unknown compression',
      () => fakeBzImage(withSize(new TextEncoder().encode('PK\x03\x04 zip?'), 10)),
      'UNSUPPORTED_COMPRESSION',
    ],
    [
      'lzo, known but not unpacked',
      () => fakeBzImage(withSize(Uint8Array.of(0x89, 0x4c, 0x5a, 0x4f, 0, 0xd), 10)),
      'UNSUPPORTED_COMPRESSION',
    ],
    [
      'a payload that is not ELF',
      () => fakeBzImage(gzipPayload(new TextEncoder().encode('not a kernel at all'))),
      'NOT_ELF',
    ],
    ['an ELF without the PVH note', () => fakeBzImage(gzipPayload(elfWithoutPvhNote())), 'NO_PVH_NOTE'],
    [
      'an ELF cut before its notes',
      () => fakeBzImage(gzipPayload(probeGuestImage().slice(0, 130))),
      'TRUNCATED',
    ],
    [
      'a bzImage cut inside its payload',
      () => fakeBzImage(gzipPayload(probeGuestImage())).slice(0, 5 * 512 + 0x200 + 40),
      'TRUNCATED',
    ],
    [
      'a bzImage cut inside its setup header',
      () => fakeBzImage(gzipPayload(probeGuestImage())).slice(0, 0x220),
      'TRUNCATED',
    ],
    [
      'a corrupt gzip payload',
      () => {
        const payload = gzipPayload(probeGuestImage());
        payload.fill(0x55, 12, 40);
        return fakeBzImage(payload);
      },
      'DECOMPRESS_FAILED',
    ],
  ])('refuses %s with %s', async (_title, bytes, code) => {
    expect(await codeOf(extractVmlinux(bytes()))).toBe(code);
  });

  it.skipIf(!hasTool('xz'))('refuses an xz payload whose recorded size does not match', async () => {
    const payload = toolPayload('xz', probeGuestImage());
    new DataView(payload.buffer).setUint32(payload.length - 4, 7, true);
    expect(await codeOf(extractVmlinux(fakeBzImage(payload)))).toBe('DECOMPRESS_FAILED');
  });

  it.skipIf(!hasTool('xz'))('refuses a corrupt xz payload, keeping the tool error', async () => {
    const payload = toolPayload('xz', probeGuestImage());
    payload.fill(0, 30, 60);
    const error = await extractVmlinux(fakeBzImage(payload)).catch((e: unknown) => e);
    expect(GuestImageError.isInstance(error) && error.code).toBe('DECOMPRESS_FAILED');
    expect(GuestImageError.isInstance(error) && error.details.command?.[0]).toBe('xz');
  });

  it('bounds the unpacked size (TOO_LARGE), in-process and through a tool', async () => {
    const big = new Uint8Array(1 << 20);
    expect(await codeOf(extractVmlinux(fakeBzImage(gzipPayload(big)), { maxBytes: 1000 }))).toBe('TOO_LARGE');
    if (hasTool('xz')) {
      expect(await codeOf(extractVmlinux(fakeBzImage(toolPayload('xz', big)), { maxBytes: 1000 }))).toBe(
        'TOO_LARGE',
      );
    }
  });

  it('stops before any work when the signal is already aborted', async () => {
    const signal = AbortSignal.abort();
    expect(await codeOf(extractVmlinux(fakeBzImage(gzipPayload(probeGuestImage())), { signal }))).toBe(
      'ABORTED',
    );
  });
});
