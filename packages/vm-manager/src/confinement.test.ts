import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { allowsDeviceNodes } from './confinement.js';

// Lines shaped like /proc/self/mountinfo's: id, parent, dev, root, mount point, per-mount options, …
const MOUNTINFO = [
  '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
  '23 22 0:21 / /run rw,nosuid,nodev,noexec,relatime shared:2 - tmpfs tmpfs rw,mode=755',
].join('\n');

const dir = mkdtempSync(join(tmpdir(), 'myhv-devnodes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('allowsDeviceNodes', () => {
  it('follows the mount a path is on: nodev refuses, the root file system allows', () => {
    // realpath must resolve: the paths it is asked about exist; the mount table is the one given.
    const onRoot = `${dir}`;
    expect(allowsDeviceNodes(onRoot, MOUNTINFO)).toBe(true);
    expect(allowsDeviceNodes(onRoot, MOUNTINFO.replace('/ / rw,relatime', '/ / rw,nodev'))).toBe(false);
  });

  it('takes the longest mount point above the path, the last mounted when two share one, with escapes undone', () => {
    const table = (point: string, options: string) =>
      `${MOUNTINFO}\n30 22 0:40 / ${point} ${options} - tmpfs x rw`;
    const escaped = dir.replaceAll(' ', '\\040');
    expect(allowsDeviceNodes(dir, table(escaped, 'rw,nodev'))).toBe(false);
    expect(
      allowsDeviceNodes(dir, `${table(escaped, 'rw,nodev')}\n31 22 0:41 / ${escaped} rw - ext4 y rw`),
    ).toBe(true);
    // A mount point that only shares a prefix with the path's name is not above it.
    expect(allowsDeviceNodes(dir, table(`${escaped}x`, 'rw,nodev'))).toBe(true);
  });
});
