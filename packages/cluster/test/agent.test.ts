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
  readonly status = new Map<string, string>();
  creates = 0;
  starts = 0;
  #changed: (() => void) | undefined;
  async list() {
    return [...this.vms.keys()].map((name) => ({ name, status: this.status.get(name)! }));
  }
  /** VMs whose next creates fail (a host briefly overloaded), by how many. */
  readonly failNext = new Map<string, number>();
  async create(vm: ClusterVmSpec) {
    this.creates += 1;
    if (vm.name.startsWith('broken')) throw new Error(`${vm.name}: the kernel does not boot`);
    const fails = this.failNext.get(vm.name) ?? 0;
    if (fails > 0) {
      this.failNext.set(vm.name, fails - 1);
      throw new Error(`${vm.name}: the VMM did not answer in time`);
    }
    this.vms.set(vm.name, vm);
    this.status.set(vm.name, vm.running === false ? 'stopped' : 'running');
    return { status: this.status.get(vm.name)!, ip: `10.80.0.${this.vms.size + 1}` };
  }
  async start(name: string) {
    this.starts += 1;
    this.status.set(name, 'running');
    return { status: 'running' };
  }
  async stop(name: string) {
    this.status.set(name, 'stopped');
    return { status: 'stopped' };
  }
  async delete(name: string) {
    this.vms.delete(name);
    this.status.delete(name);
  }
  /** A change made on the host by other hands (a VMM died): the agent hears of it through `changes`. */
  crash(name: string) {
    this.status.set(name, 'failed');
    this.#changed?.();
  }
  async *changes(signal: AbortSignal) {
    while (!signal.aborted) {
      await new Promise<void>((resolve) => {
        this.#changed = resolve;
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
      if (!signal.aborted) yield '';
    }
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
    // The broken VM is tried again only on its backoff (1 s, 2 s, …), not at every event since.
    expect(backends[0]!.creates - 10).toBeLessThanOrEqual(3);

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

  it('start and stop as desired state, report what happens on the host, and survive a restart of their daemon', async () => {
    const prefix = `/myhv-test-${process.pid}-desired/`;
    const connect = () => new Cluster({ endpoints: etcdOf().endpoints, prefix, timeoutMs: 3_000 });
    await using admin = connect();
    const host = new FakeHost();
    const join = async (client: Cluster, instance: string) => {
      const membership = await client.register(
        { id: 'h0', address: 'h0', capacity: { cpus: 8, memoryBytes: 8 * GiB } },
        { ttlSeconds: 5, instance },
      );
      const stop = new AbortController();
      const agent = runHostAgent(client, { membership, backend: host, signal: stop.signal });
      return { membership, stop, agent };
    };
    const first = connect();
    const a = await join(first, 'install-1');
    const control = new AbortController();
    const placing = runPlacement(admin, { id: 'c', signal: control.signal });
    const status = async (name: string) => (await admin.vm(name))?.status?.status;

    await admin.createVm({ name: 'web', spec: {}, cpus: 1, memoryBytes: 2 ** 28 });
    await admin.createVm({ name: 'idle', spec: {}, cpus: 1, memoryBytes: 2 ** 28, running: false });
    await expect.poll(() => status('web'), { timeout: 10_000 }).toBe('running');
    await expect.poll(() => status('idle'), { timeout: 10_000 }).toBe('stopped');

    // Desired state drives the host: stop one, start the other.
    expect((await admin.setRunning('web', false)).running).toBe(false);
    await admin.setRunning('idle', true);
    await expect.poll(() => status('web'), { timeout: 10_000 }).toBe('stopped');
    await expect.poll(() => status('idle'), { timeout: 10_000 }).toBe('running');
    expect(host.status.get('web')).toBe('stopped');
    await expect(admin.setRunning('nope', true)).rejects.toMatchObject({ code: 'NOT_FOUND', field: 'name' });
    await expect(admin.vm('a/b')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'name' });

    // A create that fails twice (an overloaded host) is reported failed, then tried again after 1 s and 2 s.
    host.failNext.set('flaky', 2);
    const flakyCreates = host.creates;
    await admin.createVm({ name: 'flaky', spec: {}, cpus: 1, memoryBytes: 2 ** 28 });
    await expect.poll(() => status('flaky'), { timeout: 5_000 }).toBe('failed');
    await expect.poll(() => status('flaky'), { timeout: 10_000 }).toBe('running');
    expect(host.creates - flakyCreates).toBe(3);

    // A VMM dies on the host: the agent hears it from the backend and reports it; it does not restart it on its own.
    const starts = host.starts;
    host.crash('idle');
    await expect.poll(() => status('idle'), { timeout: 10_000 }).toBe('failed');
    expect(host.starts).toBe(starts);

    // The daemon restarts within the TTL: the same installation takes its record over (no CONFLICT, the host never
    // looks lost, nothing is re-placed); another installation with that id is refused.
    a.stop.abort();
    await a.agent;
    a.membership.leave({ revoke: false });
    first.close();
    const other = connect();
    await expect(
      other.register(
        { id: 'h0', address: 'x', capacity: { cpus: 1, memoryBytes: GiB } },
        { instance: 'install-2' },
      ),
    ).rejects.toMatchObject({ code: 'CONFLICT' });
    other.close();
    const second = connect();
    const b = await join(second, 'install-1');
    expect((await admin.hosts()).map((h) => [h.id, h.leaseId])).toEqual([['h0', b.membership.leaseId]]);
    // The old lease is revoked, and the record outlives it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await admin.hosts()).map((h) => h.id)).toEqual(['h0']);
    expect((await admin.vm('web'))?.assignment?.epoch).toBe(1);
    expect(host.creates).toBe(5); // web, idle, and flaky's three tries

    control.abort();
    b.stop.abort();
    await Promise.allSettled([placing, b.agent]);
    await b.membership.leave();
    second.close();
  }, 60_000);
});
