import { expect, it } from 'vitest';
import { Cluster, type ClusterVmSpec, type PlacementStats, runPlacement } from '../src/index.js';
import { describeOnEtcd } from './describe-on-etcd.js';

const GiB = 2 ** 30;
const vm = (name: string, extra: Partial<ClusterVmSpec> = {}): ClusterVmSpec => ({
  name,
  spec: { name, kernel: '/var/lib/myhv/vmlinux', memory: '512M' },
  cpus: 1,
  memoryBytes: 512 * 2 ** 20,
  ...extra,
});

describeOnEtcd('placement on a 3-member etcd', (etcdOf) => {
  it("spreads 30 VMs from 5 clients over 3 hosts, one controller deciding, and re-places a lost host's VMs", async () => {
    const prefix = `/myhv-test-${process.pid}-place/`;
    const connect = () => new Cluster({ endpoints: etcdOf().endpoints, prefix, timeoutMs: 3_000 });
    const hostClients = [connect(), connect(), connect()];
    const members = await Promise.all(
      hostClients.map((c, i) =>
        c.register(
          { id: `h${i}`, address: `h${i}`, capacity: { cpus: 16, memoryBytes: 32 * GiB } },
          { ttlSeconds: 2 },
        ),
      ),
    );
    // Two controllers campaign; only the leader places.
    const stop = new AbortController();
    const stats: Record<string, PlacementStats> = {};
    const controllers = ['c0', 'c1'].map((id) =>
      runPlacement(hostClients[id === 'c0' ? 0 : 1]!, {
        id,
        signal: stop.signal,
        onStats: (s) => {
          stats[id] = s;
        },
      }),
    );
    const clients = Array.from({ length: 5 }, connect);
    const started = performance.now();
    await Promise.all(
      clients.map((c, i) => Promise.all(Array.from({ length: 6 }, (_, j) => c.createVm(vm(`vm-${i}-${j}`))))),
    );
    // The same name from every client at once: exactly one wins.
    const raced = await Promise.allSettled(clients.map((c) => c.createVm(vm('contested'))));
    expect(raced.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(
      raced.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code),
    ).toEqual(['CONFLICT', 'CONFLICT', 'CONFLICT', 'CONFLICT']);
    await using observer = connect();
    const perHost = async () => {
      const counts: Record<string, number> = {};
      for (const v of await observer.vms())
        if (v.assignment) counts[v.assignment.host] = (counts[v.assignment.host] ?? 0) + 1;
      return counts;
    };
    await expect.poll(perHost, { timeout: 10_000 }).toEqual({ h0: 11, h1: 10, h2: 10 });
    const placedMs = performance.now() - started;
    // A pass reports its stats after its writes, so the last report may come just after the assignments show.
    const decided = () => Object.values(stats).reduce((n, s) => n + s.decisions, 0);
    await expect.poll(decided).toBe(31);
    expect(Object.values(stats).filter((s) => s.decisions > 0)).toHaveLength(1);
    expect(placedMs).toBeLessThan(10_000);

    // h2 dies (no revoke): after its lease expires its 10 VMs go to h0 and h1, epoch 2; nothing is placed twice.
    const lost = (await observer.vms()).filter((v) => v.assignment?.host === 'h2').map((v) => v.name);
    await members[2]!.leave({ revoke: false });
    hostClients[2]!.close();
    await expect.poll(perHost, { timeout: 10_000 }).toEqual({ h0: 16, h1: 15 });
    const after = await observer.vms();
    for (const name of lost) expect(after.find((v) => v.name === name)?.assignment?.epoch).toBe(2);
    expect(after).toHaveLength(31);

    stop.abort();
    await Promise.allSettled(controllers);
    for (const m of members.slice(0, 2)) await m.leave();
    for (const c of [...hostClients.slice(0, 2), ...clients]) c.close();
  }, 60_000);

  it('honours labels and pack, and leaves a VM unplaced when no host matches', async () => {
    const prefix = `/myhv-test-${process.pid}-labels/`;
    await using cluster = new Cluster({ endpoints: etcdOf().endpoints, prefix, timeoutMs: 3_000 });
    const a = await cluster.register({
      id: 'a',
      address: 'a',
      capacity: { cpus: 8, memoryBytes: 4 * GiB },
      labels: { gpu: 'yes' },
    });
    const b = await cluster.register({ id: 'b', address: 'b', capacity: { cpus: 8, memoryBytes: 8 * GiB } });
    const stop = new AbortController();
    let stats: PlacementStats | undefined;
    const running = runPlacement(cluster, {
      id: 'only',
      signal: stop.signal,
      onStats: (s) => {
        stats = s;
      },
    });
    await cluster.createVm(vm('needs-gpu', { placement: { labels: { gpu: 'yes' } } }));
    await cluster.createVm(vm('packed-1', { placement: { policy: 'pack' } }));
    await cluster.createVm(vm('packed-2', { placement: { policy: 'pack' } }));
    await cluster.createVm(vm('nowhere', { placement: { labels: { zone: 'mars' } } }));
    await cluster.createVm(vm('too-big', { memoryBytes: 64 * GiB }));
    const where = async () =>
      Object.fromEntries((await cluster.vms()).map((v) => [v.name, v.assignment?.host ?? '-']));
    await expect
      .poll(where, { timeout: 10_000 })
      .toEqual({ 'needs-gpu': 'a', 'packed-1': 'a', 'packed-2': 'a', nowhere: '-', 'too-big': '-' });
    // Counted at the end of each pass, after its writes.
    await expect.poll(() => stats?.unplaceable ?? 0).toBeGreaterThanOrEqual(2);
    // A delete conditioned on a read: refused once the VM changed since.
    const read = (await cluster.vm('nowhere'))!;
    await cluster.setRunning('nowhere', false);
    await expect(cluster.deleteVm('nowhere', read)).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await cluster.deleteVm('nowhere', (await cluster.vm('nowhere'))!)).toBe(true);
    expect(await cluster.deleteVm('nowhere')).toBe(false);
    stop.abort();
    await running;
    await a.leave();
    await b.leave();
  }, 30_000);

  it('puts no more VMs on a host than its subnet has addresses', async () => {
    const prefix = `/myhv-test-${process.pid}-addresses/`;
    await using cluster = new Cluster({ endpoints: etcdOf().endpoints, prefix, timeoutMs: 3_000 });
    // A /29: 8 addresses, of which 5 for VMs (not the network, the gateway, the broadcast address).
    const host = await cluster.register(
      { id: 'small', address: 'small', capacity: { cpus: 64, memoryBytes: 64 * GiB } },
      { pool: '10.90.0.0/24', subnetPrefix: 29 },
    );
    const stop = new AbortController();
    const running = runPlacement(cluster, { id: 'only', signal: stop.signal });
    for (let i = 0; i < 7; i++) await cluster.createVm(vm(`v${i}`));
    const placed = async () => (await cluster.vms()).filter((v) => v.assignment).length;
    await expect.poll(placed, { timeout: 10_000 }).toBe(5);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await placed()).toBe(5);
    stop.abort();
    await running;
    await host.leave();
  }, 30_000);
});
