import { TapNetwork } from '@my-hypervisor/net-ops';
import { expectNetOpsError } from '@my-hypervisor/net-ops/testing';
import { execa } from 'execa';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { type CommandRunner, execaRunner, LocalOps } from '../../src/index.js';
import { createNetns, deleteAllNetns, inNetns, kernelSkipReason } from './netns.js';

/** LocalOps against the real kernel, in a fresh namespace per test: what the kit does not look at. */
const reason = await kernelSkipReason(['nft', 'iptables']);
if (reason) console.warn(`skipped: LocalOps kernel tests because ${reason}`);

afterAll(deleteAllNetns);

describe.skipIf(reason !== undefined)('LocalOps on the kernel', () => {
  let netns: string;
  let processes: string[][];
  let ops: LocalOps;
  const counting: CommandRunner = (file, args, options) => {
    processes.push([file, ...args]);
    return execaRunner(file, args, options);
  };
  const sysctl = async (key: string) => (await inNetns(netns, 'sysctl', ['-n', key])).stdout.trim();
  const link = async (name: string) =>
    JSON.parse(
      (await execa('ip', ['-n', netns, '-json', '-details', 'addr', 'show', 'dev', name])).stdout,
    )[0];

  beforeEach(async () => {
    netns = await createNetns();
    processes = [];
    ops = new LocalOps({ netns, runner: counting });
    return () => ops.close();
  });

  it('ensureBridge from many independent instances at once (separate processes in effect) all succeed', async () => {
    // Each LocalOps has its own batcher, like separate myhv processes: all see "no bridge", one add wins, and
    // the others must adopt its bridge, never fail nor delete it.
    const others = Array.from({ length: 8 }, () => new LocalOps({ netns }));
    const results = await Promise.all(
      others.map((o) => o.ensureBridge({ name: 'br0', address: '10.88.0.1/24' })),
    );
    expect(results.filter((r) => r.created).length).toBeGreaterThanOrEqual(1);
    expect((await link('br0')).linkinfo.info_kind).toBe('bridge');
    expect((await link('br0')).flags).toContain('UP');
    await Promise.all(others.map((o) => o.close()));
  });

  it('ensureBridge sets addresses, MTU, up, ip_forward and route_localnet; a new address replaces the old', async () => {
    expect(await sysctl('net.ipv4.ip_forward')).toBe('0');
    await ops.ensureBridge({ name: 'br0', address: '10.88.0.1/24', mtu: 1400, ipv6Address: 'fd00:88::1/64' });
    let br = await link('br0');
    expect(br.linkinfo.info_kind).toBe('bridge');
    expect(br.mtu).toBe(1400);
    expect(br.flags).toContain('UP');
    const addresses = (b: typeof br) =>
      b.addr_info
        .filter((a: { scope: string }) => a.scope === 'global')
        .map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`);
    expect(addresses(br)).toEqual(['10.88.0.1/24', 'fd00:88::1/64']);
    expect(await sysctl('net.ipv4.ip_forward')).toBe('1');
    expect(await sysctl('net.ipv4.conf.br0.route_localnet')).toBe('1');
    expect(await sysctl('net.ipv6.conf.all.forwarding')).toBe('1');

    await ops.ensureBridge({ name: 'br0', address: '10.89.0.1/24', mtu: 1400 });
    br = await link('br0');
    expect(addresses(br)).toEqual(['10.89.0.1/24', 'fd00:88::1/64']);
    const subnets = JSON.parse(
      (await inNetns(netns, 'nft', ['-j', 'list', 'set', 'inet', 'myhv', 'subnets'])).stdout,
    );
    expect(JSON.stringify(subnets)).toContain('10.89.0.0');
    expect(JSON.stringify(subnets)).not.toContain('10.88.0.0');
  });

  it('never touches another nft table', async () => {
    await inNetns(netns, 'nft', [
      'add table inet other; add chain inet other c { type filter hook forward priority 0 ; }; add rule inet other c counter accept',
    ]);
    const before = (await inNetns(netns, 'nft', ['list', 'table', 'inet', 'other'])).stdout;
    await ops.ensureBridge({ name: 'br0', address: '10.88.0.1/24' });
    await ops.addPortForward({ protocol: 'tcp', hostPort: 8080, guestIp: '10.88.0.2', guestPort: 80 });
    await ops.ensureBridge({ name: 'br0', address: '10.88.0.1/24' });
    expect((await inNetns(netns, 'nft', ['list', 'table', 'inet', 'other'])).stdout).toBe(before);
  });

  it('60 VMs at once: one process per step, and each failure goes to its own call', async () => {
    await ops.ensureBridge({ name: 'br0', address: '10.88.0.1/24', mtu: 1500 });
    // Two names are taken by something that is not a TAP; one forward port is taken by another target.
    await execa('ip', ['-n', netns, 'link', 'add', 'vm7', 'type', 'veth', 'peer', 'name', 'vm7p']);
    await execa('ip', ['-n', netns, 'link', 'add', 'vm33', 'type', 'bridge']);
    await ops.addPortForward({ protocol: 'tcp', hostPort: 20042, guestIp: '10.88.0.200', guestPort: 22 });
    processes = [];

    const names = Array.from({ length: 60 }, (_, i) => `vm${i}`);
    const results = await Promise.allSettled(
      names.map(async (name, i) => {
        await ops.createTap({ name });
        await ops.addToBridge(name, 'br0');
        await ops.bringUp(name);
        return ops.addPortForward({
          protocol: 'tcp',
          hostPort: 20000 + i,
          guestIp: `10.88.0.${i + 2}`,
          guestPort: 22,
        });
      }),
    );
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [[names[i], r.reason.code]] : []));
    expect(failed).toEqual([
      ['vm7', 'CONFLICT'],
      ['vm33', 'CONFLICT'],
      ['vm42', 'CONFLICT'],
    ]);
    // tuntap (1) + adoption check (1) + master (1) + up (1) + nft (2: one retry without the conflict) + its read (1)
    expect(processes.length).toBeLessThanOrEqual(7);
    const ports = (await ops.listBridgePorts('br0')).map((p) => p.name);
    expect(ports).toHaveLength(58);
    expect(ports).not.toContain('vm7');
    expect((await link('vm7')).linkinfo.info_kind).toBe('veth');
    expect((await ops.listPortForwards()).length).toBe(58);
    // A few seconds alone; while every package's suite runs at once, two cores make it far slower.
  }, 120_000);

  it('createTap with an owner and multi-queue makes exactly that TAP', async () => {
    await ops.createTap({ name: 'mq0', multiQueue: true, owner: { uid: 1234, gid: 2345 }, mtu: 9000 });
    const tap = await link('mq0');
    expect(tap.linkinfo.info_data).toMatchObject({ type: 'tap', multi_queue: true });
    expect(tap.mtu).toBe(9000);
    expect(String(tap.linkinfo.info_data.user)).toBe('1234');
    expect(String(tap.linkinfo.info_data.group)).toBe('2345');
  });

  it('TapNetwork over LocalOps: attach, attach again, a conflicting forward rolls back, detach', async () => {
    const network = new TapNetwork({
      bridge: ops,
      tap: ops,
      nat: ops,
      bridgeName: 'br0',
      subnet: '10.88.0.0/24',
      mtu: 1500,
    });
    const forward = { protocol: 'tcp', hostPort: 2222, guestIp: '10.88.0.10', guestPort: 22 } as const;
    const vm = await network.attach({ vmId: 'vm-a', ipv4: '10.88.0.10', forwards: [forward] });
    expect(vm.created).toBe(true);
    expect((await network.attach({ vmId: 'vm-a', ipv4: '10.88.0.10', forwards: [forward] })).created).toBe(
      false,
    );
    expect((await ops.listBridgePorts('br0')).map((p) => p.name)).toEqual([vm.tap]);

    const clash = { ...forward, guestIp: '10.88.0.11' };
    await expectNetOpsError(
      network.attach({ vmId: 'vm-b', ipv4: '10.88.0.11', forwards: [clash] }),
      'CONFLICT',
    );
    expect((await ops.listBridgePorts('br0')).map((p) => p.name)).toEqual([vm.tap]);

    expect(await network.detach({ vmId: 'vm-a', forwards: [forward] })).toEqual({
      tap: vm.tap,
      existed: true,
    });
    expect(await ops.listPortForwards()).toEqual([]);
    expect(await ops.listBridgePorts('br0')).toEqual([]);
  });

  it('with the nft driver, a FORWARD policy of DROP gets MYHV-FORWARD accepts; ACCEPT gets none', async () => {
    await ops.ensureBridge({ name: 'br0', address: '10.88.0.1/24' });
    expect((await inNetns(netns, 'iptables-save', [])).stdout).not.toContain('MYHV');
    await inNetns(netns, 'iptables', ['-P', 'FORWARD', 'DROP']);
    await ops.ensureBridge({ name: 'br0', address: '10.88.0.1/24' });
    // iptables-save stamps its output with the time: compare the rules, not the comments.
    const rules = async () =>
      (await inNetns(netns, 'iptables-save', ['-t', 'filter'])).stdout
        .split('\n')
        .filter((line) => !line.startsWith('#'))
        .join('\n');
    const saved = await rules();
    expect(saved).toContain('-A FORWARD -m comment --comment "myhv:jump" -j MYHV-FORWARD');
    expect(saved).toContain('-A MYHV-FORWARD -i br0 -m comment --comment "myhv:br:br0:in" -j ACCEPT');
    await ops.ensureBridge({ name: 'br0', address: '10.88.0.1/24' });
    expect(await rules()).toBe(saved);
  });
});
