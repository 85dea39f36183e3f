import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hypervisorDeviceProblem } from './hypervisor-device.js';

describe('hypervisorDeviceProblem', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hv-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names the first device when none exists, and not the missing alternatives', () => {
    expect(hypervisorDeviceProblem([join(dir, 'kvm'), join(dir, 'mshv')])).toBe(
      `${join(dir, 'kvm')} is missing`,
    );
  });

  it('is undefined when any of them opens read-write', async () => {
    const usable = join(dir, 'usable');
    await writeFile(usable, '');
    expect(hypervisorDeviceProblem([join(dir, 'kvm'), usable])).toBeUndefined();
  });

  it('says why a device that exists cannot be opened', () => {
    // A directory cannot be opened read-write (EISDIR), as root too.
    expect(hypervisorDeviceProblem([dir])).toBe(`${dir} cannot be opened read-write (EISDIR)`);
  });
});
