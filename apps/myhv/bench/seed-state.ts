import { parseVmSpec, type VmRecord } from '@my-hypervisor/vm-manager';
import { StateStore } from '@my-hypervisor/vm-manager/testing';

/**
 * Writes `count` stopped-VM records into `stateDir` in the StateStore format, as `vm create` would leave them
 * (spec, address, TAP, one forward), without starting anything.
 */
export async function seedState(stateDir: string, count: number): Promise<void> {
  const store = new StateStore(stateDir);
  await store.init();
  for (let i = 0; i < count; i++) {
    const name = `vm-${String(i).padStart(4, '0')}`;
    const id = i.toString(16).padStart(12, '0');
    const ip = `10.62.${Math.floor((i + 2) / 256)}.${(i + 2) % 256}`;
    const now = new Date().toISOString();
    const spec = parseVmSpec({
      name,
      kernel: '/var/lib/myhv/vmlinux',
      memory: '512M',
      network: { forwards: [{ hostPort: 20_000 + i, guestPort: 80 }] },
    });
    await store.claim(name);
    const record: VmRecord = {
      schema: 1,
      id,
      name,
      spec,
      status: 'stopped',
      createdAt: now,
      updatedAt: now,
      resources: {
        ip,
        tap: `myhv${id.slice(0, 11)}`,
        forwards: [
          { protocol: 'tcp', hostPort: 20_000 + i, guestIp: ip, guestPort: 80, owner: `myhv-${id}` },
        ],
        shares: [],
      },
    };
    await store.write(record);
  }
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const [dir, count] = process.argv.slice(2);
  await seedState(dir!, Number(count ?? 1000));
}
