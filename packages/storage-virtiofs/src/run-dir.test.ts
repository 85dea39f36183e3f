import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_SOCKET_PATH_BYTES, type StorageError } from '@my-hypervisor/storage';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureRunDir, sharePaths } from './run-dir.js';

const made: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('sharePaths', () => {
  it('names the socket, pid and log files after the id', () => {
    expect(sharePaths('/run/myhv', 'vm1-home')).toEqual({
      socketPath: '/run/myhv/vm1-home.sock',
      pidFile: '/run/myhv/vm1-home.pid',
      logFile: '/run/myhv/vm1-home.log',
      daemonLockFile: '/var/run/virtiofsd/.run.myhv.vm1-home.sock.pid',
    });
  });

  it('accepts a socket path of 107 bytes and rejects 108 (sun_path holds 108 with the NUL)', () => {
    const dir = `/${'d'.repeat(MAX_SOCKET_PATH_BYTES - '/x.sock'.length - 1)}`;
    expect(Buffer.byteLength(sharePaths(dir, 'x').socketPath)).toBe(107);
    let error: unknown;
    try {
      sharePaths(dir, 'xy');
    } catch (e) {
      error = e;
    }
    expect((error as StorageError).code).toBe('INVALID_ARGUMENT');
  });
});

describe('ensureRunDir', () => {
  it('creates a missing directory with mode 0700', async () => {
    const dir = join(await tempDir('myhv-run-'), 'a', 'b');
    await ensureRunDir(dir);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
  });

  it('accepts an existing private directory and rejects a group- or world-writable one or a file', async () => {
    const base = await tempDir('myhv-run-');
    await mkdir(join(base, 'ok'), { mode: 0o755 });
    await chmod(join(base, 'ok'), 0o755);
    await ensureRunDir(join(base, 'ok'));
    for (const mode of [0o777, 0o770, 0o702]) {
      const dir = join(base, `m${mode.toString(8)}`);
      await mkdir(dir);
      await chmod(dir, mode);
      const error = await ensureRunDir(dir).catch((e: unknown) => e);
      expect((error as StorageError).code).toBe('INVALID_ARGUMENT');
      expect((error as StorageError).details.field).toBe('runDir');
    }
    await writeFile(join(base, 'file'), '');
    expect(((await ensureRunDir(join(base, 'file')).catch((e: unknown) => e)) as StorageError).code).toBe(
      'INVALID_ARGUMENT',
    );
  });
});
