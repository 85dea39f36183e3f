import { expect, it } from 'vitest';
import { Cluster, type ClusterEvent, type HostInfo } from '../src/index.js';
import type { EtcdCluster } from '../src/testing/index.js';
import { describeOnEtcd } from './describe-on-etcd.js';

const host = (id: string, extra: Partial<HostInfo> = {}): HostInfo => ({
  id,
  address: `unix:///run/${id}/myhvd.sock`,
  capacity: { cpus: 8, memoryBytes: 16 * 2 ** 30 },
  ...extra,
});

let prefixes = 0;
/** A cluster client on its own key prefix, so tests sharing the etcd cluster never see each other's keys. */
function connect(etcd: EtcdCluster, prefix = `/myhv-test-${process.pid}-${++prefixes}/`): Cluster {
  return new Cluster({ endpoints: etcd.endpoints, prefix, timeoutMs: 3_000 });
}

describeOnEtcd('cluster membership on a 3-member etcd', (etcdOf) => {
  it('registers hosts under leases with their own subnets; a second process with a live id is refused', async () => {
    const prefix = `/myhv-test-${process.pid}-reg/`;
    await using cluster = connect(etcdOf(), prefix);
    const a = await cluster.register(host('a', { labels: { zone: 'x' } }), { ttlSeconds: 5 });
    const b = await cluster.register(host('b'), { ttlSeconds: 5 });
    expect(a.host).toMatchObject({ id: 'a', subnet: '10.80.0.0/24', labels: { zone: 'x' } });
    expect(b.host.subnet).toBe('10.80.1.0/24');
    const hosts = await cluster.hosts();
    expect(hosts.map((h) => [h.id, h.subnet, h.capacity.cpus])).toEqual([
      ['a', '10.80.0.0/24', 8],
      ['b', '10.80.1.0/24', 8],
    ]);
    expect(hosts[0]!.leaseTtlSeconds).toBeGreaterThan(0);
    expect(hosts[0]!.leaseTtlSeconds).toBeLessThanOrEqual(5);
    await using other = connect(etcdOf(), prefix);
    await expect(other.register(host('a'))).rejects.toMatchObject({ code: 'CONFLICT', field: 'host.id' });
    // Leaving revokes the lease: the host is gone at once, and keeps its subnet for when it comes back.
    await a.leave();
    expect((await cluster.hosts()).map((h) => h.id)).toEqual(['b']);
    const again = await other.register(host('a'), { ttlSeconds: 5 });
    expect(again.host.subnet).toBe('10.80.0.0/24');
    await again.leave();
    await b.leave();
  });

  it('refuses bad options before touching etcd', async () => {
    expect(() => new Cluster({ endpoints: [] })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', field: 'endpoints' }),
    );
    expect(() => new Cluster({ endpoints: ['127.0.0.1:2379'] })).toThrow(/endpoints\[0\]/);
    await using cluster = connect(etcdOf());
    await expect(cluster.register(host('bad id!'))).rejects.toMatchObject({ field: 'host.id' });
    await expect(cluster.register(host('a'), { ttlSeconds: 1 })).rejects.toMatchObject({
      field: 'ttlSeconds',
    });
    await expect(cluster.register(host('a'), { pool: '10.0.0.0' })).rejects.toMatchObject({ field: 'pool' });
    await expect(
      cluster.register(host('a'), { pool: '10.0.0.0/24', subnetPrefix: 16 }),
    ).rejects.toMatchObject({
      field: 'subnetPrefix',
    });
    expect(await cluster.hosts()).toEqual([]);
  });

  it('gives 5 hosts registering at once 5 different subnets, and says when the pool is exhausted', async () => {
    const prefix = `/myhv-test-${process.pid}-race/`;
    const clients = Array.from({ length: 5 }, () => connect(etcdOf(), prefix));
    const members = await Promise.all(
      clients.map((c, i) => c.register(host(`h${i}`), { pool: '10.90.0.0/21', ttlSeconds: 5 })),
    );
    const subnets = members.map((m) => m.host.subnet);
    expect(new Set(subnets).size).toBe(5);
    for (const subnet of subnets) expect(subnet).toMatch(/^10\.90\.[0-7]\.0\/24$/);
    await using small = connect(etcdOf());
    const first = await small.register(host('x'), { pool: '10.91.0.0/29', subnetPrefix: 30 });
    const second = await small.register(host('y'), { pool: '10.91.0.0/29', subnetPrefix: 30 });
    expect([first.host.subnet, second.host.subnet]).toEqual(['10.91.0.0/30', '10.91.0.4/30']);
    await expect(small.register(host('z'), { pool: '10.91.0.0/29', subnetPrefix: 30 })).rejects.toMatchObject(
      {
        code: 'EXHAUSTED',
      },
    );
    for (const m of [...members, first, second]) await m.leave();
    for (const c of clients) c.close();
  });

  it('a host that dies (no revoke) drops out when its lease expires, seen through a watch', async () => {
    const prefix = `/myhv-test-${process.pid}-ttl/`;
    await using observer = connect(etcdOf(), prefix);
    const doomed = connect(etcdOf(), prefix);
    const from = (await observer.revision()) + 1;
    const membership = await doomed.register(host('doomed'), { ttlSeconds: 2 });
    // As a SIGKILL would: no revoke, no more keep-alives.
    await membership.leave({ revoke: false });
    const died = Date.now();
    doomed.close();
    const controller = new AbortController();
    const seen: ClusterEvent[] = [];
    for await (const event of observer.watch('hosts/', { fromRevision: from, signal: controller.signal })) {
      seen.push(event);
      if (event.type === 'delete') break;
    }
    const gone = Date.now() - died;
    expect(seen.map((e) => [e.type, e.key])).toEqual([
      ['put', 'hosts/doomed'],
      ['delete', 'hosts/doomed'],
    ]);
    // Within the TTL plus etcd's expiry sweep (it checks leases every 500 ms).
    expect(gone).toBeGreaterThan(1_000);
    expect(gone).toBeLessThan(6_000);
    expect(await observer.hosts()).toEqual([]);
  });

  it('resuming a watch after the last revision it saw misses nothing and repeats nothing', async () => {
    const prefix = `/myhv-test-${process.pid}-watch/`;
    await using cluster = connect(etcdOf(), prefix);
    const from = (await cluster.revision()) + 1;
    const first = await cluster.register(host('w1'), { ttlSeconds: 5 });
    const controller = new AbortController();
    let last = 0;
    for await (const event of cluster.watch('hosts/', { fromRevision: from, signal: controller.signal })) {
      last = event.modRevision;
      break;
    }
    // While nobody watches: two more changes.
    const second = await cluster.register(host('w2'), { ttlSeconds: 5 });
    await first.leave();
    const resumed: string[] = [];
    const again = new AbortController();
    for await (const event of cluster.watch('hosts/', { fromRevision: last + 1, signal: again.signal })) {
      resumed.push(`${event.type} ${event.key}`);
      if (resumed.length === 2) break;
    }
    expect(resumed).toEqual(['put hosts/w2', 'delete hosts/w1']);
    await second.leave();
  });

  it('keeps working with one etcd member down; loses the lease without quorum, and recovers when quorum returns', async () => {
    const prefix = `/myhv-test-${process.pid}-quorum/`;
    await using cluster = connect(etcdOf(), prefix);
    const member = await cluster.register(host('q'), { ttlSeconds: 2 });
    await etcdOf().killMember(2);
    // A leader election may be under way; within a second the two left answer.
    await expect
      .poll(async () => (await cluster.hosts().catch(() => [])).map((h) => h.id), { timeout: 5_000 })
      .toEqual(['q']);
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // longer than the TTL: keep-alives go through
    expect(member.lost.aborted).toBe(false);
    expect((await cluster.hosts()).map((h) => h.id)).toEqual(['q']);

    await etcdOf().killMember(1);
    await expect(cluster.hosts()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect.poll(() => member.lost.aborted, { timeout: 10_000 }).toBe(true);
    expect(member.lost.reason).toMatchObject({ code: 'LEASE_LOST' });

    await Promise.all([etcdOf().startMember(1), etcdOf().startMember(2)]);
    await expect
      .poll(async () => (await cluster.hosts().catch(() => undefined)) !== undefined, { timeout: 15_000 })
      .toBe(true);
    // The lost lease's key lives on until etcd expires it (a new leader gives leases their full TTL again): until
    // then the id is taken; then it registers again, with its subnet.
    let back: Awaited<ReturnType<Cluster['register']>> | undefined;
    await expect
      .poll(
        async () => {
          back = await cluster.register(host('q'), { ttlSeconds: 5 }).catch((error: { code?: string }) => {
            if (error.code !== 'CONFLICT' && error.code !== 'UNAVAILABLE') throw error;
            return undefined;
          });
          return back !== undefined;
        },
        { timeout: 15_000, interval: 250 },
      )
      .toBe(true);
    expect(back!.host.subnet).toBe(member.host.subnet);
    await back!.leave();
  }, 60_000);
});
