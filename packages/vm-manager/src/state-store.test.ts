import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { vmRecord } from '../test/fixtures/vm-record.js';
import { VmManagerError } from './errors.js';
import { LISTING_CACHE_FILE } from './listing-cache.js';
import { StateStore, type StateStoreOptions, type VmRecord } from './state-store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A store over a fresh state directory holding `names` (stopped VMs). `settleMs: 0` caches every record. */
async function storeWith(names: string[], options: StateStoreOptions = { settleMs: 0 }) {
  const dir = mkdtempSync(join(tmpdir(), 'myhv-state-store-'));
  dirs.push(dir);
  const store = new StateStore(dir, options);
  await store.init();
  for (const [i, name] of names.entries()) {
    await store.claim(name);
    await store.write(vmRecord(name, i));
  }
  return store;
}

const statuses = (store: StateStore) =>
  Object.fromEntries(store.list().records.map((r) => [r.name, r.status]));
const stateFile = (store: StateStore, name: string) => join(store.vmDir(name), 'state.json');
const cacheFile = (store: StateStore) => join(store.root, LISTING_CACHE_FILE);

type CacheEntry = [string, number, number, number, number, VmRecord];
function cacheEntries(store: StateStore): CacheEntry[] {
  return (JSON.parse(readFileSync(cacheFile(store), 'utf8')) as { entries: CacheEntry[] }).entries;
}

/** A fixed mtime (whole seconds, so it survives utimes exactly) that tests put on a state file before and after a change. */
const OLD_MTIME_S = 1_700_000_000;

/** Sets a state file's mtime to OLD_MTIME_S, so that only its inode, size or ctime can tell a change. */
function pinMtime(path: string): void {
  utimesSync(path, OLD_MTIME_S, OLD_MTIME_S);
  expect(statSync(path).mtimeMs).toBe(OLD_MTIME_S * 1000);
}

