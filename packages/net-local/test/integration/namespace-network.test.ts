import { deriveMac, deriveTapName, type VmNetworkPolicy } from '@my-hypervisor/net-ops';
import type { ResultPromise } from 'execa';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CommandRunner, execaRunner, LocalOps, NamespaceNetwork } from '../../src/index.js';
import { createNetns, deleteAllNetns, inNetns, kernelSkipReason } from './netns.js';
import { connect, plugGuest, startServer } from './traffic-kit.js';

/*
 * The namespace backend with real packets. One namespace plays the host (bridge 10.78.0.1/24, LocalOps, our nft
 * tables); each VM gets its namespace from NamespaceNetwork, and that namespace stands in for its guest (a TAP
 * carries nothing without a VMM): the namespace bridge takes the VM's MAC and address, so its packets leave by the
 * VM's veth exactly as the guest's would. An "outside" namespace plays the internet.
 *
 *   outside 192.168.78.2 ── o0 192.168.78.1 [host: br0 10.78.0.1/24] ── veth ── [ns a: 10.78.0.2] (isolated, deny-all)
 *                                                                   ├── veth ── [ns b: 10.78.0.3] (isolated, allow-list)
 *                                                                   └── veth ── [ns c: 10.78.0.4] (isolation none)
 */

const reason = await kernelSkipReason(['nft', 'iptables']);
if (reason) console.warn(`skipped: namespace backend tests because ${reason}`);

const prefix = `myhv-nn${process.pid}-`;
const subnet = '10.78.0.0/24';
const table = `myhv_nn${process.pid}`;

afterAll(async () => {
  // Also after a failed test: every VM namespace of this run, then the host stand-ins.
  for (const name of await namespaces()) await execa('ip', ['netns', 'del', name], { reject: false });
  await deleteAllNetns();
});

