import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileLock, isLockHeld } from './file-lock.js';

async function lockPath() {
  return join(await mkdtemp(join(tmpdir(), 'myhv-lock-')), 'vm.lock');
}

describe('FileLock', () => {
  it('refuses a lock file others could write, or a link, instead of trusting what it says', async () => {
    const path = await lockPath();
    // A pid that is alive (ours): trusted, it would make the lock look held.
    await writeFile(path, JSON.stringify({ pid: process.pid, start: null, nonce: 'x' }), { mode: 0o600 });
    await chmod(path, 0o666);
    await expect(FileLock.acquire(path, { timeoutMs: 50 })).rejects.toMatchObject({
      code: 'UNSAFE_PERMISSIONS',
      details: { path, mode: 0o666 },
    });
    await expect(isLockHeld(path)).rejects.toMatchObject({ code: 'UNSAFE_PERMISSIONS' });
    const link = await lockPath();
    await symlink(path, link);
    await expect(FileLock.acquire(link, { timeoutMs: 50 })).rejects.toMatchObject({
      code: 'UNSAFE_PERMISSIONS',
      details: { path: link },
    });
  });

  it('excludes a second holder until released', async () => {
    const path = await lockPath();
    const first = await FileLock.acquire(path);
    await expect(FileLock.acquire(path, { timeoutMs: 50 })).rejects.toMatchObject({ code: 'BUSY' });
    expect(await isLockHeld(path)).toBe(true);
    await first.release();
    await first.release();
    expect(await isLockHeld(path)).toBe(false);
    await using second = await FileLock.acquire(path, { timeoutMs: 50 });
    expect(second.path).toBe(path);
  });

  it('serialises concurrent holders in one process', async () => {
    const path = await lockPath();
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        await using _lock = await FileLock.acquire(path);
        inside++;
        maxInside = Math.max(maxInside, inside);
        await new Promise((r) => setTimeout(r, 5));
        inside--;
      }),
    );
    expect(maxInside).toBe(1);
  });

  it('breaks the lock of a process that died', async () => {
    const path = await lockPath();
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    await new Promise((r) => child.once('spawn', r));
    const pid = child.pid!;
    await writeFile(path, JSON.stringify({ pid, start: null, nonce: 'dead' }));
    expect(await isLockHeld(path)).toBe(true);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await using lock = await FileLock.acquire(path, { timeoutMs: 1_000 });
    expect(JSON.parse(await readFile(path, 'utf8')).pid).toBe(process.pid);
    expect(lock.path).toBe(path);
  });

  it('treats a recycled pid (same pid, other start time) as dead', async () => {
    const path = await lockPath();
    await writeFile(path, JSON.stringify({ pid: process.pid, start: 1, nonce: 'old' }));
    await using _lock = await FileLock.acquire(path, { timeoutMs: 1_000 });
    expect(JSON.parse(await readFile(path, 'utf8')).nonce).not.toBe('old');
  });

  it('stops waiting when the signal aborts', async () => {
    const path = await lockPath();
    await using _held = await FileLock.acquire(path);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    await expect(
      FileLock.acquire(path, { signal: controller.signal, timeoutMs: 10_000 }),
    ).rejects.toMatchObject({
      code: 'ABORTED',
    });
  });
});
