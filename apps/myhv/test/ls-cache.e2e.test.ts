import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StateStore } from '@my-hypervisor/vm-manager/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { seedState } from '../bench/seed-state.js';
import { json, myhv } from './myhv.js';

interface Listed {
  vms: { name: string; status: string; ip: string | null }[];
}

// `myhv vm ls` keeps a listing cache beside the state files; every later `vm ls` (a new process each time) must
// show what the state files hold, whichever process changed them. Needs no root: it only reads state files.
describe('myhv vm ls with its listing cache', () => {
  const dir = mkdtempSync(join(tmpdir(), 'myhv-ls-cache-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const env = { MYHV_STATE_DIR: dir };
  const ls = async () => json<Listed>(await myhv(['--json', 'vm', 'ls'], env));

  it('shows changes, additions and removals made by other processes after the cache was written', async () => {
    await seedState(dir, 20);
    // State files changed in the last 2 s are never cached: let these age so that the cache holds them all.
    await sleep(2_100);
    const first = await ls();
    expect(first.vms.map((v) => v.name)).toEqual(
      Array.from({ length: 20 }, (_, i) => `vm-${String(i).padStart(4, '0')}`),
    );
    expect(readdirSync(join(dir, 'vms'))).toContain('.listing-cache.json');

    const store = new StateStore(dir);
    const record = (await store.read('vm-0003'))!;
    record.status = 'running';
    await store.write(record);
    await store.remove('vm-0007');
    await store.claim('vm-9999');
    await store.write({
      ...record,
      id: 'ffffffffffff',
      name: 'vm-9999',
      spec: { ...record.spec, name: 'vm-9999' },
    });
    const second = await ls();
    expect(second.vms.find((v) => v.name === 'vm-0003')?.status).toBe('running');
    expect(second.vms.map((v) => v.name)).not.toContain('vm-0007');
    expect(second.vms.at(-1)?.name).toBe('vm-9999');
    expect(second.vms).toHaveLength(20);
    // The records the cache served are the ones on disk.
    const { records } = new StateStore(dir, { listingCache: false }).list();
    expect(second.vms.map((v) => [v.name, v.status, v.ip])).toEqual(
      records.map((r) => [r.name, r.status, r.resources.ip ?? null]),
    );
  }, 60_000);
});
