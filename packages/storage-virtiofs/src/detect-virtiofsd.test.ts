import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StorageError } from '@my-hypervisor/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFakeVirtiofsd } from './__fixtures__/fake-virtiofsd.js';
import {
  C_VIRTIOFSD_PATH,
  detectVirtiofsd,
  findVirtiofsd,
  INSTALL_HINT,
  LIBEXEC_VIRTIOFSD_PATH,
  virtiofsdCandidates,
} from './detect-virtiofsd.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'myhv-detect-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('virtiofsdCandidates', () => {
  it('searches PATH first, then /usr/libexec, then the C build', () => {
    expect(virtiofsdCandidates('/opt/bin:relative:/usr/bin')).toEqual([
      '/opt/bin/virtiofsd',
      '/usr/bin/virtiofsd',
      LIBEXEC_VIRTIOFSD_PATH,
      C_VIRTIOFSD_PATH,
    ]);
  });
});

describe('findVirtiofsd', () => {
  it('prefers a virtiofsd on PATH', async () => {
    const bin = await mkdtemp(join(dir, 'bin-'));
    await writeFakeVirtiofsd(bin, { flavour: 'rust', behaviour: 'listen', name: 'virtiofsd' });
    expect(await findVirtiofsd(undefined, bin)).toBe(join(bin, 'virtiofsd'));
  });

  it('skips files that are not executable', async () => {
    const bin = await mkdtemp(join(dir, 'bin-'));
    await writeFile(join(bin, 'virtiofsd'), '');
    await chmod(join(bin, 'virtiofsd'), 0o644);
    const found = await findVirtiofsd(undefined, bin).catch((e: unknown) => e);
    expect(found).not.toBe(join(bin, 'virtiofsd'));
  });

  it('BINARY_MISSING for an explicit binary that does not exist, naming the package', async () => {
    const error = await findVirtiofsd(join(dir, 'nope')).catch((e: unknown) => e);
    expect(StorageError.isInstance(error) && error.code).toBe('BINARY_MISSING');
    expect((error as StorageError).message).toContain(INSTALL_HINT);
  });
});

describe('detectVirtiofsd', () => {
  it('detects a Rust build and whether it has --readonly', async () => {
    const plain = await writeFakeVirtiofsd(dir, { flavour: 'rust', behaviour: 'listen' });
    const ro = await writeFakeVirtiofsd(dir, {
      flavour: 'rust',
      behaviour: 'listen',
      readonly: true,
      name: 'ro',
    });
    expect(await detectVirtiofsd(plain)).toMatchObject({
      flavour: 'rust',
      version: '1.13.1',
      supportsReadOnly: false,
    });
    expect((await detectVirtiofsd(ro)).supportsReadOnly).toBe(true);
  });

  it('detects a C build', async () => {
    const fake = await writeFakeVirtiofsd(dir, { flavour: 'c', behaviour: 'listen' });
    expect(await detectVirtiofsd(fake)).toMatchObject({ binary: fake, flavour: 'c', version: '7.2.22' });
  });

  it('BINARY_MISSING for a program that is not virtiofsd', async () => {
    const error = await detectVirtiofsd('/bin/true').catch((e: unknown) => e);
    expect(StorageError.isInstance(error) && error.code).toBe('BINARY_MISSING');
  });

  it('ABORTED for an aborted signal', async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await detectVirtiofsd('/bin/true', { signal: controller.signal }).catch((e: unknown) => e);
    expect(StorageError.isInstance(error) && error.code).toBe('ABORTED');
  });

  const cMissing = !existsSync(C_VIRTIOFSD_PATH);
  if (cMissing) console.warn(`skipped: real C virtiofsd detection because ${C_VIRTIOFSD_PATH} is missing`);
  it.skipIf(cMissing)(
    `detects the real ${C_VIRTIOFSD_PATH} as the C build (skipped where it is missing)`,
    async () => {
      const info = await detectVirtiofsd(C_VIRTIOFSD_PATH);
      expect(info.flavour).toBe('c');
      expect(info.version).toMatch(/^\d+\.\d+/);
      expect(info.supportsReadOnly).toBe(false);
    },
  );
});
