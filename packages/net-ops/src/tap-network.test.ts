import { describe, expect, it, vi } from 'vitest';
import { deriveMac, deriveTapName } from './derive.js';
import { NetOpsError } from './errors.js';
import { createMemoryNetOps, type MemoryNetOpsOptions } from './memory-net-ops.js';
import { TapNetwork, type TapNetworkOptions } from './tap-network.js';
import { expectNetOpsError } from './testing/index.js';

const SUBNET = '10.231.0.0/24';

function setup(memory: MemoryNetOpsOptions = {}, options: Partial<TapNetworkOptions> = {}) {
  const ops = createMemoryNetOps(memory);
  const network = new TapNetwork({
    bridge: ops,
    tap: ops,
    nat: ops,
    bridgeName: 'kitbr0',
    subnet: SUBNET,
    ...options,
  });
  return { ops, network };
}

const injected = (code: NetOpsError['code'] = 'BACKEND_FAILURE') => new NetOpsError(code, 'injected');
const forward = (hostPort: number, guestIp = '10.231.0.10') => ({
  protocol: 'tcp' as const,
  hostPort,
  guestIp,
  guestPort: 80,
});

describe('TapNetwork construction', () => {
  it('derives gateway, netmask and the bridge address from the subnet', () => {
    const { network } = setup({}, { subnet: '10.231.0.77/24', mtu: 1400 });
    expect(network.subnet).toBe('10.231.0.0/24');
    expect(network.gateway).toBe('10.231.0.1');
    expect(network.netmask).toBe('255.255.255.0');
    expect(network.prefixLength).toBe(24);
    expect(network.bridgeSpec).toEqual({ name: 'kitbr0', address: '10.231.0.1/24', mtu: 1400 });
  });

  it('takes an explicit gateway inside the subnet', () => {
    const { network } = setup({}, { gateway: '10.231.0.254' });
    expect(network.bridgeSpec.address).toBe('10.231.0.254/24');
  });

  it.each([
    [{ bridgeName: 'bad name' }, 'bridgeName'],
    [{ bridgeName: 'kitbr0123456789x' }, 'bridgeName'],
    [{ subnet: '10.231.0.0/31' }, 'subnet'],
    [{ subnet: '10.231.0.0/32' }, 'subnet'],
    [{ subnet: 'nope' }, 'subnet'],
    [{ gateway: '10.231.1.1' }, 'gateway'],
    [{ gateway: '10.231.0.0' }, 'gateway'],
    [{ gateway: '10.231.0.255' }, 'gateway'],
    [{ mtu: 20 }, 'mtu'],
    [{ tapPrefix: 'myhvtoolong' }, 'prefix'],
    [{ tapPrefix: 'my hv' }, 'prefix'],
  ] as [Partial<TapNetworkOptions>, string][])(
    'rejects %o with INVALID_ARGUMENT naming %s',
    (options, field) => {
      let error: unknown;
      try {
        setup({}, options);
      } catch (e) {
        error = e;
      }
      expect(NetOpsError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
      expect((error as NetOpsError).details.field).toBe(field);
    },
  );

  it('missing ops are a TypeError', () => {
    const ops = createMemoryNetOps();
    expect(
      () => new TapNetwork({ bridge: ops, tap: {} as never, nat: ops, bridgeName: 'kitbr0', subnet: SUBNET }),
    ).toThrow(TypeError);
  });
});

describe('TapNetwork.attach', () => {
  it('ensures the bridge, creates, attaches and brings up the TAP, and describes the result', async () => {
    const { ops, network } = setup({}, { mtu: 1400 });
    const attachment = await network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10', hostname: 'vm-1' });
    const tap = deriveTapName('vm-1');
    expect(attachment).toEqual({
      tap,
      mac: deriveMac('vm-1'),
      bridge: 'kitbr0',
      ipv4: '10.231.0.10',
      gateway: '10.231.0.1',
      prefixLength: 24,
      netmask: '255.255.255.0',
      kernelIpArg: 'ip=10.231.0.10::10.231.0.1:255.255.255.0:vm-1:eth0:off',
      created: true,
    });
    // One createTap with the bridge: every v1 backend leaves the TAP attached and up (LocalOps in one `ip` run).
    expect(ops.calls.map((c) => c.operation)).toEqual(['ensureBridge', 'createTap']);
    expect(ops.calls[1]?.args).toEqual([{ name: tap, multiQueue: false, bridge: 'kitbr0', mtu: 1400 }]);
    expect(ops.snapshot()).toMatchObject({
      bridges: [{ name: 'kitbr0', address: '10.231.0.1/24', mtu: 1400, ports: [tap] }],
      taps: [{ name: tap, bridge: 'kitbr0', up: true, multiQueue: false }],
    });
  });

  it('uses the given TAP name, MAC and queue mode', async () => {
    const { ops, network } = setup();
    const attachment = await network.attach({
      vmId: 'vm-1',
      ipv4: '10.231.0.10',
      tap: 'tapvm1',
      mac: '02:AA:BB:CC:DD:EE',
      multiQueue: true,
    });
    expect(attachment).toMatchObject({ tap: 'tapvm1', mac: '02:aa:bb:cc:dd:ee' });
    expect(ops.snapshot().taps).toMatchObject([{ name: 'tapvm1', multiQueue: true }]);
  });

  it('a repeated attach adopts the TAP (created: false) and ensures the bridge only once', async () => {
    const { ops, network } = setup();
    await network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' });
    const again = await network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' });
    expect(again.created).toBe(false);
    expect(ops.calls.filter((c) => c.operation === 'ensureBridge')).toHaveLength(1);
  });

  for (const atomicTap of [false, true]) {
    it(`makes the bridge again when it vanished after the first attach (atomicTap ${atomicTap})`, async () => {
      const { ops, network } = setup({ atomicTap });
      await network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' });
      ops.reboot();
      const again = await network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' });
      expect(again.created).toBe(true);
      expect(ops.snapshot().bridges).toEqual([
        expect.objectContaining({ name: 'kitbr0', ports: [again.tap] }),
      ]);
      expect(ops.calls.filter((c) => c.operation === 'ensureBridge')).toHaveLength(2);
    });
  }

  it('with atomicTap, creates the TAP attached in one call', async () => {
    const { ops, network } = setup({ atomicTap: true }, { mtu: 1400 });
    const attachment = await network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' });
    expect(ops.calls.map((c) => c.operation)).toEqual(['ensureBridge', 'createTap']);
    expect(ops.calls[1]?.args).toEqual([
      { name: attachment.tap, multiQueue: false, bridge: 'kitbr0', mtu: 1400 },
    ]);
    expect(ops.snapshot().taps).toMatchObject([{ name: attachment.tap, bridge: 'kitbr0', up: true }]);
  });

  it('installs the requested forwards after the TAP', async () => {
    const { ops, network } = setup();
    await network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10', forwards: [forward(8080), forward(8443)] });
    expect(ops.calls.map((c) => c.operation).slice(-2)).toEqual(['addPortForward', 'addPortForward']);
    expect(ops.snapshot().forwards).toEqual([forward(8080), forward(8443)]);
  });

  it('runs 20 attaches at once with one ensureBridge', async () => {
    const { ops, network } = setup({ delayMs: 2 });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => network.attach({ vmId: `vm-${i}`, ipv4: `10.231.0.${10 + i}` })),
    );
    expect(new Set(results.map((r) => r.tap)).size).toBe(20);
    expect(ops.calls.filter((c) => c.operation === 'ensureBridge')).toHaveLength(1);
    expect(ops.snapshot().bridges[0]?.ports).toHaveLength(20);
  });

  it('retries ensureBridge after a failure', async () => {
    let fail = true;
    const { ops, network } = setup({
      failOn: (op) => (op === 'ensureBridge' && fail ? injected('BACKEND_UNAVAILABLE') : undefined),
    });
    await expectNetOpsError(network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' }), 'BACKEND_UNAVAILABLE');
    expect(ops.snapshot().taps).toEqual([]);
    fail = false;
    expect((await network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' })).created).toBe(true);
    expect(ops.calls.filter((c) => c.operation === 'ensureBridge')).toHaveLength(2);
  });

  it("one caller's abort of the shared ensureBridge does not fail another caller", async () => {
    const { ops, network } = setup({ delayMs: 50 });
    const controller = new AbortController();
    const first = network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' }, { signal: controller.signal });
    const second = network.attach({ vmId: 'vm-2', ipv4: '10.231.0.11' });
    setTimeout(() => controller.abort(), 5);
    await expectNetOpsError(first, 'ABORTED');
    expect((await second).created).toBe(true);
    expect(ops.snapshot().taps.map((t) => t.name)).toEqual([deriveTapName('vm-2')]);
  });

  describe('rollback', () => {
    it('a createTap failure is rethrown, and nothing is left to undo', async () => {
      const { ops, network } = setup({
        failOn: (op) => (op === 'createTap' ? injected('PERMISSION_DENIED') : undefined),
      });
      await expectNetOpsError(network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' }), 'PERMISSION_DENIED');
      expect(ops.snapshot().taps).toEqual([]);
      expect(ops.calls.map((c) => c.operation)).toEqual(['ensureBridge', 'createTap']);
    });

    it.each([false, true])(
      'a NAT failure after the TAP removes the forwards and TAP it made (atomicTap %s)',
      async (atomicTap) => {
        const { ops, network } = setup({
          atomicTap,
          failOn: (op, args) =>
            op === 'addPortForward' && (args[0] as { hostPort: number }).hostPort === 8443
              ? injected()
              : undefined,
        });
        // A forward that already existed (identical) is not ours to remove.
        await ops.addPortForward(forward(9000));
        await expectNetOpsError(
          network.attach({
            vmId: 'vm-1',
            ipv4: '10.231.0.10',
            forwards: [forward(8080), forward(9000), forward(8443)],
          }),
          'BACKEND_FAILURE',
        );
        expect(ops.snapshot().taps).toEqual([]);
        expect(ops.snapshot().forwards).toEqual([forward(9000)]);
      },
    );

    it('a forward CONFLICT rolls back too and is rethrown as is', async () => {
      const { ops, network } = setup();
      await ops.addPortForward(forward(8080, '10.231.0.99'));
      await expectNetOpsError(
        network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10', forwards: [forward(8080)] }),
        'CONFLICT',
      );
      expect(ops.snapshot().taps).toEqual([]);
    });

    it('leaves an adopted TAP in place', async () => {
      const { ops, network } = setup({ failOn: (op) => (op === 'addPortForward' ? injected() : undefined) });
      await ops.createTap({ name: deriveTapName('vm-1') });
      await expectNetOpsError(
        network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10', forwards: [forward(8080)] }),
        'BACKEND_FAILURE',
      );
      expect(ops.snapshot().taps.map((t) => t.name)).toEqual([deriveTapName('vm-1')]);
      expect(ops.calls.some((c) => c.operation === 'deleteTap')).toBe(false);
    });

    it('an abort between steps still rolls back', async () => {
      const controller = new AbortController();
      const { ops, network } = setup({
        failOn: (op) => {
          // Abort once the TAP exists, while its forwards are being added.
          if (op === 'addPortForward') controller.abort();
          return undefined;
        },
      });
      await expectNetOpsError(
        network.attach(
          { vmId: 'vm-1', ipv4: '10.231.0.10', forwards: [forward(8080)] },
          { signal: controller.signal },
        ),
        'ABORTED',
      );
      expect(ops.calls.map((c) => c.operation)).toEqual([
        'ensureBridge',
        'createTap',
        'addPortForward',
        'deleteTap',
      ]);
      expect(ops.snapshot().taps).toEqual([]);
    });

    it('reports a failed undo step and rethrows the original error', async () => {
      const onRollbackError = vi.fn();
      const { ops, network } = setup(
        {
          failOn: (op) =>
            op === 'addPortForward'
              ? injected('PERMISSION_DENIED')
              : op === 'deleteTap'
                ? injected()
                : undefined,
        },
        { onRollbackError },
      );
      await expectNetOpsError(
        network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10', forwards: [forward(8080)] }),
        'PERMISSION_DENIED',
      );
      expect(onRollbackError).toHaveBeenCalledTimes(1);
      const [error, step] = onRollbackError.mock.calls[0]!;
      expect(NetOpsError.isInstance(error) && error.code).toBe('BACKEND_FAILURE');
      expect(step).toBe(`deleteTap ${deriveTapName('vm-1')}`);
      expect(ops.snapshot().taps).toHaveLength(1);
    });
  });

  describe('validation happens before any operation', () => {
    it.each([
      [{ vmId: '', ipv4: '10.231.0.10' }, 'vmId'],
      [{ vmId: 'vm\n1', ipv4: '10.231.0.10' }, 'vmId'],
      [{ vmId: 'x'.repeat(257), ipv4: '10.231.0.10' }, 'vmId'],
      [{ vmId: 'vm-1', ipv4: '10.231.1.10' }, 'ipv4'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.0' }, 'ipv4'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.1' }, 'ipv4'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.255' }, 'ipv4'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.300' }, 'ipv4'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', tap: 'tap;reboot' }, 'tap'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', tap: 'kittap0123456789' }, 'tap'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', mac: '01:00:5e:00:00:01' }, 'mac'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', mac: '00:16:3e:12:34:56' }, 'mac'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', hostname: 'vm 1 init=/bin/sh' }, 'hostname'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', hostname: 'vm:1' }, 'hostname'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', multiQueue: 'yes' }, 'multiQueue'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', forwards: [forward(80, '10.231.0.11')] }, 'forwards.0.guestIp'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', forwards: [forward(0)] }, 'forwards.0.hostPort'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', tapOwner: { uid: 0, gid: 1000 } }, 'tapOwner.uid'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', tapOwner: { uid: 1000, gid: 0 } }, 'tapOwner.gid'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', tapOwner: { uid: -1, gid: 1000 } }, 'tapOwner.uid'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', tapOwner: { uid: 1000, gid: 2 ** 32 - 1 } }, 'tapOwner.gid'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', tapOwner: { uid: 1.5, gid: 1000 } }, 'tapOwner.uid'],
      [{ vmId: 'vm-1', ipv4: '10.231.0.10', tapOwner: { uid: '1000', gid: 1000 } }, 'tapOwner.uid'],
    ])('%o is INVALID_ARGUMENT naming %s', async (vm, field) => {
      const { ops, network } = setup();
      const error = await expectNetOpsError(network.attach(vm as never), 'INVALID_ARGUMENT');
      expect(error.details.field).toBe(field);
      expect(ops.calls).toEqual([]);
    });

    it('an already-aborted signal is ABORTED and calls nothing', async () => {
      const { ops, network } = setup();
      const signal = AbortSignal.abort();
      await expectNetOpsError(network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' }, { signal }), 'ABORTED');
      await expectNetOpsError(network.detach({ vmId: 'vm-1' }, { signal }), 'ABORTED');
      await expectNetOpsError(network.addForward(forward(80), { signal }), 'ABORTED');
      await expectNetOpsError(network.removeForward(forward(80), { signal }), 'ABORTED');
      await expectNetOpsError(network.ensureBridge({ signal }), 'ABORTED');
      expect(ops.calls).toEqual([]);
    });

    it('a request that is not an object is a TypeError', async () => {
      const { network } = setup();
      await expect(network.attach(undefined as never)).rejects.toBeInstanceOf(TypeError);
    });
  });
});