describe('StateStore.list and its listing cache', () => {
  it('lists what is on disk and serves unchanged records from the cache', async () => {
    const store = await storeWith(['a', 'b', 'c']);
    const uncached = new StateStore(join(store.root, '..'), { listingCache: false });
    expect(store.list()).toEqual(uncached.list());
    expect(cacheEntries(store).map((e) => e[0])).toEqual(['a', 'b', 'c']);
    expect(store.list()).toEqual(uncached.list());
    // A cached record with its stamp intact is what list() returns: the cache is really used.
    const text = readFileSync(cacheFile(store), 'utf8');
    writeFileSync(cacheFile(store), text.replace('"name":"b","spec"', '"name":"b","marker":1,"spec"'));
    expect(store.list().records.find((r) => r.name === 'b')).toHaveProperty('marker', 1);
    expect(uncached.list().records.find((r) => r.name === 'b')).not.toHaveProperty('marker');
  });

  it('keeps records with text outside ASCII intact through the cache', async () => {
    const store = await storeWith([]);
    const record = vmRecord('intl');
    record.spec.kernel = '/boot/vmlinüz-😀';
    record.spec.cmdline = 'console=ttyS0 — ünïcödé \u2028';
    await store.claim('intl');
    await store.write(record);
    store.list();
    expect(readFileSync(cacheFile(store), 'latin1')).toMatch(/^[ -~]*$/);
    expect(store.list().records[0]!.spec).toMatchObject({
      kernel: record.spec.kernel,
      cmdline: record.spec.cmdline,
    });
    expect(cacheEntries(store)).toHaveLength(1);
  });

  it('sees a VM rewritten by another StateStore with the same size and mtime', async () => {
    const store = await storeWith(['a', 'b']);
    pinMtime(stateFile(store, 'b'));
    store.list();
    expect(cacheEntries(store).find((e) => e[0] === 'b')![3]).toBe(OLD_MTIME_S * 1000);
    const writer = new StateStore(join(store.root, '..'));
    const record = (await writer.read('b'))!;
    record.status = 'running'; // as long as 'stopped'
    const sizeBefore = statSync(stateFile(store, 'b')).size;
    await writer.write(record);
    expect(statSync(stateFile(store, 'b')).size).toBe(sizeBefore);
    pinMtime(stateFile(store, 'b'));
    expect(statuses(store)).toEqual({ a: 'stopped', b: 'running' });
  });

  it('sees a state file edited in place (same inode, size and mtime)', async () => {
    const store = await storeWith(['a', 'b']);
    const path = stateFile(store, 'b');
    pinMtime(path);
    store.list();
    const before = statSync(path);
    writeFileSync(path, readFileSync(path, 'utf8').replace('"stopped"', '"running"'));
    expect(statSync(path)).toMatchObject({ ino: before.ino, size: before.size });
    pinMtime(path);
    expect(statuses(store)).toEqual({ a: 'stopped', b: 'running' });
  });

  it('sees added and removed VMs and drops removed ones from the cache', async () => {
    const store = await storeWith(['a', 'b']);
    store.list();
    await store.remove('a');
    await store.claim('c');
    await store.write(vmRecord('c', 2));
    expect(statuses(store)).toEqual({ b: 'stopped', c: 'stopped' });
    expect(cacheEntries(store).map((e) => e[0])).toEqual(['b', 'c']);
    // Removed and created again under the same name: the new record, not the cached one.
    await store.remove('b');
    await store.claim('b');
    await store.write({ ...vmRecord('b', 7), status: 'paused' });
    expect(store.list().records.find((r) => r.name === 'b')).toMatchObject({
      id: vmRecord('b', 7).id,
      status: 'paused',
    });
  });

  it('does not cache records that changed within the settle time, and lists them all the same', async () => {
    const store = await storeWith(['a', 'b'], {});
    expect(statuses(store)).toEqual({ a: 'stopped', b: 'stopped' });
    // Just written: nothing is old enough to be cached, so no cache file is needed.
    expect(readdirSync(store.root)).not.toContain(LISTING_CACHE_FILE);
    const record = (await store.read('a'))!;
    record.status = 'running';
    await store.write(record);
    expect(statuses(store)).toEqual({ a: 'running', b: 'stopped' });
  });

  it.each([
    ['garbage', '{"format":'],
    ['another format', JSON.stringify({ format: 'myhv-vm-listing-cache/0', entries: [] })],
    [
      'damaged entries',
      JSON.stringify({ format: 'myhv-vm-listing-cache/1', entries: [['a', 1], 'x', null] }),
    ],
  ])('ignores a cache holding %s and replaces it', async (_what, content) => {
    const store = await storeWith(['a', 'b']);
    writeFileSync(cacheFile(store), content);
    expect(statuses(store)).toEqual({ a: 'stopped', b: 'stopped' });
    expect(cacheEntries(store).map((e) => e[0])).toEqual(['a', 'b']);
  });

  it('never serves a cached record whose shape or name does not match its VM', async () => {
    const store = await storeWith(['a', 'b']);
    store.list();
    const entries = cacheEntries(store);
    // The stamps are right, the records are not: b's entry holds a's record, a's lacks a schema.
    entries[1]![5] = entries[0]![5];
    entries[0]![5] = { ...entries[0]![5], schema: 2 } as unknown as VmRecord;
    writeFileSync(cacheFile(store), JSON.stringify({ format: 'myhv-vm-listing-cache/1', entries }));
    expect(store.list().records.map((r) => [r.name, r.id])).toEqual([
      ['a', vmRecord('a', 0).id],
      ['b', vmRecord('b', 1).id],
    ]);
  });

  it('lists without a cache when the cache cannot be written', async () => {
    const store = await storeWith(['a']);
    mkdirSync(cacheFile(store));
    expect(statuses(store)).toEqual({ a: 'stopped' });
    expect(statuses(store)).toEqual({ a: 'stopped' });
    expect(readdirSync(store.root).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('reports missing and corrupt state files as unreadable and never caches them', async () => {
    const store = await storeWith(['ok']);
    mkdirSync(store.vmDir('ghost'));
    mkdirSync(store.vmDir('broken'));
    writeFileSync(stateFile(store, 'broken'), '{"schema":1,');
    expect(store.list()).toMatchObject({
      records: [{ name: 'ok' }],
      unreadable: [
        { name: 'broken', code: 'CORRUPT_STATE', path: stateFile(store, 'broken') },
        { name: 'ghost', code: 'CORRUPT_STATE', path: stateFile(store, 'ghost') },
      ],
    });
    expect(cacheEntries(store).map((e) => e[0])).toEqual(['ok']);
    await store.write(vmRecord('broken', 3));
    expect(store.list()).toMatchObject({
      records: [{ name: 'broken' }, { name: 'ok' }],
      unreadable: [{ name: 'ghost' }],
    });
  });

  it('writes no cache with listingCache: false', async () => {
    const store = await storeWith(['a'], { listingCache: false, settleMs: 0 });
    expect(statuses(store)).toEqual({ a: 'stopped' });
    expect(readdirSync(store.root)).not.toContain(LISTING_CACHE_FILE);
  });

  it('sweeps temp files that a dying cache writer left', async () => {
    const store = await storeWith(['a']);
    const leftover = join(store.root, `${LISTING_CACHE_FILE}.4242.1700000000000.0.tmp`);
    writeFileSync(leftover, '{');
    expect(await store.sweepTempFiles()).toEqual([leftover]);
    expect(readdirSync(store.root)).not.toContain(leftover.split('/').at(-1));
  });
});

async function unsafeRead(store: StateStore, name: string): Promise<VmManagerError> {
  const error = await store.read(name).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(VmManagerError.isInstance(error), `${name}: ${String(error)}`).toBe(true);
  return error as VmManagerError;
}

/** Calls `check` every 20 ms until it throws (for at most 5 s): what it threw, and after how long. */
async function firstThrow(check: () => void): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  while (performance.now() - started < 5000) {
    try {
      check();
    } catch (error) {
      return { error, ms: performance.now() - started };
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { error: undefined, ms: performance.now() - started };
}

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('skipped: a record another user owns, because this is not root (chown needs it)');

describe('StateStore: records others own or could write are never used', () => {
  it('lists them as unreadable (UNSAFE_PERMISSIONS, with the path) and read() refuses them', async () => {
    const store = await storeWith(['ok', 'open', 'open-dir', 'link']);
    // Cached first: a change of mode alone must not let a cached record through.
    store.list();
    chmodSync(stateFile(store, 'open'), 0o666);
    chmodSync(store.vmDir('open-dir'), 0o777);
    const elsewhere = join(store.root, '..', 'link.json');
    writeFileSync(elsewhere, JSON.stringify(vmRecord('link')), { mode: 0o600 });
    rmSync(stateFile(store, 'link'));
    symlinkSync(elsewhere, stateFile(store, 'link'));
    const expected = {
      records: [{ name: 'ok' }],
      unreadable: [
        { name: 'link', code: 'UNSAFE_PERMISSIONS', path: stateFile(store, 'link') },
        { name: 'open', code: 'UNSAFE_PERMISSIONS', path: stateFile(store, 'open') },
        { name: 'open-dir', code: 'UNSAFE_PERMISSIONS', path: store.vmDir('open-dir') },
      ],
    };
    expect(store.list()).toMatchObject(expected);
    expect(new StateStore(join(store.root, '..'), { listingCache: false }).list()).toMatchObject(expected);
    expect(store.list().unreadable[1]!.reason).toMatch(/writable by group or others .*mode 666/);
    for (const name of ['open', 'open-dir', 'link']) {
      expect((await unsafeRead(store, name)).code).toBe('UNSAFE_PERMISSIONS');
    }
    expect(await store.read('ok')).toMatchObject({ name: 'ok' });
  });

  it.skipIf(!isRoot)('treats a record another user owns the same way', async () => {
    const store = await storeWith(['ok', 'theirs']);
    chownSync(stateFile(store, 'theirs'), 65534, 65534);
    expect(store.list()).toMatchObject({
      records: [{ name: 'ok' }],
      unreadable: [{ name: 'theirs', code: 'UNSAFE_PERMISSIONS', path: stateFile(store, 'theirs') }],
    });
    expect((await unsafeRead(store, 'theirs')).details).toMatchObject({ uid: 65534 });
  });

  it('refuses to list from, or create in, a state directory others could write', async () => {
    const store = await storeWith(['a']);
    for (const path of [store.root, join(store.root, '..')]) {
      chmodSync(path, 0o777);
      const errors = [() => store.list(), () => store.assertTrusted()].map((fn) => {
        try {
          fn();
          return undefined;
        } catch (error) {
          return error;
        }
      });
      errors.push(await store.init().catch((error: unknown) => error));
      for (const error of errors) {
        expect(VmManagerError.isInstance(error) && error.code).toBe('UNSAFE_PERMISSIONS');
        expect((error as VmManagerError).details.path).toBe(path);
      }
      chmodSync(path, 0o700);
    }
    expect(statuses(store)).toEqual({ a: 'stopped' });
  });

  it('notices a directory on the way loosened after a passed check, within a second', async () => {
    const top = mkdtempSync(join(tmpdir(), 'myhv-state-store-'));
    dirs.push(top);
    const store = new StateStore(join(top, 'a', 'state'));
    await store.init();
    store.assertTrusted();
    chmodSync(join(top, 'a'), 0o777);
    const { error, ms } = await firstThrow(() => store.assertTrusted());
    expect(VmManagerError.isInstance(error) && error.details.path).toBe(join(top, 'a'));
    expect(ms).toBeLessThan(2500);
    // The state directory itself changed (a new stamp): refused at once, without waiting for the recheck.
    chmodSync(join(top, 'a'), 0o755);
    store.assertTrusted();
    chmodSync(store.stateDir, 0o777);
    expect(() => store.assertTrusted()).toThrow(/writable by group or others/);
  });

  it('ignores a listing cache others could write: it holds records', async () => {
    const store = await storeWith(['a']);
    store.list();
    // The stamps stay valid; only the record is forged. Served while the cache is ours and private:
    writeFileSync(cacheFile(store), readFileSync(cacheFile(store), 'utf8').replace('"stopped"', '"running"'));
    expect(statuses(store)).toEqual({ a: 'running' });
    chmodSync(cacheFile(store), 0o666);
    expect(statuses(store)).toEqual({ a: 'stopped' });
  });
});

describe('StateStore.read of a state file it read before', () => {
  it('gives every caller its own record and sees every change: rewrite, edit in place, mode, link', async () => {
    const store = await storeWith(['a', 'b']);
    const path = stateFile(store, 'b');
    const first = (await store.read('b'))!;
    first.status = 'running';
    first.spec.cpus = 64;
    expect(await store.read('b')).toMatchObject({ status: 'stopped', spec: { cpus: 1 } });
    // Another store rewrites it (a new inode), then it is edited in place (same inode, size and mtime).
    const writer = new StateStore(join(store.root, '..'));
    await writer.write({ ...(await writer.read('b'))!, status: 'running' });
    expect(await store.read('b')).toMatchObject({ status: 'running' });
    pinMtime(path);
    await store.read('b');
    const before = statSync(path);
    writeFileSync(path, readFileSync(path, 'utf8').replace('"running"', '"stopped"'));
    pinMtime(path);
    expect(statSync(path)).toMatchObject({ ino: before.ino, size: before.size, mtimeMs: before.mtimeMs });
    expect(await store.read('b')).toMatchObject({ status: 'stopped' });
    // Loosened after it was read: refused, though the bytes did not change.
    chmodSync(path, 0o666);
    expect((await unsafeRead(store, 'b')).details.path).toBe(path);
    chmodSync(path, 0o600);
    await store.read('a');
    chmodSync(store.vmDir('a'), 0o777);
    expect((await unsafeRead(store, 'a')).details.path).toBe(store.vmDir('a'));
    chmodSync(store.vmDir('a'), 0o700);
    rmSync(path);
    symlinkSync(stateFile(store, 'a'), path);
    expect((await unsafeRead(store, 'b')).message).toMatch(/symbolic link/);
    await store.remove('b');
    expect(await store.read('b')).toBeUndefined();
  });

  it('readShared: one frozen record while the file is unchanged, a new one after a change', async () => {
    const store = await storeWith(['a']);
    const first = store.readShared('a')!;
    expect(Object.isFrozen(first) && Object.isFrozen(first.spec)).toBe(true);
    expect(store.readShared('a')).toBe(first);
    expect(await store.read('a')).not.toBe(first);
    await store.write({ ...(await store.read('a'))!, status: 'running' });
    expect(store.readShared('a')).toMatchObject({ status: 'running' });
    expect(store.readShared('a')).not.toBe(first);
    expect(store.readShared('nope')).toBeUndefined();
  });

  it('assertTrustedToRead: a loosened or replaced vms/ at once, a loosened state directory within a second', async () => {
    const store = await storeWith(['a']);
    store.assertTrustedToRead();
    chmodSync(store.root, 0o777);
    expect(() => store.assertTrustedToRead()).toThrow(/writable by group or others/);
    chmodSync(store.root, 0o700);
    store.assertTrustedToRead();
    chmodSync(store.stateDir, 0o777);
    // Every listing and change checks the state directory at once; a read of one record within the recheck.
    expect(() => store.assertTrusted()).toThrow(/writable by group or others/);
    const { error, ms } = await firstThrow(() => store.assertTrustedToRead());
    expect(VmManagerError.isInstance(error) && error.details.path).toBe(store.stateDir);
    expect(ms).toBeLessThan(2500);
  });
});

describe('StateStore.list from memory', () => {
  it('shares frozen records between listings, and sees at once what any store changed', async () => {
    const store = await storeWith(['a', 'b'], { settleMs: 0, shareRecords: true });
    const first = store.list().records;
    expect(
      first.every((r) => Object.isFrozen(r) && Object.isFrozen(r.spec) && Object.isFrozen(r.resources)),
    ).toBe(true);
    expect(() => {
      (first[0] as { status: string }).status = 'running';
    }).toThrow(TypeError);
    const second = store.list().records;
    expect(second).not.toBe(first);
    expect(second[0]).toBe(first[0]);
    // Another store (another process, as far as this one can tell) changes, adds and removes VMs.
    const other = new StateStore(join(store.root, '..'));
    await other.write({ ...(await other.read('b'))!, status: 'running' });
    expect(statuses(store)).toEqual({ a: 'stopped', b: 'running' });
    expect(store.list().records[0]).toBe(first[0]);
    await other.claim('c');
    expect(store.list().unreadable.map((r) => r.name)).toEqual(['c']);
    await other.remove('c');
    await other.remove('a');
    expect(store.list()).toEqual({ records: [expect.objectContaining({ name: 'b' })], unreadable: [] });
  });

  it('answers from memory between changes, and sees one made behind its back within a second', async () => {
    const store = await storeWith(['a', 'b'], { settleMs: 0, shareRecords: true });
    const listed = performance.now();
    store.list();
    // Not through a StateStore: the changes token stays the same.
    rmSync(store.vmDir('a'), { recursive: true });
    const stale = store.list().records.map((r) => r.name);
    // Only while the listing is fresh (a slow machine may already have passed the recheck).
    if (performance.now() - listed < 800) expect(stale).toEqual(['a', 'b']);
    const started = performance.now();
    while (store.list().records.length === 2 && performance.now() - started < 5000) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(store.list().records.map((r) => r.name)).toEqual(['b']);
    expect(performance.now() - started).toBeLessThan(2500);
  });

  it('without shareRecords (or with listingCache: false), every listing is read anew and shares nothing', async () => {
    for (const options of [{ settleMs: 0 }, { settleMs: 0, shareRecords: true, listingCache: false }]) {
      const store = await storeWith(['a'], options);
      const first = store.list().records[0]!;
      expect(Object.isFrozen(first)).toBe(false);
      expect(store.list().records[0]).not.toBe(first);
      rmSync(store.vmDir('a'), { recursive: true });
      expect(store.list().records).toEqual([]);
    }
  });
});
