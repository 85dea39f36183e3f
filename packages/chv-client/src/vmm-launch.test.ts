import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildVmmCommand } from './vmm-command.js';
import { launchVmm } from './vmm-launch.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chv-launch-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('launchVmm', () => {
  it("writes a detached VMM's stderr to a file only we can read, whatever the umask", async () => {
    const vmm = join(dir, 'vmm');
    await writeFile(vmm, '#!/bin/sh\necho "said on stderr" >&2\n');
    await chmod(vmm, 0o755);
    const logFile = join(dir, 'vmm.log');
    const command = buildVmmCommand({
      command: vmm,
      socketPath: join(dir, 'api.sock'),
      logFile,
      detached: true,
    });
    // An earlier run's file, readable by all: made private too, and appended to.
    await writeFile(`${logFile}.stderr`, 'earlier\n', { mode: 0o644 });
    const old = process.umask(0);
    try {
      const launched = await launchVmm(command, {});
      await launched.exited;
    } finally {
      process.umask(old);
    }
    expect(command.stderrFile).toBe(`${logFile}.stderr`);
    expect((await stat(`${logFile}.stderr`)).mode & 0o777).toBe(0o600);
    expect(await readFile(`${logFile}.stderr`, 'utf8')).toBe('earlier\nsaid on stderr\n');
  });
});