describe('TapNetwork.detach', () => {
  it('deletes the derived TAP and reports whether it existed', async () => {
    const { ops, network } = setup();
    await network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' });
    expect(await network.detach({ vmId: 'vm-1' })).toEqual({ tap: deriveTapName('vm-1'), existed: true });
    expect(await network.detach({ vmId: 'vm-1' })).toEqual({ tap: deriveTapName('vm-1'), existed: false });
    expect(ops.snapshot().bridges[0]?.ports).toEqual([]);
  });

  it('removes the given forwards and an explicit TAP name', async () => {
    const { ops, network } = setup();
    await network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10', tap: 'tapvm1', forwards: [forward(8080)] });
    expect(
      await network.detach({ vmId: 'vm-1', tap: 'tapvm1', forwards: [forward(8080), forward(8081)] }),
    ).toEqual({
      tap: 'tapvm1',
      existed: true,
    });
    expect(ops.snapshot()).toMatchObject({ taps: [], forwards: [] });
  });

  it('rejects a hostile TAP name', async () => {
    const { network } = setup();
    const error = await expectNetOpsError(network.detach({ vmId: 'vm-1', tap: '../x' }), 'INVALID_ARGUMENT');
    expect(error.details.field).toBe('tap');
  });
});

describe('TapNetwork forwards', () => {
  it('addForward ensures the bridge, then delegates; removeForward delegates', async () => {
    const { ops, network } = setup();
    expect(await network.addForward(forward(8080))).toEqual({ created: true });
    expect(await network.addForward(forward(8080))).toEqual({ created: false });
    expect(ops.calls.map((c) => c.operation)).toEqual(['ensureBridge', 'addPortForward', 'addPortForward']);
    await expectNetOpsError(network.removeForward(forward(8080, '10.231.0.11')), 'CONFLICT');
    expect(await network.removeForward(forward(8080))).toEqual({ existed: true });
  });

  it.each([
    [forward(80, '10.231.1.10'), 'rule.guestIp'],
    [forward(80, '10.231.0.1'), 'rule.guestIp'],
    [forward(80, '10.231.0.255'), 'rule.guestIp'],
    [forward(70000), 'rule.hostPort'],
    [{ ...forward(80), protocol: 'sctp' }, 'rule.protocol'],
  ])('%o is INVALID_ARGUMENT naming %s', async (rule, field) => {
    const { ops, network } = setup();
    const add = await expectNetOpsError(network.addForward(rule as never), 'INVALID_ARGUMENT');
    const remove = await expectNetOpsError(network.removeForward(rule as never), 'INVALID_ARGUMENT');
    expect([add.details.field, remove.details.field]).toEqual([field, field]);
    expect(ops.calls).toEqual([]);
  });
});

