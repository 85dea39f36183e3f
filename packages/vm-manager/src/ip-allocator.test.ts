import { chmod, mkdtemp, readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runTsChild } from '../test/child.js';
import { VmManagerError } from './errors.js';
import { IpAllocator } from './ip-allocator.js';

async function tempDir() {
  return mkdtemp(join(tmpdir(), 'myhv-ipam-'));
}

describe('IpAllocator', () => {
  it('writes every file 0600 and directory 0700 whatever the umask', async () => {
    const dir = join(await tempDir(), 'ipam');
    const ipam = new IpAllocator({ dir, subnet: '10.62.0.0/24' });
    const old = process.umask(0);
    try {
      await ipam.allocate('a');
    } finally {
      process.umask(old);
    }
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(ipam.dir)).mode & 0o777).toBe(0o700);
    for (const name of await readdir(ipam.dir))
      expect([name, (await stat(join(ipam.dir, name))).mode & 0o777]).toEqual([name, 0o600]);
  });

  it('refuses reservations others could write: they could take addresses or hand theirs out', async () => {
    const dir = await tempDir();
    const ipam = new IpAllocator({ dir, subnet: '10.62.0.0/24' });
    await ipam.allocate('a');
    await chmod(ipam.dir, 0o777);
    await expect(ipam.allocate('b')).rejects.toMatchObject({
      code: 'UNSAFE_PERMISSIONS',
      details: { path: ipam.dir },
    });
    await expect(ipam.list()).rejects.toMatchObject({ code: 'UNSAFE_PERMISSIONS' });
    await chmod(ipam.dir, 0o700);
    await chmod(dir, 0o777);
    await expect(ipam.release('a')).rejects.toMatchObject({
      code: 'UNSAFE_PERMISSIONS',
      details: { path: dir },
    });
  });

  it('hands out network+2 first, never network, gateway or broadcast, and one file per address', async () => {
    const dir = await tempDir();
    const ipam = new IpAllocator({ dir, subnet: '10.62.0.0/30' });
    expect(await ipam.allocate('a')).toBe('10.62.0.2');
    await expect(ipam.allocate('b')).rejects.toMatchObject({ code: 'EXHAUSTED' });
    expect(await readFile(join(ipam.dir, '10.62.0.2'), 'utf8')).toBe('a');
  });

  it('is idempotent for an owner that already holds an address', async () => {
    const ipam = new IpAllocator({ dir: await tempDir(), subnet: '10.62.0.0/24' });
    const first = await ipam.allocate('vm1');
    expect(await ipam.allocate('vm1')).toBe(first);
    expect((await ipam.list()).length).toBe(1);
  });

  it('releases by owner and reuses addresses round-robin, not immediately', async () => {
    const ipam = new IpAllocator({ dir: await tempDir(), subnet: '10.62.0.0/24' });
    const a = await ipam.allocate('a');
    await ipam.allocate('b');
    expect(await ipam.release('a')).toEqual([a]);
    expect(await ipam.release('a')).toEqual([]);
    expect(await ipam.allocate('c')).toBe('10.62.0.4');
    expect((await ipam.list()).map((r) => r.owner).sort()).toEqual(['b', 'c']);
  });

  it('rejects /31, /32 and hostile owners before touching the disk', async () => {
    const dir = await tempDir();
    expect(() => new IpAllocator({ dir, subnet: '10.0.0.0/31' })).toThrow(/subnet/);
    expect(() => new IpAllocator({ dir, subnet: '10.0.0.1/32' })).toThrow(/subnet/);
    const ipam = new IpAllocator({ dir, subnet: '10.0.0.0/24' });
    await expect(ipam.allocate('../x')).rejects.toSatisfy(
      (e) => VmManagerError.isInstance(e) && e.code === 'INVALID_ARGUMENT',
    );
    expect(await readdir(dir)).toEqual([]);
  });

  it('gives 50 separate processes allocating at once 50 distinct addresses', async () => {
    const dir = await tempDir();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => runTsChild('allocate.ts', [dir, '10.70.0.0/24', `owner${i}`])),
    );
    const addresses = results.map((r) => r.stdout.trim());
    expect(new Set(addresses).size).toBe(50);
    const ipam = new IpAllocator({ dir, subnet: '10.70.0.0/24' });
    const reservations = await ipam.list();
    expect(reservations).toHaveLength(50);
    for (const [i, address] of addresses.entries()) {
      expect(reservations.find((r) => r.address === address)?.owner).toBe(`owner${i}`);
    }
    // No temp files left behind by the link(2) claims.
    expect((await readdir(ipam.dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  }, 120_000);
});
