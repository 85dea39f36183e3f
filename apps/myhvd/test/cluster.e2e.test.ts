import { kvmUnavailableReason, realVmmBinary, realVmmMissingReason } from '@my-hypervisor/chv-client/testing';
import { EtcdCluster, etcdSkipReason } from '@my-hypervisor/cluster/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, json, myhv, type Result, Sandbox } from '../../myhv/test/myhv.js';
import { type RunningMyhvd, startMyhvd } from './start-myhvd.js';

const skip = e2eSkipReason() ?? etcdSkipReason();
if (skip) console.warn(`skipped: the cluster e2e tests, because ${skip}`);
// One host runs the real cloud-hypervisor where there is one (and KVM): its VMs boot the probe guest.
const realSkip = realVmmMissingReason() ?? kvmUnavailableReason();
if (!skip && realSkip) console.warn(`the cluster e2e runs host h2 on the simulator too, because ${realSkip}`);

/** Lease TTL of the test hosts: short, so that a failover takes seconds. */
const TTL = 3;

interface FleetVm {
  name: string;
  status: string;
  host: string | null;
  ip: string | null;
  epoch: number | null;
  running: boolean;
}

describe.skipIf(skip !== undefined)('three myhvd hosts over a 3-member etcd (ADR 016)', () => {
  let etcd: EtcdCluster;
  const boxes = [0, 1, 2].map(
    (i) => new Sandbox(`cl${i}`, i === 2 && !realSkip ? { MYHV_CLOUD_HYPERVISOR: realVmmBinary()! } : {}),
  );
  const daemons: (RunningMyhvd | undefined)[] = [];
  let cluster: string;
  const fleet = (args: readonly string[]) => myhv(['--cluster', cluster, ...args], {});
  const fleetVms = async () => {
    const listed = await fleet(['--json', 'vm', 'ls']);
    expect(listed.code, listed.stderr).toBe(0);
    return json<{ vms: FleetVm[] }>(listed).vms;
  };
  /** What host `i` itself holds: its own `myhv vm ls` (through its daemon when it runs). */
  const local = async (i: number) => {
    const listed = await myhv(['--json', 'vm', 'ls'], boxes[i]!.env);
    expect(listed.code, listed.stderr).toBe(0);
    return json<{ vms: { name: string; status: string; ip?: string }[] }>(listed).vms;
  };
  const start = async (i: number) => {
    daemons[i] = await startMyhvd({ ...boxes[i]!.env, MYHV_CLUSTER: `etcd=${cluster}` }, [
      '--host-id',
      `h${i}`,
      '--cluster-ttl',
      String(TTL),
      '--host-vcpus',
      '64',
      ...(i === 2 ? ['--host-label', 'vmm=real'] : []),
    ]);
  };
  const create = (name: string, extra: readonly string[] = []) =>
    fleet([
      '--json',
      'vm',
      'create',
      name,
      '--kernel',
      boxes[0]!.kernel,
      '--memory',
      '64M',
      '--restart',
      'always',
      ...extra,
    ]);

  beforeAll(async () => {
    etcd = await EtcdCluster.start();
    cluster = etcd.endpoints.join(',');
    for (const box of boxes) box.create();
    for (let i = 0; i < 3; i++) await start(i);
  }, 90_000);
  afterAll(async () => {
    for (const d of daemons) d?.child.kill('SIGKILL');
    for (const box of boxes) box.destroy();
    await etcd?.stop();
  });

  it('refuses bad input before writing anything (exit 2, naming the field)', async () => {
    const expectUsage = (result: Result, field: string | null) => {
      expect(result.code, result.stderr).toBe(2);
      if (field) expect(JSON.parse(result.stderr).error.field).toBe(field);
    };
    expectUsage(await myhv(['--json', '--cluster', 'etcd=nope', 'vm', 'ls']), '--cluster');
    expectUsage(await myhv(['--json', '--cluster', 'zk=http://127.0.0.1:1', 'vm', 'ls']), '--cluster');
    expectUsage(await create('bad', ['--placement', 'nearest']), '--placement');
    expectUsage(await create('bad', ['--on-host', 'novalue']), '--on-host');
    expectUsage(await create('bad', ['--network', 'other']), '--network');
    expectUsage(await create('bad', ['--memory', '1K']), 'memory');
    // Commands that work on one host do not take --cluster.
    expectUsage(await fleet(['--json', 'vm', 'logs', 'x']), null);
    // Cluster-only flags without a cluster.
    expectUsage(
      await myhv(
        ['--json', 'vm', 'create', 'x', '--kernel', boxes[0]!.kernel, '--placement', 'pack'],
        boxes[0]!.env,
      ),
      null,
    );
    const badDaemon = await myhv(['--json', 'daemon', 'run', '--host-id', 'no spaces'], {
      ...boxes[0]!.env,
      MYHV_CLUSTER: cluster,
      MYHV_DAEMON_SOCKET: `${boxes[0]!.runDir}/other.sock`,
    });
    expectUsage(badDaemon, '--host-id');
    expectUsage(
      await myhv(['--json', 'daemon', 'run', '--host-label', 'a=b'], boxes[0]!.env),
      '--host-label',
    );
    expect(await fleetVms()).toEqual([]);
    // A second myhvd on a host's state is refused before it touches that host's cluster record.
    const second = await myhv(['--json', 'daemon', 'run', '--host-id', 'h0'], {
      ...boxes[0]!.env,
      MYHV_CLUSTER: cluster,
    });
    expect(second.code, second.stderr).toBe(1);
    expect(second.stderr).toMatch(/already runs/);
  });

  it('places 30 VMs from 5 clients across the hosts, one winner per name, and runs each once', async () => {
    const hosts = json<{ hosts: { id: string; subnet: string; leaseTtlSeconds: number }[] }>(
      await fleet(['--json', 'cluster', 'hosts']),
    ).hosts;
    expect(hosts.map((h) => h.id)).toEqual(['h0', 'h1', 'h2']);
    // Each host its own subnet from the pool: addresses never collide across hosts.
    expect(new Set(hosts.map((h) => h.subnet)).size).toBe(3);
    for (const h of hosts) expect(h.leaseTtlSeconds).toBeLessThanOrEqual(TTL);

    const names = Array.from({ length: 30 }, (_, i) => `vm-${String(i).padStart(2, '0')}`);
    const lanes = Array.from({ length: 5 }, async (_, lane) => {
      for (let i = lane; i < names.length; i += 5) {
        const made = await create(names[i]!);
        expect(made.code, made.stderr).toBe(0);
        expect(json<{ vm: FleetVm }>(made).vm, made.stdout).toMatchObject({
          name: names[i],
          status: 'running',
        });
      }
    });
    // Two clients creating one name at once: exactly one wins.
    const twins = await Promise.all([create('twin'), create('twin')]);
    await Promise.all(lanes);
    expect(twins.map((r) => r.code).sort()).toEqual([0, 1]);
    expect(JSON.parse(twins.find((r) => r.code === 1)!.stderr).error).toMatchObject({
      source: 'ClusterError',
      code: 'CONFLICT',
    });
    // A label constraint: only h2 has vmm=real (the host with the real cloud-hypervisor, where there is one).
    const pinned = await create('pinned', ['--on-host', 'vmm=real']);
    expect(pinned.code, pinned.stderr).toBe(0);
    expect(json<{ vm: FleetVm }>(pinned).vm).toMatchObject({ host: 'h2', status: 'running' });

    const vms = await fleetVms();
    expect(vms).toHaveLength(32);
    expect(vms.every((vm) => vm.status === 'running' && vm.epoch === 1)).toBe(true);
    const perHost = [0, 1, 2].map((i) => vms.filter((vm) => vm.host === `h${i}`).length);
    // Spread: the hosts are alike, so the 32 VMs split as evenly as they can.
    expect(Math.max(...perHost) - Math.min(...perHost)).toBeLessThanOrEqual(2);
    // Each host holds exactly what the cluster says it does, at the address the cluster shows.
    for (let i = 0; i < 3; i++) {
      const mine = vms.filter((vm) => vm.host === `h${i}`);
      const held = await local(i);
      expect(held.map((vm) => vm.name).sort()).toEqual(mine.map((vm) => vm.name).sort());
      for (const vm of held) expect(vm.ip).toBe(mine.find((m) => m.name === vm.name)!.ip);
    }
    if (!realSkip) {
      const log = await myhv(['vm', 'logs', 'pinned'], boxes[2]!.env);
      expect(log.stdout).toContain('myhv-probe: booted');
    }
  }, 240_000);

  it('stops and starts a VM as desired state, and removes it from its host', async () => {
    const stopped = await fleet(['--json', 'vm', 'stop', 'vm-00']);
    expect(stopped.code, stopped.stderr).toBe(0);
    const vm = json<{ vm: FleetVm }>(stopped).vm;
    expect(vm).toMatchObject({ status: 'stopped', running: false });
    const host = Number(vm.host!.slice(1));
    expect((await local(host)).find((v) => v.name === 'vm-00')?.status).toBe('stopped');
    const started = await fleet(['--json', 'vm', 'start', 'vm-00']);
    expect(json<{ vm: FleetVm }>(started).vm).toMatchObject({ status: 'running', running: true });
    // A change made on the host by other hands (a local stop) reaches the fleet view: the agent hears it from the
    // host's event journal and reports it.
    expect((await myhv(['vm', 'stop', 'vm-00'], boxes[host]!.env)).code).toBe(0);
    await expect
      .poll(async () => (await fleetVms()).find((v) => v.name === 'vm-00')?.status, { timeout: 10_000 })
      .toBe('stopped');
    expect((await fleet(['vm', 'start', 'vm-00'])).code).toBe(0);
    const inspect = json<{ vm: FleetVm }>(await fleet(['--json', 'vm', 'inspect', 'vm-00'])).vm;
    expect(inspect).toMatchObject({ name: 'vm-00', host: vm.host, status: 'running' });
    // A running VM is removed only with --force; its host then deletes it.
    expect((await fleet(['--json', 'vm', 'rm', 'twin'])).code).toBe(1);
    const twinHost = Number((await fleetVms()).find((v) => v.name === 'twin')!.host!.slice(1));
    expect((await fleet(['vm', 'rm', '--force', 'twin'])).code).toBe(0);
    await expect
      .poll(async () => (await local(twinHost)).some((v) => v.name === 'twin'), { timeout: 20_000 })
      .toBe(false);
    const missing = await fleet(['--json', 'vm', 'inspect', 'twin']);
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stderr).error).toMatchObject({ code: 'NOT_FOUND', source: 'ClusterError' });
  }, 120_000);

  it('fails a killed host over within its lease, and its VMs run exactly once when it comes back', async () => {
    const before = await fleetVms();
    const moved = before.filter((vm) => vm.host === 'h0').map((vm) => vm.name);
    expect(moved.length).toBeGreaterThan(5);
    const killedAt = Date.now();
    daemons[0]!.child.kill('SIGKILL');
    await daemons[0]!.exited;
    // Its VMMs were detached: they keep running on the partitioned host meanwhile.
    await expect
      .poll(
        async () => {
          const vms = await fleetVms();
          return moved.every((name) => {
            const vm = vms.find((v) => v.name === name)!;
            return vm.host !== 'h0' && vm.status === 'running' && vm.epoch === 2;
          });
        },
        { timeout: (TTL + 20) * 1000, interval: 250 },
      )
      .toBe(true);
    const failoverMs = Date.now() - killedAt;
    console.log(`cluster e2e: ${moved.length} VMs failed over in ${failoverMs} ms (lease TTL ${TTL} s)`);
    expect((await fleetVms()).filter((vm) => vm.host === 'h0')).toEqual([]);

    // h0 comes back: it deletes its copies of the VMs that run elsewhere now.
    await start(0);
    await expect.poll(async () => (await local(0)).length, { timeout: 30_000 }).toBe(0);
    const everywhere = (await Promise.all([0, 1, 2].map(local))).flat().map((vm) => vm.name);
    expect(everywhere.sort()).toEqual((await fleetVms()).map((vm) => vm.name).sort());
    expect(new Set(everywhere).size).toBe(everywhere.length);
  }, 120_000);

  it('keeps running through one lost etcd member, refuses new work without quorum, and recovers', async () => {
    await etcd.killMember(0);
    const withTwo = await create('quorum-1');
    expect(withTwo.code, withTwo.stderr).toBe(0);
    expect(json<{ vm: FleetVm }>(withTwo).vm.status).toBe('running');

    await etcd.killMember(1);
    const refused = await fleet(['--json', 'vm', 'create', 'quorum-2', '--kernel', boxes[0]!.kernel]);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stderr).error).toMatchObject({ source: 'ClusterError', code: 'UNAVAILABLE' });
    // The hosts keep their VMs running meanwhile.
    const held = (await Promise.all([0, 1, 2].map(local))).flat();
    expect(held.length).toBe(32);
    expect(held.filter((vm) => vm.status !== 'running').map((vm) => `${vm.name}:${vm.status}`)).toEqual([]);

    await etcd.startMember(0);
    await etcd.startMember(1);
    await expect
      .poll(
        async () => {
          const r = await fleet(['--json', 'cluster', 'hosts']);
          return r.code === 0 ? json<{ hosts: { id: string }[] }>(r).hosts.length : -1;
        },
        { timeout: 30_000, interval: 500 },
      )
      .toBe(3);
    const after = await create('quorum-3');
    expect(after.code, after.stderr).toBe(0);
    expect(json<{ vm: FleetVm }>(after).vm.status).toBe('running');
    // Every VM runs, each on exactly one host (had a lease run out meanwhile, its VMs were re-placed and the host's
    // copies deleted).
    await expect
      .poll(
        async () => {
          const vms = await fleetVms();
          const everywhere = (await Promise.all([0, 1, 2].map(local))).flat().map((vm) => vm.name);
          return {
            notRunning: vms.filter((vm) => vm.status !== 'running').map((vm) => `${vm.name}:${vm.status}`),
            held: everywhere.sort(),
          };
        },
        { timeout: 30_000, interval: 500 },
      )
      .toEqual({ notRunning: [], held: (await fleetVms()).map((vm) => vm.name).sort() });
  }, 120_000);
});
