import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isProcessAlive } from '@my-hypervisor/host-utils';
import { type ShareSpec, StorageError } from '@my-hypervisor/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeVirtiofsdOptions, writeFakeVirtiofsd } from './__fixtures__/fake-virtiofsd.js';
import { VirtioFsStorage, type VirtioFsStorageOptions } from './virtiofs-storage.js';

// Fake daemons (Node scripts) need no root: these tests cover supervision; test/integration runs the real one.
let base: string;
let hostPath: string;
const storages: VirtioFsStorage[] = [];

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'myhv-vfs-'));
  hostPath = await mkdtemp(join(base, 'share-'));
});

afterAll(async () => {
  for (const storage of storages) {
    for (const record of await storage.list()) await storage.release(record).catch(() => {});
    await storage.close();
  }
  await rm(base, { recursive: true, force: true });
});

async function storageWith(
  fake: FakeVirtiofsdOptions,
  options: Partial<VirtioFsStorageOptions> = {},
): Promise<VirtioFsStorage> {
  const binary = await writeFakeVirtiofsd(base, {
    name: `${fake.flavour}-${fake.behaviour}-${fake.readonly}`,
    ...fake,
  });
  const runDir = options.runDir ?? (await mkdtemp(join(base, 'run-')));
  const storage = new VirtioFsStorage({ binary, ...options, runDir });
  storages.push(storage);
  return storage;
}

const share = (overrides: Partial<ShareSpec> = {}): ShareSpec => ({
  id: 'vm1-data',
  hostPath,
  tag: 'data',
  ...overrides,
});

async function failure(promise: Promise<unknown>): Promise<StorageError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!StorageError.isInstance(error)) throw new Error(`expected a StorageError, got ${String(error)}`);
  return error;
}

