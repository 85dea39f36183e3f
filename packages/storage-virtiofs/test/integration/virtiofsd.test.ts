import { execFile } from 'node:child_process';
import { existsSync, watch } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { isProcessAlive, listPids, readCmdline } from '@my-hypervisor/host-utils';
import { type ShareRecord, StorageError } from '@my-hypervisor/storage';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { C_VIRTIOFSD_PATH, VirtioFsStorage } from '../../src/index.js';
import { isUnixSocketListening } from '../../src/proc.js';
import {
  getVhostUserFeatures,
  VHOST_USER_F_PROTOCOL_FEATURES,
  VHOST_USER_GET_FEATURES,
  VHOST_USER_REPLY_MASK,
  VIRTIO_F_VERSION_1,
} from './vhost-user.js';

const isRoot = process.getuid?.() === 0;
const reason = !existsSync(C_VIRTIOFSD_PATH)
  ? `${C_VIRTIOFSD_PATH} is missing (apt-get install --no-install-recommends qemu-system-common)`
  : !isRoot
    ? 'virtiofsd must run as root'
    : undefined;
if (reason) console.warn(`skipped: real virtiofsd integration tests because ${reason}`);

const execFileAsync = promisify(execFile);
const fixture = join(import.meta.dirname, 'fixtures', 'prepare-share.ts');

async function failure(promise: Promise<unknown>): Promise<StorageError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!StorageError.isInstance(error)) throw new Error(`expected a StorageError, got ${String(error)}`);
  return error;
}

/** Live (non-zombie) processes whose argv mentions `needle`. */
async function processesMentioning(needle: string): Promise<number[]> {
  const found: number[] = [];
  for (const pid of listPids()) {
    const argv = readCmdline(pid);
    if (argv?.some((arg) => arg.includes(needle)) && isProcessAlive(pid)) found.push(pid);
  }
  return found;
}

