import { ChvClient } from '@my-hypervisor/chv-client';
import { MyceliumNetwork, type TapNetwork } from '@my-hypervisor/net-ops';
import { describe, expect, it } from 'vitest';
import { VmManager } from '../src/index.js';
import { makeHarness } from './harness.js';

describe('mycelium VMs', () => {
  it('gives a VM that asks for mycelium an address in the node /64, on its kernel command line', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const network = h.manager.options.network as TapNetwork;
    const node = { nodeSubnet: async () => '4a2:1b3c:4d5e:6f70::/64' };
    const manager = new VmManager({
      ...h.manager.options,
      mycelium: new MyceliumNetwork({ network, node, bridge: h.ops }),
    });
    const plain = await manager.create({ name: 'plain', kernel: h.kernel });
    expect(plain.ipv6).toBeUndefined();
    const vm = await manager.create({ name: 'myc', kernel: h.kernel, network: { mycelium: true } });
    expect(vm.ipv6).toMatch(/^4a2:1b3c:4d5e:6f70:/);
    await using client = new ChvClient({ socketPath: vm.paths.socket! });
    const cmdline = (await client.vmInfo()).config.payload?.cmdline ?? '';
    expect(cmdline).toContain(`myhv.ipv6=${vm.ipv6}/64,4a2:1b3c:4d5e:6f70::1,400::/7`);
    expect(cmdline).toContain(`ip=${vm.ip}::`);
    client.close();
    // Both kinds share the bridge and the address pool.
    expect(new Set([plain.ip, vm.ip]).size).toBe(2);
    expect(h.memory!.snapshot().bridges[0]?.ipv6Address).toBe('4a2:1b3c:4d5e:6f70::1/64');
    await manager.delete('myc', { force: true });
    await manager.delete('plain', { force: true });
  });

  it('refuses a mycelium VM when no mycelium network is configured, before creating anything', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await expect(
      h.manager.create({ name: 'myc', kernel: h.kernel, network: { mycelium: true } }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: { field: 'network.mycelium' },
    });
    expect(h.memory!.calls).toEqual([]);
  });
});
