import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { StateStore } from '../src/state-store.js';
import { runTsChild } from './child.js';
import { vmRecord } from './fixtures/vm-record.js';

// The listing cache across processes: whatever another process changed, or cached, the next list() shows what the
// state files hold.
describe('listing cache across processes', () => {
  const root = mkdtempSync(join(tmpdir(), 'myhv-listing-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;

  async function seeded(names: string[]): Promise<{ stateDir: string; store: StateStore }> {
    const stateDir = join(root, `state-${n++}`);
    const store = new StateStore(stateDir, { settleMs: 0 });
    await store.init();
    for (const [i, name] of names.entries()) {
      await store.claim(name);
      await store.write(vmRecord(name, i));
    }
    return { stateDir, store };
  }
  const statuses = (store: StateStore) => store.list().records.map((r) => `${r.name}:${r.status}`);

  it('sees VMs that another process changed, added or removed since the cache was written', async () => {
    const { stateDir, store } = await seeded(['a', 'b', 'c']);
    expect(statuses(store)).toEqual(['a:stopped', 'b:stopped', 'c:stopped']);
    await runTsChild('state-writer.ts', [stateDir, '0', 'apply', 'set:b:running', 'rm:c', 'add:d']);
    expect(statuses(store)).toEqual(['a:stopped', 'b:running', 'd:stopped']);
  });

  it('sees changes made after another process rewrote the cache', async () => {
    const { stateDir, store } = await seeded(['a', 'b']);
    store.list();
    const record = (await store.read('a'))!;
    record.status = 'paused';
    await store.write(record);
    // The child lists (and caches a) first, then changes a and lists again.
    const { stdout } = await runTsChild('state-writer.ts', [
      stateDir,
      '0',
      'apply',
      'list',
      'set:a:running',
      'list',
    ]);
    expect(
      stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line)),
    ).toEqual([
      {
        vms: [
          ['a', 'paused'],
          ['b', 'stopped'],
        ],
        unreadable: [],
      },
      {
        vms: [
          ['a', 'running'],
          ['b', 'stopped'],
        ],
        unreadable: [],
      },
    ]);
    expect(statuses(store)).toEqual(['a:running', 'b:stopped']);
  });

  it('never lists a stale record while four processes write and list at once', async () => {
    const names = Array.from({ length: 24 }, (_, i) => `vm${String(i).padStart(2, '0')}`);
    const { stateDir, store } = await seeded(names);
    store.list();
    // Each child owns six VMs: it writes one, lists, checks it sees exactly that write, 60 times. A 20 ms settle
    // time lets the VMs not written lately be cached (by any of the five processes) while others change.
    const results = await Promise.allSettled(
      [0, 1, 2, 3].map((k) =>
        runTsChild('state-writer.ts', [stateDir, '20', 'stress', '60', ...names.slice(k * 6, k * 6 + 6)]),
      ),
    );
    for (const result of results) {
      expect(result.status, result.status === 'rejected' ? String(result.reason) : '').toBe('fulfilled');
    }
    const truth = new StateStore(stateDir, { listingCache: false }).list();
    expect(truth.records).toHaveLength(24);
    expect(store.list()).toEqual(truth);
  }, 120_000);
});