describe('TapNetwork and network policies', () => {
  it('refuses isolation or a restricted egress it cannot enforce, and accepts the open policy', async () => {
    const ops = createMemoryNetOps();
    const network = new TapNetwork({
      bridge: ops,
      tap: ops,
      nat: ops,
      bridgeName: 'br0',
      subnet: '10.62.0.0/24',
    });
    await expect(
      network.attach({ vmId: 'a', ipv4: '10.62.0.2', policy: { isolation: 'vm' } }),
    ).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    await expect(
      network.attach({ vmId: 'a', ipv4: '10.62.0.2', policy: { egress: 'deny-all' } }),
    ).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    await expect(
      network.attach({ vmId: 'a', ipv4: '10.62.0.2', policy: { egress: [{ cidr: 'nope' }] } }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: 'policy.egress.0.cidr' } });
    expect(ops.snapshot().taps).toEqual([]);
    const attached = await network.attach({
      vmId: 'a',
      ipv4: '10.62.0.2',
      policy: { isolation: 'none', egress: 'allow-all' },
    });
    expect(attached.netns).toBeUndefined();
  });
});

describe('TapNetwork and TAP owners', () => {
  const owner = { uid: 4000, gid: 4001 };

  it('creates the TAP with the owner, and gives an adopted TAP of another owner the new one', async () => {
    const { ops, network } = setup();
    expect(network.setsTapOwner).toBe(true);
    await network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10', tapOwner: owner });
    expect(ops.snapshot().taps).toMatchObject([{ name: deriveTapName('vm-1'), owner }]);
    const again = await network.attach({
      vmId: 'vm-1',
      ipv4: '10.231.0.10',
      tapOwner: { uid: 4002, gid: 4003 },
    });
    expect(again.created).toBe(false);
    expect(ops.snapshot().taps).toMatchObject([{ owner: { uid: 4002, gid: 4003 } }]);
  });

  it.each([
    ['tapOwner', { tapOwner: false }],
    ['reownsTap', { reownsTap: false }],
  ])('without capabilities.%s, a tapOwner is UNSUPPORTED and nothing runs', async (_, capabilities) => {
    const { ops, network } = setup({ capabilities });
    expect(network.setsTapOwner).toBe(false);
    const error = await expectNetOpsError(
      network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10', tapOwner: owner }),
      'UNSUPPORTED',
    );
    expect(error.details.field).toBe('tapOwner');
    expect(ops.calls).toEqual([]);
    expect((await network.attach({ vmId: 'vm-1', ipv4: '10.231.0.10' })).created).toBe(true);
  });
});
