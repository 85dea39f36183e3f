import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveTapName } from './derive.js';
import { NetOpsError } from './errors.js';
import { createMemoryNetOps, type MemoryNetOpsOptions } from './memory-net-ops.js';
import { MyceliumAdminApi } from './mycelium-admin-api.js';
import { deriveMyceliumAddress, MyceliumNetwork, parseMyceliumSubnet } from './mycelium-network.js';
import type { MyceliumNode } from './mycelium-node.js';
import { TapNetwork } from './tap-network.js';
import { expectNetOpsError } from './testing/index.js';
import { parseIPv6 } from './validation.js';

const NODE_SUBNET = '4a2:e1f0:1b3c:9d7e::/64';
let server: Server;
let adminUrl: string;
let adminRequests = 0;

beforeAll(async () => {
  // Answers like mycelium's admin API.
  server = createServer((req, res) => {
    adminRequests++;
    if (req.url !== '/api/v1/admin') {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ nodeSubnet: NODE_SUBNET, nodePubkey: '00'.repeat(32) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  adminUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

function setup(node?: MyceliumNode, memory: MemoryNetOpsOptions = {}) {
  const ops = createMemoryNetOps(memory);
  const network = new TapNetwork({
    bridge: ops,
    tap: ops,
    nat: ops,
    bridgeName: 'kitbr0',
    subnet: '10.231.0.0/24',
  });
  const mycelium = new MyceliumNetwork({ network, node: node ?? new MyceliumAdminApi({ url: adminUrl }) });
  return { ops, network, mycelium };
}

describe('MyceliumNetwork over a local admin API', () => {
  it('attaches with an IPv6 in the node /64, gateway <prefix>::1 and a route to 400::/7', async () => {
    const { ops, mycelium } = setup();
    const attachment = await mycelium.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' });
    expect(attachment).toMatchObject({ tap: deriveTapName('vm-1'), ipv4: '10.231.0.10', bridge: 'kitbr0' });
    expect(attachment.ipv6).toEqual({
      address: deriveMyceliumAddress(NODE_SUBNET, 'vm-1'),
      prefixLength: 64,
      gateway: '4a2:e1f0:1b3c:9d7e::1',
      routes: ['400::/7'],
    });
    expect(attachment.ipv6?.address.startsWith('4a2:e1f0:1b3c:9d7e:')).toBe(true);
    expect(ops.snapshot().bridges).toMatchObject([
      { name: 'kitbr0', address: '10.231.0.1/24', ipv6Address: '4a2:e1f0:1b3c:9d7e::1/64' },
    ]);
    expect(mycelium.bridge).toBe('kitbr0');
    expect(mycelium.subnet).toBe('10.231.0.0/24');
  });

  it('asks the node once for many attaches', async () => {
    const { mycelium } = setup();
    const before = adminRequests;
    await Promise.all(
      [0, 1, 2, 3].map((i) => mycelium.attach({ vmId: `vm-${i}`, ipv4: `10.231.0.${10 + i}` })),
    );
    expect(adminRequests - before).toBe(1);
  });

  it('detach and forwards go through the TapNetwork', async () => {
    const { ops, mycelium } = setup();
    await mycelium.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' });
    const rule = { protocol: 'tcp' as const, hostPort: 8080, guestIp: '10.231.0.10', guestPort: 80 };
    expect(await mycelium.addForward(rule)).toEqual({ created: true });
    expect(await mycelium.removeForward(rule)).toEqual({ existed: true });
    expect(await mycelium.detach({ vmId: 'vm-1' })).toEqual({ tap: deriveTapName('vm-1'), existed: true });
    expect(ops.snapshot().taps).toEqual([]);
  });

  it('an unreachable node is BACKEND_UNAVAILABLE and nothing is created; the next attach retries', async () => {
    let up = false;
    const node: MyceliumNode = {
      nodeSubnet: async () => {
        if (!up) throw new NetOpsError('BACKEND_UNAVAILABLE', 'down');
        return NODE_SUBNET;
      },
    };
    const { ops, mycelium } = setup(node);
    await expectNetOpsError(mycelium.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' }), 'BACKEND_UNAVAILABLE');
    // The TAP the failed attach created is gone again.
    expect(ops.calls.map((c) => c.operation)).toContain('deleteTap');
    expect(ops.snapshot().taps).toEqual([]);
    up = true;
    expect((await mycelium.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' })).ipv6?.prefixLength).toBe(64);
  });

  it.each([
    ['outside 400::/7', 'fd00:1:2:3::/64'],
    ['not a /64', '4a2:e1f0:1b3c::/48'],
    ['not a CIDR', 'garbage'],
  ])('a node subnet %s is BACKEND_FAILURE', async (_what, subnet) => {
    const { ops, mycelium } = setup({ nodeSubnet: async () => subnet });
    await expectNetOpsError(mycelium.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' }), 'BACKEND_FAILURE');
    expect(ops.snapshot().taps).toEqual([]);
  });

  it('a bridge backend without IPv6 is UNSUPPORTED before anything happens', async () => {
    const { ops, mycelium } = setup(undefined, { capabilities: { ipv6: false } });
    await expectNetOpsError(mycelium.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' }), 'UNSUPPORTED');
    expect(ops.calls).toEqual([]);
  });

  it('sets TAP owners exactly when its IPv4 network does', async () => {
    expect(setup().mycelium.setsTapOwner).toBe(true);
    const { ops, mycelium } = setup(undefined, { capabilities: { reownsTap: false } });
    expect(mycelium.setsTapOwner).toBe(false);
    const vm = { vmId: 'vm-1', ipv4: '10.231.0.10', tapOwner: { uid: 4000, gid: 4000 } };
    await expectNetOpsError(mycelium.attach(vm), 'UNSUPPORTED');
    expect(ops.snapshot().taps).toEqual([]);
  });

  it('an already-aborted signal is ABORTED and calls nothing', async () => {
    const { ops, mycelium } = setup();
    const before = adminRequests;
    await expectNetOpsError(
      mycelium.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' }, { signal: AbortSignal.abort() }),
      'ABORTED',
    );
    expect(ops.calls).toEqual([]);
    expect(adminRequests).toBe(before);
  });

  it('invalid VM input is INVALID_ARGUMENT before the node or any ops are asked', async () => {
    const { ops, mycelium } = setup();
    const before = adminRequests;
    await expectNetOpsError(mycelium.attach({ vmId: 'vm-1', ipv4: '10.231.9.10' }), 'INVALID_ARGUMENT');
    expect(ops.calls).toEqual([]);
    expect(adminRequests).toBe(before);
  });

  it('an adopted TAP is left in place when the IPv6 step fails', async () => {
    const { ops, mycelium } = setup({ nodeSubnet: async () => 'fd00::/64' });
    await ops.createTap({ name: deriveTapName('vm-1') });
    await expectNetOpsError(mycelium.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' }), 'BACKEND_FAILURE');
    expect(ops.snapshot().taps.map((t) => t.name)).toEqual([deriveTapName('vm-1')]);
  });
});

describe('deriveMyceliumAddress', () => {
  it('is stable, inside the /64, never ::0 or ::1, and distinct for 10,000 ids', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      const address = deriveMyceliumAddress(NODE_SUBNET, `vm-${i}`);
      const groups = parseIPv6(address)!;
      expect(groups.slice(0, 4)).toEqual([0x4a2, 0xe1f0, 0x1b3c, 0x9d7e]);
      expect(groups.slice(4).some((g, j) => (j === 3 ? g > 1 : g !== 0))).toBe(true);
      seen.add(address);
    }
    expect(seen.size).toBe(10_000);
    expect(deriveMyceliumAddress(NODE_SUBNET, 'vm-1')).toBe(deriveMyceliumAddress(NODE_SUBNET, 'vm-1'));
  });

  it('rejects a subnet outside 400::/7', () => {
    expect(() => deriveMyceliumAddress('2001:db8::/64', 'vm-1')).toThrow(NetOpsError);
  });
});

describe('parseMyceliumSubnet', () => {
  it.each(['400::/64', '5ff:ffff:ffff:ffff::/64', '4a2:e1f0:1b3c:9d7e:1::/64'])('accepts %s', (subnet) => {
    expect(parseMyceliumSubnet(subnet).prefixLength).toBe(64);
  });

  it.each(['3ff:ffff::/64', '600::/64', '400::/63', '400::/65', '400::', 42])('rejects %s', (subnet) => {
    let error: unknown;
    try {
      parseMyceliumSubnet(subnet);
    } catch (e) {
      error = e;
    }
    expect(NetOpsError.isInstance(error) && error.code).toBe('BACKEND_FAILURE');
  });
});
