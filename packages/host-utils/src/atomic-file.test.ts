import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTempFile, syncDirectory, writeFileAtomic } from './atomic-file.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'host-utils-atomic-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('replaces the content whole and leaves no temp file', async () => {
    const path = join(dir, 'state.json');
    await writeFile(path, 'old');
    await writeFileAtomic(path, 'new content');
    expect(await readFile(path, 'utf8')).toBe('new content');
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  it('creates the file with exactly the mode asked for (0600 by default), whatever the umask', async () => {
    const old = process.umask(0o077);
    try {
      await writeFileAtomic(join(dir, 'private'), 'x');
      await writeFileAtomic(join(dir, 'shared'), 'x', 0o644);
      process.umask(0);
      await writeFileAtomic(join(dir, 'open-umask'), 'x');
    } finally {
      process.umask(old);
    }
    expect((await stat(join(dir, 'private'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'shared'))).mode & 0o777).toBe(0o644);
    expect((await stat(join(dir, 'open-umask'))).mode & 0o777).toBe(0o600);
  });

  it('fails without leaving a temp file when the target cannot be replaced', async () => {
    const target = join(dir, 'a-directory');
    await writeFile(join(dir, 'keep'), '');
    await rm(target, { force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(join(target, 'child'), { recursive: true }));
    await expect(writeFileAtomic(target, 'x')).rejects.toThrow();
    expect((await readdir(dir)).filter(isTempFile)).toEqual([]);
  });
});

describe('isTempFile', () => {
  it('recognises only the names writeFileAtomic uses', () => {
    expect(isTempFile('.0123456789ab.tmp')).toBe(true);
    expect(isTempFile('state.json')).toBe(false);
    expect(isTempFile('.0123456789ab.tmp.bak')).toBe(false);
  });
});

describe('syncDirectory', () => {
  it('syncs a directory and refuses a file', async () => {
    await syncDirectory(dir);
    await writeFile(join(dir, 'f'), '');
    await expect(syncDirectory(join(dir, 'f'))).rejects.toThrow();
  });
});