describe('VirtioFsStorage options', () => {
  it('throws TypeError without an options object, INVALID_ARGUMENT for bad values', () => {
    expect(() => new VirtioFsStorage(undefined as unknown as VirtioFsStorageOptions)).toThrow(TypeError);
    for (const bad of [
      { runDir: 'relative' },
      { runDir: '/a\nb' },
      { runDir: '/run/x', startTimeoutMs: 0 },
    ]) {
      let error: unknown;
      try {
        new VirtioFsStorage(bad);
      } catch (e) {
        error = e;
      }
      expect(StorageError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
    }
  });

  it('BINARY_MISSING names the package to install', async () => {
    const storage = new VirtioFsStorage({
      runDir: join(base, 'missing-bin'),
      binary: join(base, 'no-such-binary'),
    });
    const error = await failure(storage.prepare(share()));
    expect(error.code).toBe('BINARY_MISSING');
    expect(error.message).toContain('apt-get install --no-install-recommends qemu-system-common');
  });

  it('rejects a socket path over 107 bytes before touching anything', async () => {
    const runDir = join(base, 'r'.repeat(60));
    const storage = await storageWith({ flavour: 'c', behaviour: 'listen' }, { runDir });
    const error = await failure(storage.prepare(share({ id: 'i'.repeat(50) })));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(existsSync(runDir)).toBe(false);
  });

  it('detects the binary once', async () => {
    const storage = await storageWith({ flavour: 'c', behaviour: 'listen' });
    expect(await storage.detect()).toBe(await storage.detect());
  });
});

describe('VirtioFsStorage with fake daemons', () => {
  it('starts the Rust flavour with its own flags (read-only, sandbox none, thread pool, xattr)', async () => {
    const storage = await storageWith(
      { flavour: 'rust', behaviour: 'listen', readonly: true },
      { sandbox: 'none', threadPoolSize: 2, xattr: true },
    );
    const prepared = await storage.prepare(share({ readOnly: true, cache: 'auto' }));
    expect(prepared.record.details).toMatchObject({ flavour: 'rust', version: '1.13.1' });
    expect(prepared.record.readOnly).toBe(true);
    expect(await storage.release(prepared)).toMatchObject({
      stopped: true,
      killed: false,
      socketRemoved: true,
    });
  });

  it('makes the socket, pid file and log 0600 and the run directory 0700, whatever the umask', async () => {
    const storage = await storageWith({ flavour: 'rust', behaviour: 'listen' });
    const old = process.umask(0);
    let prepared: Awaited<ReturnType<VirtioFsStorage['prepare']>>;
    try {
      prepared = await storage.prepare(share({ id: 'vm1-umask' }));
    } finally {
      process.umask(old);
    }
    const modes = await Promise.all(
      (await readdir(storage.runDir)).sort().map(async (name) => {
        const st = await stat(join(storage.runDir, name));
        return [name, st.isSocket() ? 'socket' : 'file', st.mode & 0o777];
      }),
    );
    expect(modes).toEqual([
      ['vm1-umask.log', 'file', 0o600],
      ['vm1-umask.pid', 'file', 0o600],
      ['vm1-umask.sock', 'socket', 0o600],
    ]);
    expect((await stat(storage.runDir)).mode & 0o777).toBe(0o700);
    await storage.release(prepared.record);
  });

  it('UNSUPPORTED for read-only on the C flavour, before starting anything', async () => {
    const storage = await storageWith({ flavour: 'c', behaviour: 'listen' });
    const error = await failure(storage.prepare(share({ readOnly: true })));
    expect(error.code).toBe('UNSUPPORTED');
    expect(error.details.field).toBe('readOnly');
    expect(await readdir(storage.runDir)).toEqual([]);
  });

  it('START_FAILED with the stderr tail when the daemon exits early, leaving nothing behind', async () => {
    const storage = await storageWith({ flavour: 'c', behaviour: 'crash' });
    const error = await failure(storage.prepare(share()));
    expect(error.code).toBe('START_FAILED');
    expect(error.details.exitCode).toBe(3);
    expect(error.details.stderr).toContain('bad things happened');
    expect(error.details.command?.[0]).toContain('c-crash');
    expect(await readdir(storage.runDir)).toEqual([]);
  });

  it('TIMEOUT when the socket never listens; the daemon is killed and its files removed', async () => {
    const storage = await storageWith({ flavour: 'c', behaviour: 'silent' }, { startTimeoutMs: 300 });
    const error = await failure(storage.prepare(share()));
    expect(error.code).toBe('TIMEOUT');
    expect(isProcessAlive(error.details.pid as number)).toBe(false);
    expect(await readdir(storage.runDir)).toEqual([]);
  });

  it('escalates to SIGKILL for a daemon that ignores SIGTERM', async () => {
    const storage = await storageWith({ flavour: 'c', behaviour: 'stubborn' }, { stopTimeoutMs: 200 });
    const prepared = await storage.prepare(share());
    expect(await storage.release(prepared)).toEqual({
      stopped: true,
      killed: true,
      socketRemoved: true,
      pidFileRemoved: true,
      logRemoved: true,
    });
    expect(isProcessAlive(prepared.pid!)).toBe(false);
  });

  it('a second instance on the same runDir sees the live share: ALREADY_EXISTS, adopt, release', async () => {
    const first = await storageWith({ flavour: 'c', behaviour: 'listen' });
    const second = await storageWith({ flavour: 'c', behaviour: 'listen' }, { runDir: first.runDir });
    const prepared = await first.prepare(share());
    expect((await failure(second.prepare(share()))).code).toBe('ALREADY_EXISTS');
    expect((await second.adopt(prepared.record)).pid).toBe(prepared.pid);
    expect(await second.release(prepared.record)).toMatchObject({ stopped: true, killed: false });
    expect(isProcessAlive(prepared.pid!)).toBe(false);
  });

  it('list() finds a daemon whose pid file was removed, and release stops it', async () => {
    const first = await storageWith({ flavour: 'c', behaviour: 'listen' });
    const prepared = await first.prepare(share());
    await unlink(join(first.runDir, 'vm1-data.pid'));
    const other = await storageWith({ flavour: 'c', behaviour: 'listen' }, { runDir: first.runDir });
    const [found] = await other.list();
    expect(found).toMatchObject({
      id: 'vm1-data',
      tag: '',
      pid: prepared.pid,
      socketPath: prepared.socketPath,
    });
    expect(await other.release(found!)).toMatchObject({
      stopped: true,
      socketRemoved: true,
      logRemoved: true,
    });
    expect(await readdir(first.runDir)).toEqual([]);
  });

  it('never signals a recycled pid: a live process that is not our daemon is left alone', async () => {
    const storage = await storageWith({ flavour: 'c', behaviour: 'listen' });
    const prepared = await storage.prepare(share());
    await storage.release(prepared);
    const stranger = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const forged = { ...prepared.record, pid: stranger.pid!, details: { ...prepared.record.details } };
      delete (forged.details as Record<string, unknown>).startTime;
      expect((await failure(storage.adopt(forged))).code).toBe('NOT_FOUND');
      expect(await storage.release(forged)).toMatchObject({ stopped: false });
      expect(isProcessAlive(stranger.pid!)).toBe(true);
    } finally {
      stranger.kill('SIGKILL');
    }
  });

  it('rejects a record from another runDir', async () => {
    const storage = await storageWith({ flavour: 'c', behaviour: 'listen' });
    const prepared = await storage.prepare(share());
    const foreign = { ...prepared.record, socketPath: '/elsewhere/vm1-data.sock' };
    const error = await failure(storage.release(foreign));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.details.field).toBe('record.socketPath');
    await storage.release(prepared);
  });

  it('close() stops attached daemons, is idempotent, and later prepares are ABORTED', async () => {
    const storage = await storageWith({ flavour: 'c', behaviour: 'listen' });
    const prepared = await storage.prepare(share());
    await storage.close();
    await storage[Symbol.asyncDispose]();
    expect(isProcessAlive(prepared.pid!)).toBe(false);
    expect(await readdir(storage.runDir)).toEqual([]);
    expect((await failure(storage.prepare(share({ id: 'other' })))).code).toBe('ABORTED');
  });

  it('close() leaves detached daemons running for a later adopt', async () => {
    const storage = await storageWith({ flavour: 'c', behaviour: 'listen' }, { detached: true });
    const prepared = await storage.prepare(share());
    await storage.close();
    expect(isProcessAlive(prepared.pid!)).toBe(true);
    const next = await storageWith({ flavour: 'c', behaviour: 'listen' }, { runDir: storage.runDir });
    expect((await next.adopt(prepared.record)).pid).toBe(prepared.pid);
    expect(await next.release(prepared.record)).toMatchObject({ stopped: true });
    expect(isProcessAlive(prepared.pid!)).toBe(false);
  });
});