async function until(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

async function isGone(storage: VirtioFsStorage, record: ShareRecord): Promise<boolean> {
  return storage.adopt(record).then(
    () => false,
    (error: unknown) => StorageError.isInstance(error) && error.code === 'NOT_FOUND',
  );
}

describe.skipIf(reason !== undefined)('VirtioFsStorage with the real C virtiofsd', () => {
  let runDir: string;
  let hostPath: string;
  const storages: VirtioFsStorage[] = [];
  const make = (options: { detached?: boolean; stopTimeoutMs?: number } = {}) => {
    const storage = new VirtioFsStorage({ runDir, binary: C_VIRTIOFSD_PATH, ...options });
    storages.push(storage);
    return storage;
  };

  beforeEach(async () => {
    // Short, under /tmp: socket paths must fit in 107 bytes.
    runDir = await mkdtemp(join('/tmp', `mhv-it-${process.pid}-`));
    hostPath = await mkdtemp(join('/tmp', `mhv-host-${process.pid}-`));
  });

  afterEach(async () => {
    const cleaner = make();
    for (const record of await cleaner.list()) await cleaner.release(record).catch(() => {});
    for (const storage of storages.splice(0)) await storage.close();
    expect(await processesMentioning(runDir)).toEqual([]);
    await rm(runDir, { recursive: true, force: true });
    await rm(hostPath, { recursive: true, force: true });
  });

  for (const detached of [false, true]) {
    it(`(${detached ? 'detached' : 'attached'}) the socket speaks vhost-user; after the front-end leaves, the exit is noticed and release cleans up`, async () => {
      const storage = make({ detached });
      const share = await storage.prepare({ id: 'vm1-home', hostPath, tag: 'home' });
      expect(await isUnixSocketListening(share.socketPath)).toBe(true);
      expect(isProcessAlive(share.pid!)).toBe(true);

      const reply = await getVhostUserFeatures(share.socketPath);
      expect(reply.request).toBe(VHOST_USER_GET_FEATURES);
      expect(reply.flags & VHOST_USER_REPLY_MASK).toBe(VHOST_USER_REPLY_MASK);
      expect(reply.size).toBe(8);
      expect(reply.features & VIRTIO_F_VERSION_1).toBe(VIRTIO_F_VERSION_1);
      expect(reply.features & VHOST_USER_F_PROTOCOL_FEATURES).toBe(VHOST_USER_F_PROTOCOL_FEATURES);

      // virtiofsd serves one front-end: it exits once we disconnect, leaving its socket file behind.
      await until(() => isGone(storage, share.record));
      expect(isProcessAlive(share.pid!)).toBe(false);
      expect(existsSync(share.socketPath)).toBe(true);
      expect(await storage.release(share)).toEqual({
        stopped: false,
        killed: false,
        socketRemoved: true,
        pidFileRemoved: true,
        logRemoved: true,
      });
      expect(await readdir(runDir)).toEqual([]);
    });
  }

  it('ten shares at once all listen; releasing them leaves no process and no socket', async () => {
    const storage = make();
    const shares = await Promise.all(
      Array.from({ length: 10 }, (_, i) => storage.prepare({ id: `vm1-s${i}`, hostPath, tag: `s${i}` })),
    );
    expect(new Set(shares.map((s) => s.pid)).size).toBe(10);
    for (const share of shares) {
      expect(await isUnixSocketListening(share.socketPath)).toBe(true);
      expect(isProcessAlive(share.pid!)).toBe(true);
    }
    expect((await storage.list()).map((r) => r.id)).toHaveLength(10);
    const results = await Promise.all(shares.map((share) => storage.release(share)));
    for (const result of results)
      expect(result).toMatchObject({ stopped: true, killed: false, socketRemoved: true });
    for (const share of shares) expect(isProcessAlive(share.pid!)).toBe(false);
    expect(await processesMentioning(runDir)).toEqual([]);
    expect(await readdir(runDir)).toEqual([]);
  });

  it('a daemon killed from outside is detected: adopt is NOT_FOUND, list still shows it, release cleans up', async () => {
    const storage = make();
    const share = await storage.prepare({ id: 'vm1-home', hostPath, tag: 'home' });
    process.kill(share.pid!, 'SIGKILL');
    await until(async () => !isProcessAlive(share.pid!));
    expect((await failure(storage.adopt(share.record))).code).toBe('NOT_FOUND');
    expect((await storage.list()).map((r) => r.id)).toEqual(['vm1-home']);
    expect(await storage.release(share.record)).toMatchObject({
      stopped: false,
      socketRemoved: true,
      pidFileRemoved: true,
    });
    expect(await readdir(runDir)).toEqual([]);
  });

  it('a VM started again gets a fresh daemon for the same id, without an explicit release', async () => {
    const storage = make();
    const first = await storage.prepare({ id: 'vm1-home', hostPath, tag: 'home' });
    await getVhostUserFeatures(first.socketPath);
    await until(() => isGone(storage, first.record));
    const second = await storage.prepare({ id: 'vm1-home', hostPath, tag: 'home' });
    expect(second.pid).not.toBe(first.pid);
    expect((await getVhostUserFeatures(second.socketPath)).features).not.toBe(0n);
  });

  it('an aborted signal while the daemon is starting leaves nothing behind', async () => {
    const storage = make();
    await storage.detect();
    const controller = new AbortController();
    // The log file is opened just before the spawn: abort as soon as it appears, before the socket listens.
    const watcher = watch(runDir, (_event, name) => {
      if (name === 'vm1-home.log') controller.abort();
    });
    try {
      const error = await failure(
        storage.prepare({ id: 'vm1-home', hostPath, tag: 'home' }, { signal: controller.signal }),
      );
      expect(error.code).toBe('ABORTED');
      expect(error.details.pid).toBeTypeOf('number');
      expect(isProcessAlive(error.details.pid as number)).toBe(false);
    } finally {
      watcher.close();
    }
    expect(await readdir(runDir)).toEqual([]);
    expect(await processesMentioning(runDir)).toEqual([]);
  });

  it('a daemon that does not react to SIGTERM is killed after the grace period', async () => {
    const storage = make({ stopTimeoutMs: 300 });
    const share = await storage.prepare({ id: 'vm1-home', hostPath, tag: 'home' });
    // A stopped process keeps SIGTERM pending; only SIGKILL ends it.
    process.kill(share.pid!, 'SIGSTOP');
    expect(await storage.release(share)).toMatchObject({ stopped: true, killed: true, socketRemoved: true });
    expect(isProcessAlive(share.pid!)).toBe(false);
  });

  it('a detached share is adopted after the process that prepared it has exited', async () => {
    const { stdout } = await execFileAsync(process.execPath, [
      '--import',
      'tsx',
      fixture,
      runDir,
      hostPath,
      'vm1-home',
      'true',
    ]);
    const record = JSON.parse(stdout) as ShareRecord;
    expect(isProcessAlive(record.pid!)).toBe(true);
    const storage = make();
    const adopted = await storage.adopt(record);
    expect(adopted).toMatchObject({
      id: 'vm1-home',
      tag: 'adopted',
      pid: record.pid,
      requiresSharedMemory: true,
    });
    expect((await getVhostUserFeatures(adopted.socketPath)).features & VIRTIO_F_VERSION_1).toBe(
      VIRTIO_F_VERSION_1,
    );
    await until(() => isGone(storage, record));
    expect(await storage.release(adopted)).toMatchObject({
      stopped: false,
      socketRemoved: true,
      pidFileRemoved: true,
    });
  });

  it('an attached share dies with the process that prepared it; release removes what it left', async () => {
    const { stdout } = await execFileAsync(process.execPath, [
      '--import',
      'tsx',
      fixture,
      runDir,
      hostPath,
      'vm1-home',
      'false',
    ]);
    const record = JSON.parse(stdout) as ShareRecord;
    const storage = make();
    await until(() => isGone(storage, record));
    expect(await storage.release(record)).toMatchObject({
      stopped: false,
      socketRemoved: true,
      pidFileRemoved: true,
    });
    expect(await readdir(runDir)).toEqual([]);
  });
});
