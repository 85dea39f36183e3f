import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from './errors.js';
import { createMemoryStorage } from './memory-storage.js';

let hostPath: string;
beforeAll(async () => {
  hostPath = await mkdtemp(join(tmpdir(), 'myhv-mem-'));
});
afterAll(async () => {
  await rm(hostPath, { recursive: true, force: true });
});

describe('createMemoryStorage', () => {
  it('crash() makes adopt NOT_FOUND while release still reports the cleanup', async () => {
    const storage = createMemoryStorage();
    const share = await storage.prepare({ id: 'vm1-a', hostPath, tag: 'a' });
    expect(storage.running()).toEqual(['vm1-a']);
    expect(storage.crash('vm1-a')).toBe(true);
    expect(storage.crash('vm1-a')).toBe(false);
    const error = await storage.adopt(share.record).catch((e: unknown) => e);
    expect(StorageError.isInstance(error) && error.code).toBe('NOT_FOUND');
    expect((await storage.list()).map((r) => r.id)).toEqual(['vm1-a']);
    expect(await storage.release(share)).toMatchObject({ stopped: false, socketRemoved: true });
    expect(await storage.list()).toEqual([]);
  });

  it('a crashed id can be prepared again without a release', async () => {
    const storage = createMemoryStorage();
    await storage.prepare({ id: 'x', hostPath, tag: 'a' });
    storage.crash('x');
    expect((await storage.prepare({ id: 'x', hostPath, tag: 'b' })).tag).toBe('b');
  });

  it('failPrepare injects an error for rollback tests', async () => {
    const storage = createMemoryStorage({
      failPrepare: (share) =>
        share.tag === 'bad' ? new StorageError('START_FAILED', 'injected') : undefined,
    });
    const error = await storage.prepare({ id: 'y', hostPath, tag: 'bad' }).catch((e: unknown) => e);
    expect(StorageError.isInstance(error) && error.code).toBe('START_FAILED');
    expect(storage.running()).toEqual([]);
    await storage.prepare({ id: 'y', hostPath, tag: 'good' });
  });

  it('rejects a record written by another backend', async () => {
    const storage = createMemoryStorage();
    const share = await storage.prepare({ id: 'z', hostPath, tag: 'a' });
    const error = await storage.adopt({ ...share.record, backend: 'virtiofsd' }).catch((e: unknown) => e);
    expect(StorageError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
  });
});
