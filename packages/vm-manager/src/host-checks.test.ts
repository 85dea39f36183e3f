import { linkSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { writeProbeGuest } from '@my-hypervisor/chv-client/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { VmManagerError } from './errors.js';
import { assertSpecOnHost } from './host-checks.js';
import { parseVmSpec, type VmSpecInput } from './spec.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function hostFiles() {
  const dir = mkdtempSync(join(tmpdir(), 'myhv-host-checks-'));
  dirs.push(dir);
  const kernel = await writeProbeGuest(join(dir, 'vmlinux'));
  const disk = join(dir, 'a.raw');
  writeFileSync(disk, Buffer.alloc(4096));
  symlinkSync(disk, join(dir, 'link.raw'));
  linkSync(disk, join(dir, 'hard.raw'));
  writeFileSync(join(dir, 'b.raw'), Buffer.alloc(4096));
  return { dir, kernel, disk };
}

async function fieldOf(input: VmSpecInput, hostMemory?: number): Promise<string | undefined> {
  const error = await assertSpecOnHost(parseVmSpec(input), hostMemory).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (error === undefined) return undefined;
  expect(VmManagerError.isInstance(error) && error.code, String(error)).toBe('INVALID_ARGUMENT');
  return (error as VmManagerError).details.field;
}

describe('assertSpecOnHost', () => {
  it("refuses more memory than the host's RAM", async () => {
    const { kernel } = await hostFiles();
    expect(await fieldOf({ name: 'a', kernel, memory: '2G' }, 1024 ** 3)).toBe('memory');
    expect(await fieldOf({ name: 'a', kernel, memory: '1G' }, 1024 ** 3)).toBeUndefined();
    // The default is this host's: a terabyte more than it has is refused.
    const tooMuch = `${Math.ceil(totalmem() / 1024 ** 3) + 1024}G`;
    expect(await fieldOf({ name: 'a', kernel, memory: tooMuch })).toBe('memory');
  });

  it('refuses one file as two disks, through a symlink or a hard link', async () => {
    const { dir, kernel, disk } = await hostFiles();
    const disks = (...paths: string[]) => paths.map((path) => ({ path }));
    expect(await fieldOf({ name: 'a', kernel, disks: disks(disk, join(dir, 'link.raw')) })).toBe(
      'disks[1].path',
    );
    expect(
      await fieldOf({ name: 'a', kernel, disks: disks(join(dir, 'b.raw'), disk, join(dir, 'hard.raw')) }),
    ).toBe('disks[2].path');
    expect(await fieldOf({ name: 'a', kernel, disks: disks(disk, join(dir, 'b.raw')) })).toBeUndefined();
  });
});
