import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_NETWORK, NetworkStore } from './network-store.js';

const dirs: string[] = [];
async function store(): Promise<NetworkStore> {
  const dir = await mkdtemp(join(tmpdir(), 'myhv-nets-'));
  dirs.push(dir);
  return new NetworkStore(dir);
}
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

const lab = { name: 'lab', bridge: 'myhv-lab', subnet: '10.63.0.5/24', backend: 'local', nat: 'nft' };

describe('NetworkStore', () => {
  it('records a network once, normalised, private, and lists the default first', async () => {
    const s = await store();
    const record = await s.create(lab);
    expect(record).toMatchObject({ schema: 1, name: 'lab', subnet: '10.63.0.0/24', gateway: '10.63.0.1' });
    await s.create({ ...lab, name: DEFAULT_NETWORK, bridge: 'myhvbr0', subnet: '10.62.0.0/24' });
    expect((await s.list()).map((n) => n.name)).toEqual(['default', 'lab']);
    expect(await s.read('lab')).toEqual(record);
    expect(await s.read('nope')).toBeUndefined();
    const { statSync } = await import('node:fs');
    expect(statSync(s.path('lab')).mode & 0o777).toBe(0o600);
    expect(statSync(s.root).mode & 0o777).toBe(0o700);
  });

  it('a second create of the same name is ALREADY_EXISTS and leaves the first record as it was', async () => {
    const s = await store();
    const first = await s.create(lab);
    const results = await Promise.allSettled([
      s.create({ ...lab, subnet: '10.64.0.0/24' }),
      s.create({ ...lab, subnet: '10.65.0.0/24' }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect((results[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(await s.read('lab')).toEqual(first);
  });

  it('refuses bad names, bridges and subnets before writing anything', async () => {
    const s = await store();
    await expect(s.create({ ...lab, name: 'Bad_Name' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(s.create({ ...lab, bridge: 'x'.repeat(16) })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await expect(s.create({ ...lab, subnet: '10.0.0.0/33' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect(await s.list()).toEqual([]);
  });

  it('a record another user could have written is refused, not read', async () => {
    const s = await store();
    await s.create(lab);
    chmodSync(s.path('lab'), 0o666);
    await expect(s.read('lab')).rejects.toMatchObject({ code: 'UNSAFE_PERMISSIONS' });
    await expect(s.list()).rejects.toMatchObject({ code: 'UNSAFE_PERMISSIONS' });
    if (process.getuid?.() === 0) {
      chmodSync(s.path('lab'), 0o600);
      chownSync(s.path('lab'), 65534, 65534);
      await expect(s.read('lab')).rejects.toMatchObject({ code: 'UNSAFE_PERMISSIONS' });
    }
  });

  it('a corrupt record is CORRUPT_STATE naming the file', async () => {
    const s = await store();
    await s.create(lab);
    writeFileSync(s.path('lab'), '{"schema": 1, "name": ', { mode: 0o600 });
    await expect(s.read('lab')).rejects.toMatchObject({
      code: 'CORRUPT_STATE',
      details: { path: s.path('lab') },
    });
  });
});
