import { createMemoryNetOps, NetOpsError } from '@my-hypervisor/net-ops';
import { describe, expect, it } from 'vitest';
import type { CommandRunner } from './command-runner.js';
import { NamespaceNetwork, type NamespaceNetworkOptions } from './namespace-network.js';

function setup(overrides: Partial<NamespaceNetworkOptions> = {}) {
  const commands: string[][] = [];
  const runner: CommandRunner = async (file, args) => {
    commands.push([file, ...args]);
    return { exitCode: 0, stdout: '', stderr: '' };
  };
  const ops = createMemoryNetOps();
  const network = new NamespaceNetwork({
    bridge: ops,
    nat: ops,
    bridgeName: 'br0',
    subnet: '10.62.0.0/24',
    runner,
    ...overrides,
  });
  return { network, commands, ops };
}

function fieldOf(error: unknown): unknown {
  return NetOpsError.isInstance(error) ? error.details.field : error;
}

describe('NamespaceNetwork input', () => {
  it.each([
    [{ vmId: '../etc', ipv4: '10.62.0.2' }, 'vmId'],
    [{ vmId: '-x', ipv4: '10.62.0.2' }, 'vmId'],
    [{ vmId: 'a b', ipv4: '10.62.0.2' }, 'vmId'],
    [{ vmId: 'a', ipv4: '10.62.0.1' }, 'ipv4'],
    [{ vmId: 'a', ipv4: '10.63.0.2' }, 'ipv4'],
    [{ vmId: 'a', ipv4: '10.62.0.2', tap: 'x;reboot' }, 'tap'],
    [{ vmId: 'a', ipv4: '10.62.0.2', policy: { egress: 'some' } }, 'policy.egress'],
    [
      {
        vmId: 'a',
        ipv4: '10.62.0.2',
        policy: { egress: [{ cidr: '10.0.0.0/8', proto: 'icmp', ports: [1] }] },
      },
      'policy.egress.0.ports',
    ],
    [{ vmId: 'a', ipv4: '10.62.0.2', policy: { isolation: 'host' } }, 'policy.isolation'],
    [{ vmId: 'a', ipv4: '10.62.0.2', tapOwner: { uid: 0, gid: 1000 } }, 'tapOwner.uid'],
    [{ vmId: 'a', ipv4: '10.62.0.2', tapOwner: { uid: 1000, gid: 2 ** 32 - 1 } }, 'tapOwner.gid'],
    [
      {
        vmId: 'a',
        ipv4: '10.62.0.2',
        forwards: [{ protocol: 'tcp', hostPort: 80, guestIp: '10.62.0.3', guestPort: 80 }],
      },
      'forwards.0.guestIp',
    ],
  ])('refuses %j naming %s before any command', async (vm, field) => {
    const { network, commands, ops } = setup();
    const error = await network.attach(vm as never).catch((e: unknown) => e);
    expect(fieldOf(error)).toBe(field);
    expect(commands).toEqual([]);
    expect(ops.calls).toEqual([]);
  });

  it.each([
    [{ namespacePrefix: '-x' }, 'namespacePrefix'],
    [{ tableName: 'my-table' }, 'tableName'],
    [{ netns: 'a b' }, 'netns'],
    [{ hostPorts: [{ protocol: 'sctp', port: 1 }] }, 'hostPorts.0.protocol'],
    [{ hostPorts: [{ protocol: 'tcp', port: 70000 }] }, 'hostPorts.0.port'],
    [{ subnet: '10.62.0.0/31' }, 'subnet'],
  ])('refuses the option %j naming %s', (overrides, field) => {
    try {
      setup(overrides as Partial<NamespaceNetworkOptions>);
      expect.unreachable();
    } catch (error) {
      expect(fieldOf(error)).toBe(field);
    }
  });

  it('names the namespace after the VM id and enforces policies', () => {
    const { network } = setup({ namespacePrefix: 'vmns-' });
    expect(network.namespaceOf('0123456789ab')).toBe('vmns-0123456789ab');
    expect(network.enforcesPolicy).toBe(true);
  });
});