/** Makes the VM's namespace play its guest: the guest's MAC and address on the namespace bridge, a default route. */
async function standInGuest(netns: string, vmId: string, address: string): Promise<void> {
  await execa('ip', ['-n', netns, 'link', 'set', 'br0', 'address', deriveMac(vmId)]);
  await execa('ip', ['-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'br0']);
  await execa('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  await execa('ip', ['-n', netns, 'route', 'add', 'default', 'via', '10.78.0.1']);
}

async function namespaces(): Promise<string[]> {
  const { stdout } = await execa('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter((name) => name.startsWith(prefix));
}

/** The host's interfaces once no `wanted`-named one is left (a deleted namespace's veth goes a moment later). */
async function hostLinksWithout(host: string, wanted: string): Promise<string> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const links = (await execa('ip', ['-n', host, '-br', 'link'])).stdout;
    if (!links.includes(wanted) || Date.now() > deadline) return links;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function nftTables(host: string): Promise<string> {
  return (await inNetns(host, 'nft', ['list', 'ruleset'])).stdout;
}

describe.skipIf(reason !== undefined)('NamespaceNetwork with real traffic', () => {
  let host: string;
  let outside: string;
  let ops: LocalOps;
  let network: NamespaceNetwork;
  const servers: ResultPromise[] = [];
  const vms: Record<string, { ip: string; policy: VmNetworkPolicy }> = {
    a: { ip: '10.78.0.2', policy: { egress: 'deny-all' } },
    b: { ip: '10.78.0.3', policy: { egress: [{ cidr: '192.168.78.0/24', ports: [9000], proto: 'tcp' }] } },
    c: { ip: '10.78.0.4', policy: { isolation: 'none' } },
  };
  const forward = { protocol: 'tcp', hostPort: 18090, guestIp: '10.78.0.2', guestPort: 8080 } as const;

  beforeAll(async () => {
    [host, outside] = [await createNetns(), await createNetns()];
    ops = new LocalOps({ netns: host });
    network = new NamespaceNetwork({
      bridge: ops,
      nat: ops,
      bridgeName: 'br0',
      subnet,
      netns: host,
      namespacePrefix: prefix,
      tableName: table,
    });
    await plugGuest(host, 'o0', outside, '192.168.78.2/24');
    await execa('ip', ['-n', host, 'addr', 'add', '192.168.78.1/24', 'dev', 'o0']);
    await execa('ip', ['-n', host, 'link', 'set', 'o0', 'up']);
    const attached = await Promise.all(
      Object.entries(vms).map(([vmId, vm]) =>
        network.attach({
          vmId,
          ipv4: vm.ip,
          policy: vm.policy,
          ...(vmId === 'a' ? { forwards: [forward] } : {}),
        }),
      ),
    );
    for (const [i, [vmId, vm]] of Object.entries(vms).entries()) {
      expect(attached[i]).toMatchObject({ netns: `${prefix}${vmId}`, created: true, ipv4: vm.ip });
      await standInGuest(`${prefix}${vmId}`, vmId, vm.ip);
      servers.push((await startServer(`${prefix}${vmId}`, vmId, 8080)).process);
    }
    servers.push((await startServer(outside, 'outside', 9000)).process);
    servers.push((await startServer(outside, 'outside', 9001)).process);
    servers.push((await startServer(host, 'host', 53)).process);
    servers.push((await startServer(host, 'host', 8081)).process);
  }, 120_000);

  afterAll(async () => {
    for (const server of servers) server.kill();
    await Promise.allSettled(servers);
    for (const vmId of Object.keys(vms)) await network?.detach({ vmId }).catch(() => undefined);
    await ops?.close();
  });

  it('puts the TAP inside the VM namespace and the veth on the host bridge, named like the TAP', async () => {
    const tap = deriveTapName('a');
    const inside = JSON.parse(
      (await execa('ip', ['-n', `${prefix}a`, '-j', '-d', 'link', 'show', tap])).stdout,
    );
    expect(inside[0]).toMatchObject({ master: 'br0', linkinfo: { info_kind: 'tun' } });
    const port = JSON.parse((await execa('ip', ['-n', host, '-j', '-d', 'link', 'show', tap])).stdout);
    expect(port[0]).toMatchObject({ master: 'br0', linkinfo: { info_kind: 'veth' } });
  });

  it('keeps isolated VMs apart, both ways, and lets open ones talk', async () => {
    expect(await connect(`${prefix}a`, '10.78.0.3', 8080)).toMatch(/^failed/);
    expect(await connect(`${prefix}c`, '10.78.0.2', 8080)).toMatch(/^failed/);
    expect(await connect(`${prefix}c`, '10.78.0.3', 8080)).toMatch(/^failed/);
    // Routed through the gateway instead of across the bridge: still refused.
    await execa('ip', ['-n', `${prefix}a`, 'route', 'add', '10.78.0.4/32', 'via', '10.78.0.1']);
    expect(await connect(`${prefix}a`, '10.78.0.4', 8080)).toMatch(/^failed/);
    expect((await network.policyCounters('a')).isolationDenied).toBeGreaterThan(0);
  }, 30_000);

  it('lets an isolated VM reach only the offered ports of its gateway', async () => {
    expect(await connect(`${prefix}a`, '10.78.0.1', 53)).toBe('host saw 10.78.0.2');
    expect(await connect(`${prefix}a`, '10.78.0.1', 8081)).toMatch(/^failed/);
    expect(await connect(`${prefix}a`, '192.168.78.1', 8081)).toMatch(/^failed/);
    expect(await connect(`${prefix}c`, '192.168.78.1', 8081)).toBe('host saw 10.78.0.4');
  }, 30_000);

  it('holds each VM to its egress policy and counts what it drops', async () => {
    const before = await network.policyCounters('a');
    expect(await connect(`${prefix}a`, '192.168.78.2', 9000)).toMatch(/^failed/);
    expect((await network.policyCounters('a')).egressDenied).toBeGreaterThan(before.egressDenied);
    expect(await connect(`${prefix}b`, '192.168.78.2', 9000)).toBe('outside saw 192.168.78.1');
    expect(await connect(`${prefix}b`, '192.168.78.2', 9001)).toMatch(/^failed/);
    expect(await connect(`${prefix}c`, '192.168.78.2', 9001)).toBe('outside saw 192.168.78.1');
  }, 30_000);

  it('drops packets that claim another VM’s address', async () => {
    await execa('ip', ['-n', `${prefix}b`, 'addr', 'add', '10.78.0.4/24', 'dev', 'br0']);
    expect(await connect(`${prefix}b`, '192.168.78.2', 9000, '10.78.0.4')).toMatch(/^failed/);
    expect(await connect(`${prefix}b`, '192.168.78.2', 9000, '10.78.0.3')).toBe('outside saw 192.168.78.1');
  }, 30_000);

  it('forwards a host port to a VM whose egress is denied, from outside and from the host itself', async () => {
    expect(await connect(outside, '192.168.78.1', 18090)).toMatch(/^a saw /);
    expect(await connect(host, '192.168.78.1', 18090)).toMatch(/^a saw /);
  }, 30_000);

  it('attaches again without changes, and detaches leaving nothing behind', async () => {
    const again = await network.attach({ vmId: 'c', ipv4: '10.78.0.4', policy: vms.c!.policy });
    expect(again.created).toBe(false);
    const rules = await nftTables(host);
    expect(rules.match(new RegExp(`chain out_${deriveTapName('c')}`, 'g'))).toHaveLength(1);

    expect(await network.detach({ vmId: 'c', ipv4: '10.78.0.4' })).toEqual({
      tap: deriveTapName('c'),
      existed: true,
    });
    // Again: nothing to do (or only the host port the kernel had not yet removed with the namespace).
    expect(await network.detach({ vmId: 'c' })).toMatchObject({ tap: deriveTapName('c') });
    expect(await network.detach({ vmId: 'c' })).toEqual({ tap: deriveTapName('c'), existed: false });
    expect(await namespaces()).not.toContain(`${prefix}c`);
    const after = await nftTables(host);
    expect(after).not.toContain(deriveTapName('c'));
    expect(after).not.toContain('10.78.0.4');
    expect(await hostLinksWithout(host, deriveTapName('c'))).not.toContain(deriveTapName('c'));
    expect(await network.listAttached()).toEqual(expect.arrayContaining(['a', 'b']));
    expect(await network.listAttached()).not.toContain('c');
  }, 30_000);

  it('attaches a VM again right after its detach, while the kernel still tears the old namespace down', async () => {
    const vm = { vmId: 'd', ipv4: '10.78.0.5', policy: { isolation: 'none' } } as const;
    // Several times: the old host port may still be there (veth: EEXIST, the TAP of that name: EBUSY) or gone.
    for (let round = 0; round < 5; round++) {
      await network.attach(vm);
      await network.detach(vm);
      expect(await network.attach(vm)).toMatchObject({ created: true, netns: `${prefix}d` });
      await network.detach(vm);
    }
  }, 30_000);

  it('repairs a VM whose host port was deleted under it', async () => {
    await execa('ip', ['-n', host, 'link', 'del', deriveTapName('b')]);
    expect(await connect(`${prefix}b`, '192.168.78.2', 9000)).toMatch(/^failed/);
    const repaired = await network.attach({ vmId: 'b', ipv4: '10.78.0.3', policy: vms.b!.policy });
    expect(repaired.created).toBe(false);
    expect(await connect(`${prefix}b`, '192.168.78.2', 9000, '10.78.0.3')).toBe('outside saw 192.168.78.1');
  }, 30_000);
});

describe.skipIf(reason !== undefined)('NamespaceNetwork after a crash at every step', () => {
  it('leaves nothing a detach (what reconcile runs for listed VMs) cannot remove', async () => {
    const host = await createNetns();
    const ops = new LocalOps({ netns: host });
    await ops.ensureBridge({ name: 'br0', address: '10.79.0.1/24' });
    const options = {
      bridge: ops,
      nat: ops,
      bridgeName: 'br0',
      subnet: '10.79.0.0/24',
      netns: host,
    } as const;
    const crashPrefix = `${prefix}x`;
    const forward = { protocol: 'tcp', hostPort: 18091, guestIp: '10.79.0.2', guestPort: 80 } as const;
    // Count the commands of one whole attach, then crash after each of them in turn: the runner never answers again.
    let total = 0;
    const counting: CommandRunner = (file, args, opts) => {
      total++;
      return execaRunner(file, args, opts);
    };
    const probe = new NamespaceNetwork({
      ...options,
      runner: counting,
      namespacePrefix: crashPrefix,
      tableName: table,
    });
    await probe.attach({ vmId: 'probe', ipv4: '10.79.0.2' });
    await probe.detach({ vmId: 'probe' });
    const steps = total - 3; // the detach's own commands
    expect(steps).toBeGreaterThan(1);
    for (let crashAfter = 1; crashAfter <= steps; crashAfter++) {
      let calls = 0;
      let crashed!: () => void;
      const crashReached = new Promise<void>((resolve) => (crashed = resolve));
      // The attach runs its commands one after another: once it asks for the one past the crash point, every
      // earlier one has finished, and nothing of it runs any more (a fixed wait raced a slow command under load).
      const crashing: CommandRunner = (file, args, opts) => {
        if (++calls <= crashAfter) return execaRunner(file, args, opts);
        crashed();
        return new Promise(() => {});
      };
      const doomed = new NamespaceNetwork({
        ...options,
        runner: crashing,
        namespacePrefix: crashPrefix,
        tableName: table,
      });
      const attaching = doomed.attach({ vmId: 'v', ipv4: '10.79.0.2' }).catch(() => undefined);
      await Promise.race([crashReached, attaching]);
      // A new process: what reconcile does for a VM no record owns.
      const fresh = new NamespaceNetwork({ ...options, namespacePrefix: crashPrefix, tableName: table });
      for (const vmId of await fresh.listAttached()) await fresh.detach({ vmId });
      await fresh.detach({ vmId: 'v' });
      expect(await fresh.listAttached(), `crash after command ${crashAfter}`).toEqual([]);
      const links = await hostLinksWithout(host, deriveTapName('v'));
      expect(links, `crash after command ${crashAfter}`).not.toContain(deriveTapName('v'));
      const rules = await nftTables(host);
      expect(rules, `crash after command ${crashAfter}`).not.toContain(deriveTapName('v'));
    }
    await ops.removePortForward(forward).catch(() => undefined);
    await ops.close();
  }, 120_000);
});
