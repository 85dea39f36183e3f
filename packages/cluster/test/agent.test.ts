import { expect, it } from 'vitest';
import {
  Cluster,
  type ClusterVmSpec,
  type HostBackend,
  type Membership,
  runHostAgent,
  runPlacement,
} from '../src/index.js';
import { describeOnEtcd } from './describe-on-etcd.js';

const GiB = 2 ** 30;

/** A host's VMs as a set of names: what a VmManager would hold (its VMMs survive the agent's death). */
class FakeHost implements HostBackend {
  readonly vms = new Map<string, ClusterVmSpec>();
  creates = 0;
  async list() {
    return [...this.vms.keys()].map((name) => ({ name, status: 'running' }));
  }
  async create(vm: ClusterVmSpec) {
    this.creates += 1;
    if (vm.name.startsWith('broken')) throw new Error(`${vm.name}: the kernel does not boot`);
    this.vms.set(vm.name, vm);
    return { status: 'running', ip: `10.80.0.${this.vms.size + 1}` };
  }
  async delete(name: string) {
    this.vms.delete(name);
  }
}

describeOnEtcd('host agents on a 3-member etcd', (etcdOf) => {
  it('run what is placed on them, fail over a dead host, and delete stale copies when it comes back: none twice', async () => {
    const prefix = `/myhv-test-${process.pid}-agents/`;
    const connect = () => new Cluster({ endpoints: etcdOf().endpoints, prefix, timeoutMs: 3_000 });
    const backends = [new FakeHost(), new FakeHost(), new FakeHost()];
    const clients = backends.map(connect);
    const stops = backends.map(() => new AbortController());
    const members: Membership[] = [];
    const agents: Promise<void>[] = [];
    const join = async (i: number) => {
      members[i] = await clients[i]!.register(
        { id: `h${i}`, address: `h${i}`, capacity: { cpus: 16, memoryBytes: 32 * GiB } },
        { ttlSeconds: 2 },
      );
      agents[i] = runHostAgent(clients[i]!, {
        membership: members[i]!,
        backend: backends[i]!,
        signal: stops[i]!.signal,
      });
    };
    for (let i = 0; i < 3; i++) await join(i);
    const control = new AbortController();
    const placing = runPlacement(clients[0]!, { id: 'c', signal: control.signal });
    await using admin = connect();
    const names = Array.from({ length: 30 }, (_, i) => `vm-${String(i).padStart(2, '0')}`);
    await Promise.all(
      names.map((name) => admin.createVm({ name, spec: { name }, cpus: 1, memoryBytes: 512 * 2 ** 20 })),
    );
    await admin.createVm({ name: 'broken-1', spec: {}, cpus: 1, memoryBytes: 2 ** 20 });
    const statuses = async () => {
      const counts: Record<string, number> = {};
      for (const vm of await admin.vms()) {
        const key = vm.status ? `${vm.status.status}@${vm.status.host}` : 'none';
        counts[key] = (counts[key] ?? 0) + 1;
      }
      return counts;
    };
    await expect
      .poll(statuses, { timeout: 15_000 })
      .toEqual({ 'running@h0': 10, 'running@h1': 10, 'running@h2': 10, 'failed@h0': 1 });
    const broken = (await admin.vms()).find((vm) => vm.name === 'broken-1')!;
    expect(broken.status?.error).toMatch(/does not boot/);
    expect(backends.map((b) => b.vms.size)).toEqual([10, 10, 10]);
    // The broken VM was tried once for its assignment, not at every event since.
    expect(backends[0]!.creates).toBe(11);

    // h2's daemon is killed: its agent stops, its VMs keep running, its lease expires, the others take them over.
    const survivors = [...backends[2]!.vms.keys()];
    stops[2]!.abort();
    await agents[2];
    await members[2]!.leave({ revoke: false });
    await expect
      .poll(statuses, { timeout: 15_000 })
      .toEqual({ 'running@h0': 15, 'running@h1': 15, 'failed@h0': 1 });
    expect(backends[0]!.vms.size + backends[1]!.vms.size).toBe(30);
    expect(backends[2]!.vms.size).toBe(10); // still running on the partitioned host

    // h2 comes back: it deletes its copies of the VMs now running elsewhere. Every VM runs exactly once.
    stops[2] = new AbortController();
    await join(2);
    await expect.poll(() => backends[2]!.vms.size, { timeout: 10_000 }).toBe(0);
    const everywhere = backends.flatMap((b) => [...b.vms.keys()]).sort();
    expect(everywhere).toEqual(names);
    for (const name of survivors)
      expect((await admin.vms()).find((vm) => vm.name === name)?.status?.epoch).toBe(2);

    // Deleting from the cluster deletes on the host.
    await admin.deleteVm('vm-00');
    await expect
      .poll(() => backends.flatMap((b) => [...b.vms.keys()]).includes('vm-00'), { timeout: 10_000 })
      .toBe(false);

    control.abort();
    for (const stop of stops) stop.abort();
    await Promise.allSettled([placing, ...agents]);
    for (const m of members) await m.leave();
    for (const c of clients) c.close();
  }, 90_000);
});
