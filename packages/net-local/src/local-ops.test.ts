import { NetOpsError, type PortForwardRule, TapNetwork } from '@my-hypervisor/net-ops';
import { expectNetOpsError } from '@my-hypervisor/net-ops/testing';
import { describe, expect, it } from 'vitest';
import { FakeHost } from '../test/fake-host.js';
import { LocalOps, type LocalOpsOptions } from './index.js';

const lines = FakeHost.lines;

function setup(options: Omit<LocalOpsOptions, 'runner'> = {}) {
  const host = new FakeHost();
  const ops = new LocalOps({ ...options, runner: host.runner });
  return { host, ops };
}

const bridgeSpec = { name: 'br0', address: '10.62.0.1/24', mtu: 1400 };
const rule = { protocol: 'tcp', hostPort: 8080, guestIp: '10.62.0.2', guestPort: 80 } as const;

describe('LocalOps options', () => {
  it('defaults to the nft driver on the host namespace', () => {
    const ops = new LocalOps({ runner: new FakeHost().runner });
    expect(ops.netns).toBeUndefined();
    expect(ops.natDriver).toBe('nft');
    expect(ops.capabilities).toEqual({
      listBridgePorts: true,
      listPortForwards: true,
      atomicTap: false,
      multiQueue: true,
      tapOwner: true,
      reownsTap: true,
      ipv6: true,
    });
  });

  it.each([
    [{ netns: 'bad ns' }, 'options.netns'],
    [{ netns: '-x' }, 'options.netns'],
    [{ netns: 'a\nb' }, 'options.netns'],
    [{ nat: 'pf' }, 'options.nat'],
    [{ tableName: 'my-table' }, 'options.tableName'],
    [{ chainPrefix: 'myhv' }, 'options.chainPrefix'],
    [{ commandTimeoutMs: 0 }, 'options.commandTimeoutMs'],
    [{ natDriver: 'nft' }, 'options'],
  ])('rejects %j with INVALID_ARGUMENT naming %s', (options, field) => {
    try {
      new LocalOps(options as LocalOpsOptions);
      expect.unreachable();
    } catch (error) {
      expect(NetOpsError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
      expect((error as NetOpsError).details.field).toBe(field);
    }
  });

  it('throws TypeError for options that are not an object', () => {
    expect(() => new LocalOps('nft' as unknown as LocalOpsOptions)).toThrow(TypeError);
  });
});

describe('input validation happens before any command', () => {
  it.each(['kit\nbr', 'a b', 'x;reboot', '$(id)', 'waytoolongname16', '-flag', ''])(
    'the name %j reaches no command line',
    async (bad) => {
      const { host, ops } = setup();
      await expectNetOpsError(ops.ensureBridge({ ...bridgeSpec, name: bad }), 'INVALID_ARGUMENT');
      await expectNetOpsError(ops.createTap({ name: bad }), 'INVALID_ARGUMENT');
      await expectNetOpsError(ops.createTap({ name: 'tap0', bridge: bad }), 'INVALID_ARGUMENT');
      await expectNetOpsError(ops.addToBridge(bad, 'br0'), 'INVALID_ARGUMENT');
      await expectNetOpsError(ops.addToBridge('tap0', bad), 'INVALID_ARGUMENT');
      await expectNetOpsError(ops.bringUp(bad), 'INVALID_ARGUMENT');
      await expectNetOpsError(ops.deleteTap(bad), 'INVALID_ARGUMENT');
      await expectNetOpsError(ops.listBridgePorts(bad), 'INVALID_ARGUMENT');
      expect(host.calls).toEqual([]);
    },
  );

  it('rejects bad addresses, MTUs, owners and rules before any command', async () => {
    const { host, ops } = setup();
    await expectNetOpsError(
      ops.ensureBridge({ ...bridgeSpec, address: '10.62.0.1/24\nflush' }),
      'INVALID_ARGUMENT',
    );
    await expectNetOpsError(ops.ensureBridge({ ...bridgeSpec, mtu: 65536 }), 'INVALID_ARGUMENT');
    await expectNetOpsError(ops.ensureBridge({ ...bridgeSpec, ipv6Address: 'fd00::1' }), 'INVALID_ARGUMENT');
    await expectNetOpsError(ops.createTap({ name: 'tap0', owner: { uid: -1, gid: 0 } }), 'INVALID_ARGUMENT');
    await expectNetOpsError(
      ops.addPortForward({ ...rule, owner: 'vm 1"; flush ruleset; "' }),
      'INVALID_ARGUMENT',
    );
    await expectNetOpsError(ops.addPortForward({ ...rule, guestIp: '10.62.0.2 }' }), 'INVALID_ARGUMENT');
    expect(host.calls).toEqual([]);
  });

  it('an options object of the wrong shape is a TypeError', async () => {
    const { ops } = setup();
    await expect(ops.bringUp('tap0', { signal: 'soon' as unknown as AbortSignal })).rejects.toThrow(
      TypeError,
    );
  });
});

describe('ensureBridge', () => {
  it('creates the bridge: one read, one batch of writes, sysctls, the nft structure and the FORWARD check', async () => {
    const { host, ops } = setup({ netns: 'ns1' });
    expect(await ops.ensureBridge(bridgeSpec)).toEqual({ name: 'br0', created: true });
    const ip = host.callsOf('ip');
    expect(ip.map((c) => [c.file, ...c.args])).toEqual([
      ['ip', '-n', 'ns1', '-json', '-details', '-force', '-batch', '-'],
      ['ip', '-n', 'ns1', '-json', '-details', '-force', '-batch', '-'],
    ]);
    expect(lines(ip[0])).toEqual(['addr show dev br0']);
    expect(lines(ip[1])).toEqual([
      'link add name br0 type bridge',
      'link set dev br0 mtu 1400',
      'addr replace 10.62.0.1/24 dev br0',
      'link set dev br0 up',
    ]);
    expect(host.callsOf('sysctl').map((c) => c.args)).toEqual([
      ['netns', 'exec', 'ns1', 'sysctl', '-e', 'net/ipv4/ip_forward', 'net/ipv4/conf/br0/route_localnet'],
      ['netns', 'exec', 'ns1', 'sysctl', '-w', 'net/ipv4/ip_forward=1', 'net/ipv4/conf/br0/route_localnet=1'],
    ]);
    const nft = host.callsOf('nft');
    expect(nft).toHaveLength(1);
    expect(nft[0]!.args).toEqual(['netns', 'exec', 'ns1', 'nft', '-f', '-']);
    expect(lines(nft[0]).slice(0, 2)).toEqual([
      'add table inet myhv',
      'add map inet myhv forwards { type inet_proto . inet_service : ipv4_addr . inet_service ; }',
    ]);
    expect(lines(nft[0]).slice(-2)).toEqual([
      'add element inet myhv bridges { "br0" }',
      'add element inet myhv subnets { 10.62.0.0/24 }',
    ]);
    expect(host.callsOf('iptables-save')).toHaveLength(1);
    expect(host.callsOf('iptables-restore')).toHaveLength(0);
    expect(host.links.get('br0')).toMatchObject({ kind: 'bridge', mtu: 1400, up: true });
  });

  it('changes nothing for the same spec again: no ip writes, no sysctl writes', async () => {
    const { host, ops } = setup();
    await ops.ensureBridge(bridgeSpec);
    host.calls.length = 0;
    expect(await ops.ensureBridge(bridgeSpec)).toEqual({ name: 'br0', created: false });
    expect(host.callsOf('ip')).toHaveLength(1);
    expect(host.callsOf('sysctl')).toHaveLength(1);
  });

  it('sets ip_forward only when it is 0', async () => {
    const { host, ops } = setup();
    host.sysctls.set('net.ipv4.ip_forward', '1');
    await ops.ensureBridge(bridgeSpec);
    expect(host.callsOf('sysctl')[1]!.args).toEqual(['-w', 'net/ipv4/conf/br0/route_localnet=1']);
  });

  it('replaces a different address and drops the old subnet from NAT', async () => {
    const { host, ops } = setup();
    host.addLink({
      name: 'br0',
      kind: 'bridge',
      mtu: 1400,
      up: true,
      addresses: [{ family: 'inet', local: '10.61.0.1', prefixlen: 24, scope: 'global' }],
    });
    expect(await ops.ensureBridge(bridgeSpec)).toEqual({ name: 'br0', created: false });
    expect(lines(host.callsOf('ip')[1])).toEqual([
      'addr del 10.61.0.1/24 dev br0',
      'addr replace 10.62.0.1/24 dev br0',
    ]);
    expect(lines(host.callsOf('nft')[0])).toEqual(
      expect.arrayContaining([
        'add element inet myhv subnets { 10.61.0.0/24 }',
        'delete element inet myhv subnets { 10.61.0.0/24 }',
      ]),
    );
  });

  it('is CONFLICT, changing nothing, when the name is not a bridge', async () => {
    const { host, ops } = setup();
    host.addLink({ name: 'br0', kind: 'tun' });
    await expectNetOpsError(ops.ensureBridge(bridgeSpec), 'CONFLICT');
    expect(host.callsOf('ip')).toHaveLength(1);
    expect(host.callsOf('nft')).toHaveLength(0);
  });

  it('runs concurrent calls for one name one after another: exactly one creates', async () => {
    const { ops } = setup();
    const results = await Promise.all(Array.from({ length: 5 }, () => ops.ensureBridge(bridgeSpec)));
    expect(results.filter((r) => r.created)).toHaveLength(1);
  });

  it('with the iptables driver adds the bridge rules through iptables-restore', async () => {
    const { host, ops } = setup({ nat: 'iptables' });
    await ops.ensureBridge(bridgeSpec);
    expect(host.callsOf('nft')).toHaveLength(0);
    expect(lines(host.callsOf('iptables-restore')[0])).toContain(
      '-A MYHV-POSTROUTING -s 10.62.0.0/24 ! -o br0 -m comment --comment "myhv:br:br0:egress:10.62.0.0/24" -j MASQUERADE',
    );
  });
});

describe('TAPs', () => {
  it('creates with the exact tuntap line, then sets MTU, master and up in one more', async () => {
    const { host, ops } = setup();
    host.addLink({ name: 'br0', kind: 'bridge', mtu: 9000 });
    const spec = { name: 'tap0', multiQueue: true, owner: { uid: 1000, gid: 1001 }, bridge: 'br0' };
    expect(await ops.createTap(spec)).toEqual({ name: 'tap0', created: true });
    const ip = host.callsOf('ip');
    expect(ip.map(lines)).toEqual([
      [
        'link show dev br0',
        'link show dev tap0',
        'tuntap add dev tap0 mode tap multi_queue user 1000 group 1001',
      ],
      [
        'link set dev tap0 mtu 9000 master br0',
        'link set dev tap0 type bridge_slave hairpin on',
        'link set dev tap0 up',
      ],
    ]);
    expect(host.links.get('tap0')).toMatchObject({ master: 'br0', up: true, mtu: 9000, multiQueue: true });
  });

  it('a single createTap without bridge or a new MTU is one process', async () => {
    const { host, ops } = setup();
    await ops.createTap({ name: 'tap0', mtu: 1500 });
    expect(host.calls).toHaveLength(1);
  });

  it('adopts a TAP of the same queue mode and sets its MTU', async () => {
    const { host, ops } = setup();
    host.addLink({ name: 'tap0', kind: 'tun', mtu: 1400 });
    expect(await ops.createTap({ name: 'tap0', mtu: 1500 })).toEqual({ name: 'tap0', created: false });
    expect(host.callsOf('ip').map(lines)).toEqual([
      ['link show dev tap0', 'tuntap add dev tap0 mode tap'],
      ['link set dev tap0 mtu 1500'],
    ]);
  });

  it('adopts a TAP already as wanted (its bridge, hairpin, up, MTU, owner) in one process, changing nothing', async () => {
    const { host, ops } = setup();
    await ops.ensureBridge(bridgeSpec);
    await ops.createTap({ name: 'tap0', bridge: 'br0', owner: { uid: 1001, gid: 1001 } });
    host.calls.length = 0;
    // What a start or a restore of a VM does: its TAP is still there from before.
    expect(await ops.createTap({ name: 'tap0', bridge: 'br0', owner: { uid: 1001, gid: 1001 } })).toEqual({
      name: 'tap0',
      created: false,
    });
    expect(host.calls.map(lines)).toEqual([
      ['link show dev tap0', 'tuntap add dev tap0 mode tap user 1001 group 1001'],
    ]);
    expect(host.links.get('tap0')).toMatchObject({
      master: 'br0',
      hairpin: true,
      up: true,
      owner: '1001:1001',
    });
  });

  it('adopting a TAP that drifted sets only what is needed again: down, off its bridge or without hairpin', async () => {
    const { host, ops } = setup();
    await ops.ensureBridge(bridgeSpec);
    host.addLink({ name: 'tap0', kind: 'tun', mtu: 1400, master: 'br0', hairpin: true, up: false });
    host.addLink({ name: 'tap1', kind: 'tun', mtu: 1400, up: true });
    host.addLink({ name: 'tap2', kind: 'tun', mtu: 1400, master: 'br0', hairpin: false, up: true });
    for (const name of ['tap0', 'tap1', 'tap2']) {
      host.calls.length = 0;
      expect(await ops.createTap({ name, bridge: 'br0' })).toEqual({ name, created: false });
      expect(host.calls).toHaveLength(2);
      expect(host.links.get(name)).toMatchObject({ master: 'br0', hairpin: true, up: true });
    }
  });

  it('with an owner, makes an adopted TAP of another owner again, and keeps one of the same owner', async () => {
    const { host, ops } = setup();
    host.addLink({ name: 'tap0', kind: 'tun', owner: '1000:1000' });
    host.addLink({ name: 'tap1', kind: 'tun', owner: '1001:1001' });
    host.addLink({ name: 'tap2', kind: 'tun' });
    // Where the ids have names, ip prints those: the owner is read from sysfs instead.
    host.links.get('tap1')!.ownerNamed = true;
    const owner = { uid: 1001, gid: 1001 };
    expect(await ops.createTap({ name: 'tap0', owner })).toEqual({ name: 'tap0', created: false });
    expect(await ops.createTap({ name: 'tap1', owner })).toEqual({ name: 'tap1', created: false });
    expect(await ops.createTap({ name: 'tap2', owner })).toEqual({ name: 'tap2', created: false });
    for (const name of ['tap0', 'tap1', 'tap2']) expect(host.links.get(name)!.owner).toBe('1001:1001');
    const batches = host.callsOf('ip').map(lines);
    expect(batches).toContainEqual([
      'link del dev tap0',
      'tuntap add dev tap0 mode tap user 1001 group 1001',
    ]);
    expect(batches).toContainEqual([
      'link del dev tap2',
      'tuntap add dev tap2 mode tap user 1001 group 1001',
    ]);
    expect(batches.flat()).not.toContain('link del dev tap1');
    // Only tap1's owner could not be read from ip's output.
    expect(host.callsOf('cat').map((c) => c.args.at(-1))).toEqual(['/sys/class/net/tap1/group']);
  });

  it('without an owner, adopts a TAP of any owner as it is, without reading it', async () => {
    const { host, ops } = setup();
    host.addLink({ name: 'tap0', kind: 'tun', owner: '1000:1000' });
    expect(await ops.createTap({ name: 'tap0' })).toEqual({ name: 'tap0', created: false });
    expect(host.links.get('tap0')!.owner).toBe('1000:1000');
    expect(host.callsOf('cat')).toEqual([]);
  });

  it('is CONFLICT for a TAP of the other queue mode or a device that is no TAP, and changes nothing', async () => {
    const { host, ops } = setup();
    host.addLink({ name: 'tap0', kind: 'tun', multiQueue: true, mtu: 1400 });
    host.addLink({ name: 'veth0', kind: 'veth', mtu: 1400 });
    await expectNetOpsError(ops.createTap({ name: 'tap0', mtu: 1500 }), 'CONFLICT');
    await expectNetOpsError(ops.createTap({ name: 'veth0', mtu: 1500, bridge: 'br0' }), 'CONFLICT');
    expect(host.links.get('tap0')!.mtu).toBe(1400);
    expect(host.links.get('veth0')!.mtu).toBe(1400);
  });

  it('with a missing bridge is NOT_FOUND and deletes the TAP it created', async () => {
    const { host, ops } = setup();
    await expectNetOpsError(ops.createTap({ name: 'tap0', bridge: 'nobr' }), 'NOT_FOUND');
    expect(host.links.has('tap0')).toBe(false);
    expect(lines(host.callsOf('ip').at(-1))).toEqual(['link del dev tap0']);
  });

  it('100 TAPs created, attached and brought up at once cost 3 processes', async () => {
    const { host, ops } = setup();
    await ops.ensureBridge(bridgeSpec);
    host.calls.length = 0;
    const names = Array.from({ length: 100 }, (_, i) => `tap${i}`);
    await Promise.all(
      names.map(async (name) => {
        await ops.createTap({ name });
        await ops.addToBridge(name, 'br0');
        await ops.bringUp(name);
      }),
    );
    expect(host.calls).toHaveLength(3);
    // Each TAP is looked at in the batch that adds it (an existing one would be adopted without another run).
    expect(lines(host.calls[0])).toHaveLength(200);
    // The bridge's MTU was set by this instance, so no read is needed before enslaving.
    expect(lines(host.calls[1]).slice(14, 16)).toEqual([
      'link set dev tap7 mtu 1400 master br0',
      'link set dev tap7 type bridge_slave hairpin on',
    ]);
    expect(lines(host.calls[2])[99]).toBe('link set dev tap99 up');
  });

  it('100 VMs attached at once through TapNetwork cost 2 processes, and 1 when their TAPs are already there', async () => {
    const { host, ops } = setup();
    const network = new TapNetwork({
      bridge: ops,
      tap: ops,
      nat: ops,
      bridgeName: 'br0',
      subnet: '10.62.0.0/24',
    });
    await network.ensureBridge();
    const vms = Array.from({ length: 100 }, (_, i) => ({ vmId: `vm-${i}`, ipv4: `10.62.0.${i + 10}` }));
    host.calls.length = 0;
    await Promise.all(vms.map((vm) => network.attach(vm)));
    // Looked at and added; then MTU, master, hairpin and up.
    expect(host.calls).toHaveLength(2);
    host.calls.length = 0;
    // A start or restore of every VM: each TAP is adopted as it is.
    const again = await Promise.all(vms.map((vm) => network.attach(vm)));
    expect(again.every((a) => !a.created)).toBe(true);
    expect(host.calls).toHaveLength(1);
  });

  it('addToBridge reads the MTU of a bridge it did not set, once per wave', async () => {
    const { host, ops } = setup();
    host.addLink({ name: 'br0', kind: 'bridge', mtu: 9000 });
    for (const name of ['tap0', 'tap1']) host.addLink({ name, kind: 'tun' });
    await Promise.all([ops.addToBridge('tap0', 'br0'), ops.addToBridge('tap1', 'br0')]);
    expect(host.callsOf('ip').map(lines)).toEqual([
      ['link show dev br0'],
      [
        'link set dev tap0 mtu 9000 master br0',
        'link set dev tap0 type bridge_slave hairpin on',
        'link set dev tap1 mtu 9000 master br0',
        'link set dev tap1 type bridge_slave hairpin on',
      ],
    ]);
  });

  it('each failure goes to its own operation', async () => {
    const { host, ops } = setup();
    host.addLink({ name: 'tap0', kind: 'tun' });
    const results = await Promise.allSettled([ops.bringUp('tap0'), ops.bringUp('gone'), ops.bringUp('tap0')]);
    expect(host.calls).toHaveLength(1);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const error = (results[1] as PromiseRejectedResult).reason as NetOpsError;
    expect(error.code).toBe('NOT_FOUND');
    expect(error.details).toMatchObject({
      line: 2,
      exitCode: 1,
      stderr: expect.stringContaining('Command failed -:2'),
    });
  });

  it('deleteTap looks first: missing is existed: false, a non-TAP is CONFLICT and stays', async () => {
    const { host, ops } = setup();
    host.addLink({ name: 'tap0', kind: 'tun' });
    host.addLink({ name: 'eth0', kind: undefined });
    expect(await ops.deleteTap('nope')).toEqual({ name: 'nope', existed: false });
    await expectNetOpsError(ops.deleteTap('eth0'), 'CONFLICT');
    expect(host.links.has('eth0')).toBe(true);
    expect(await ops.deleteTap('tap0')).toEqual({ name: 'tap0', existed: true });
    expect(host.callsOf('ip').flatMap(lines)).toEqual([
      'link show dev nope',
      'link show dev eth0',
      'link show dev tap0',
      'link del dev tap0',
    ]);
  });

  it('lists the ports of a bridge; a missing bridge is NOT_FOUND', async () => {
    const { host, ops } = setup({ netns: 'ns1' });
    host.addLink({ name: 'br0', kind: 'bridge' });
    host.addLink({ name: 'tap0', kind: 'tun', master: 'br0' });
    expect(await ops.listBridgePorts('br0')).toEqual([{ name: 'tap0' }]);
    expect(host.calls[0]!.args).toEqual(['-n', 'ns1', '-json', '-details', 'link', 'show', 'master', 'br0']);
    await expectNetOpsError(ops.listBridgePorts('nobr'), 'NOT_FOUND');
  });
});

describe('port forwards (nft)', () => {
  it('a forward is one create element, with the owner as its comment; the structure comes first, once', async () => {
    const { host, ops } = setup();
    expect(await ops.addPortForward({ ...rule, owner: 'vm-1' })).toEqual({ created: true });
    expect(lines(host.calls[0]).at(-1)).toBe(
      'create element inet myhv forwards { tcp . 8080 comment "vm-1" : 10.62.0.2 . 80 }',
    );
    expect(lines(host.calls[0])[0]).toBe('add table inet myhv');
    await ops.addPortForward({ ...rule, hostPort: 8081 });
    expect(lines(host.calls[1])).toEqual([
      'create element inet myhv forwards { tcp . 8081 : 10.62.0.2 . 80 }',
    ]);
  });

  it('a forward bound to a host address also fills host_forward_ports and host_forwards', async () => {
    const { host, ops } = setup({ tableName: 'vmnat' });
    await ops.addPortForward({ ...rule, hostIp: '192.0.2.1' });
    expect(lines(host.calls[0]).slice(-3)).toEqual([
      'create element inet vmnat forwards { tcp . 8080 : 10.62.0.2 . 80 }',
      'add element inet vmnat host_forward_ports { tcp . 8080 }',
      'add element inet vmnat host_forwards { 192.0.2.1 . tcp . 8080 : 10.62.0.2 . 80 }',
    ]);
  });

  it('the same forward again is created: false; another target is CONFLICT (one read shared per wave)', async () => {
    const { host, ops } = setup();
    await ops.addPortForward(rule);
    host.calls.length = 0;
    const [same, other] = await Promise.allSettled([
      ops.addPortForward({ ...rule, owner: 'someone' }),
      ops.addPortForward({ ...rule, guestIp: '10.62.0.3' }),
    ]);
    expect(same).toEqual({ status: 'fulfilled', value: { created: false } });
    expect(other.status === 'rejected' && other.reason.code).toBe('CONFLICT');
    expect(host.calls.map((c) => c.args.slice(0, 2))).toEqual([
      ['-f', '-'],
      ['-j', 'list'],
    ]);
  });

  it('20 forwards at once are one transaction; a failing one is failed alone and the rest retried', async () => {
    const { host, ops } = setup();
    await ops.addPortForward({ ...rule, hostPort: 9005 });
    host.calls.length = 0;
    const rules: PortForwardRule[] = Array.from({ length: 20 }, (_, i) => ({ ...rule, hostPort: 9000 + i }));
    rules[5] = { ...rule, hostPort: 9005, guestIp: '10.62.0.9' };
    const results = await Promise.allSettled(rules.map((r) => ops.addPortForward(r)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(19);
    const conflicting = results[5]!;
    expect(conflicting.status === 'rejected' && conflicting.reason.code).toBe('CONFLICT');
    const writes = host.calls.filter((c) => c.args[0] === '-f');
    expect(writes.map((c) => lines(c).length)).toEqual([20, 19]);
    expect(host.forwards.size).toBe(20);
  });

  it('remove reads, then deletes; a missing forward is existed: false without a write', async () => {
    const { host, ops } = setup();
    await ops.addPortForward(rule);
    host.calls.length = 0;
    await expectNetOpsError(ops.removePortForward({ ...rule, guestPort: 81 }), 'CONFLICT');
    expect(await ops.removePortForward(rule)).toEqual({ existed: true });
    expect(await ops.removePortForward(rule)).toEqual({ existed: false });
    expect(host.calls.map((c) => (c.args[0] === '-f' ? lines(c) : c.args.join(' ')))).toEqual([
      '-j list table inet myhv',
      '-j list table inet myhv',
      ['delete element inet myhv forwards { tcp . 8080 }'],
      '-j list table inet myhv',
    ]);
  });

  it('lists forwards with their owners; no table yet is an empty list', async () => {
    const { ops } = setup();
    expect(await ops.listPortForwards()).toEqual([]);
    await ops.addPortForward({ ...rule, owner: 'vm-1' });
    expect(await ops.listPortForwards()).toEqual([{ ...rule, owner: 'vm-1' }]);
  });
});

describe('errors', () => {
  it('a missing ip is BACKEND_UNAVAILABLE naming the Debian package', async () => {
    const { host, ops } = setup();
    host.override = () => Object.assign(new Error('spawn ip ENOENT'), { code: 'ENOENT' });
    const error = await expectNetOpsError(ops.bringUp('tap0'), 'BACKEND_UNAVAILABLE');
    expect(error.message).toContain('iproute2');
  });

  it('a missing nft inside a namespace is BACKEND_UNAVAILABLE naming nftables', async () => {
    const { host, ops } = setup({ netns: 'ns1' });
    host.override = (call) =>
      call.args.includes('nft')
        ? { exitCode: 1, stderr: 'exec of "nft" failed: No such file or directory\n' }
        : undefined;
    const error = await expectNetOpsError(ops.addPortForward(rule), 'BACKEND_UNAVAILABLE');
    expect(error.message).toContain('nftables');
  });

  it('a missing namespace fails every operation of the batch with BACKEND_UNAVAILABLE, never NOT_FOUND', async () => {
    const { host, ops } = setup({ netns: 'gone' });
    host.override = () => ({
      exitCode: 255,
      stderr: 'Cannot open network namespace "gone": No such file or directory\n',
    });
    const results = await Promise.allSettled([ops.deleteTap('tap0'), ops.bringUp('tap1')]);
    expect(host.calls).toHaveLength(1);
    for (const r of results) expect(r.status === 'rejected' && r.reason.code).toBe('BACKEND_UNAVAILABLE');
    expect((results[0] as PromiseRejectedResult).reason.message).toContain('ip netns add gone');
  });

  it('EPERM is PERMISSION_DENIED with what to do, keeping command, exit code and stderr', async () => {
    const { host, ops } = setup();
    host.override = () => ({
      exitCode: 1,
      stderr: 'RTNETLINK answers: Operation not permitted\nCommand failed -:1\n',
    });
    const error = await expectNetOpsError(ops.bringUp('tap0'), 'PERMISSION_DENIED');
    expect(error.message).toMatch(/root|CAP_NET_ADMIN/);
    expect(error.details).toMatchObject({
      command: ['ip', '-json', '-details', '-force', '-batch', '-'],
      exitCode: 1,
      stderr: expect.stringContaining('Operation not permitted'),
    });
  });

  it('a hung command is killed after commandTimeoutMs and its callers get TIMEOUT', async () => {
    const ops = new LocalOps({
      commandTimeoutMs: 20,
      runner: (_file, _args, options) =>
        new Promise((_resolve, reject) => {
          options?.signal?.addEventListener('abort', () => reject(new Error('killed')));
        }),
    });
    await expectNetOpsError(ops.bringUp('tap0'), 'TIMEOUT');
  });
});

describe('abort and close', () => {
  it('an aborted signal is ABORTED before any command', async () => {
    const { host, ops } = setup();
    const signal = AbortSignal.abort();
    await expectNetOpsError(ops.ensureBridge(bridgeSpec, { signal }), 'ABORTED');
    await expectNetOpsError(ops.createTap({ name: 'tap0' }, { signal }), 'ABORTED');
    await expectNetOpsError(ops.addPortForward(rule, { signal }), 'ABORTED');
    await expectNetOpsError(ops.listPortForwards({ signal }), 'ABORTED');
    expect(host.calls).toEqual([]);
  });

  it('aborting while queued takes the operation out of the batch', async () => {
    const { host, ops } = setup();
    host.addLink({ name: 'tap0', kind: 'tun' });
    host.addLink({ name: 'tap1', kind: 'tun' });
    const controller = new AbortController();
    const first = ops.bringUp('tap0', { signal: controller.signal });
    const second = ops.bringUp('tap1');
    controller.abort();
    await expectNetOpsError(first, 'ABORTED');
    await second;
    expect(lines(host.calls[0])).toEqual(['link set dev tap1 up']);
  });

  it('close waits for running work, is idempotent, and later calls fail', async () => {
    const { host, ops } = setup();
    host.addLink({ name: 'tap0', kind: 'tun' });
    const pending = ops.bringUp('tap0');
    await Promise.all([ops.close(), ops[Symbol.asyncDispose]()]);
    await pending;
    expect(host.links.get('tap0')!.up).toBe(true);
    await expectNetOpsError(ops.bringUp('tap0'), 'BACKEND_UNAVAILABLE');
  });
});
