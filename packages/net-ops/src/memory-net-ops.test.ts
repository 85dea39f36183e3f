import { describe, expect, it, vi } from 'vitest';
import { NetOpsError } from './errors.js';
import { createMemoryNetOps } from './memory-net-ops.js';
import { expectNetOpsError, runNetOpsConformance } from './testing/index.js';

const asOps = (ops: ReturnType<typeof createMemoryNetOps>) => ({ bridge: ops, tap: ops, nat: ops });

runNetOpsConformance('createMemoryNetOps()', { factory: () => asOps(createMemoryNetOps()) });
runNetOpsConformance('createMemoryNetOps({ atomicTap: true })', {
  factory: () => asOps(createMemoryNetOps({ atomicTap: true })),
});
runNetOpsConformance('createMemoryNetOps() with every optional capability off', {
  factory: () =>
    asOps(
      createMemoryNetOps({
        capabilities: {
          listBridgePorts: false,
          listPortForwards: false,
          multiQueue: false,
          tapOwner: false,
          ipv6: false,
        },
      }),
    ),
});

describe('createMemoryNetOps specifics', () => {
  it('declares every capability but atomicTap, and atomicTap on request', () => {
    expect(createMemoryNetOps().capabilities).toEqual({
      listBridgePorts: true,
      listPortForwards: true,
      atomicTap: false,
      multiQueue: true,
      tapOwner: true,
      reownsTap: true,
      ipv6: true,
    });
    expect(createMemoryNetOps({ atomicTap: true }).capabilities.atomicTap).toBe(true);
    expect(createMemoryNetOps({ capabilities: { ipv6: false } }).capabilities.ipv6).toBe(false);
  });

  it('snapshot() shows bridges, TAPs with their bridge and state, and forwards', async () => {
    const ops = createMemoryNetOps();
    await ops.ensureBridge({ name: 'br0', address: '10.231.0.1/24', mtu: 1400, ipv6Address: 'FD00::1/64' });
    await ops.createTap({ name: 'tap0', multiQueue: true, owner: { uid: 1000, gid: 1000 } });
    await ops.addToBridge('tap0', 'br0');
    await ops.createTap({ name: 'tap1' });
    await ops.addPortForward({
      protocol: 'udp',
      hostPort: 53,
      guestIp: '10.231.0.2',
      guestPort: 53,
      owner: 'vm1',
    });
    expect(ops.snapshot()).toEqual({
      bridges: [
        { name: 'br0', address: '10.231.0.1/24', mtu: 1400, ipv6Address: 'fd00::1/64', ports: ['tap0'] },
      ],
      taps: [
        {
          name: 'tap0',
          multiQueue: true,
          mtu: 1400,
          owner: { uid: 1000, gid: 1000 },
          bridge: 'br0',
          up: false,
        },
        { name: 'tap1', multiQueue: false, up: false },
      ],
      forwards: [{ protocol: 'udp', hostPort: 53, guestIp: '10.231.0.2', guestPort: 53, owner: 'vm1' }],
    });
    await ops.bringUp('tap0');
    expect(ops.snapshot().taps.find((t) => t.name === 'tap0')?.up).toBe(true);
  });

  it('snapshot() is a copy', async () => {
    const ops = createMemoryNetOps();
    await ops.addPortForward({ protocol: 'tcp', hostPort: 80, guestIp: '10.231.0.2', guestPort: 80 });
    const snap = ops.snapshot();
    (snap.forwards[0] as { guestPort: number }).guestPort = 1;
    expect(ops.snapshot().forwards[0]?.guestPort).toBe(80);
  });

  it('ensureBridge replaces the address and keeps the MTU and IPv6 address when omitted', async () => {
    const ops = createMemoryNetOps();
    await ops.ensureBridge({ name: 'br0', address: '10.231.0.1/24', mtu: 1400, ipv6Address: 'fd00::1/64' });
    await ops.ensureBridge({ name: 'br0', address: '10.231.0.254/24' });
    expect(ops.snapshot().bridges[0]).toMatchObject({
      address: '10.231.0.254/24',
      mtu: 1400,
      ipv6Address: 'fd00::1/64',
    });
  });

  it('failOn makes the named operation fail before anything changes, with the arguments it got', async () => {
    const seen: unknown[] = [];
    const ops = createMemoryNetOps({
      failOn: (operation, args) => {
        if (operation !== 'createTap') return undefined;
        seen.push(args);
        return new NetOpsError('PERMISSION_DENIED', 'injected');
      },
    });
    await expectNetOpsError(ops.createTap({ name: 'tap0' }), 'PERMISSION_DENIED');
    expect(seen).toEqual([[{ name: 'tap0' }]]);
    expect(ops.snapshot().taps).toEqual([]);
    expect((await ops.ensureBridge({ name: 'br0', address: '10.231.0.1/24' })).created).toBe(true);
  });

  it('failOn is not consulted for invalid input or an aborted signal', async () => {
    const failOn = vi.fn(() => undefined);
    const ops = createMemoryNetOps({ failOn });
    await expectNetOpsError(ops.createTap({ name: 'bad name' }), 'INVALID_ARGUMENT');
    await expectNetOpsError(ops.createTap({ name: 'tap0' }, { signal: AbortSignal.abort() }), 'ABORTED');
    expect(failOn).not.toHaveBeenCalled();
  });

  it('records every call, including failed ones', async () => {
    const ops = createMemoryNetOps();
    await ops.ensureBridge({ name: 'br0', address: '10.231.0.1/24' });
    await ops.bringUp('nope').catch(() => {});
    await ops.listPortForwards();
    expect(ops.calls).toEqual([
      { operation: 'ensureBridge', args: [{ name: 'br0', address: '10.231.0.1/24' }] },
      { operation: 'bringUp', args: ['nope'] },
      { operation: 'listPortForwards', args: [] },
    ]);
  });

  it('delayMs: an abort during the delay is ABORTED and changes nothing; a timeout is TIMEOUT', async () => {
    const ops = createMemoryNetOps({ delayMs: 200 });
    const controller = new AbortController();
    const pending = ops.createTap({ name: 'tap0' }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 10);
    await expectNetOpsError(pending, 'ABORTED');
    await expectNetOpsError(ops.createTap({ name: 'tap0' }, { signal: AbortSignal.timeout(10) }), 'TIMEOUT');
    expect(ops.snapshot().taps).toEqual([]);
  });

  it('a TAP takes the MTU of the bridge it joins', async () => {
    const ops = createMemoryNetOps();
    await ops.ensureBridge({ name: 'br0', address: '10.231.0.1/24', mtu: 1380 });
    await ops.createTap({ name: 'tap0', mtu: 9000, bridge: 'br0' });
    expect(ops.snapshot().taps[0]?.mtu).toBe(1380);
  });

  it('addToBridge moves a TAP from one bridge to another', async () => {
    const ops = createMemoryNetOps();
    await ops.ensureBridge({ name: 'br0', address: '10.231.0.1/24' });
    await ops.ensureBridge({ name: 'br1', address: '10.231.1.1/24' });
    await ops.createTap({ name: 'tap0', bridge: 'br0' });
    await ops.addToBridge('tap0', 'br1');
    expect(await ops.listBridgePorts('br0')).toEqual([]);
    expect(await ops.listBridgePorts('br1')).toEqual([{ name: 'tap0' }]);
  });

  it('deleteTap of a bridge is CONFLICT and keeps the bridge', async () => {
    const ops = createMemoryNetOps();
    await ops.ensureBridge({ name: 'br0', address: '10.231.0.1/24' });
    await expectNetOpsError(ops.deleteTap('br0'), 'CONFLICT');
    expect(ops.snapshot().bridges).toHaveLength(1);
  });

  it('addToBridge with a bridge name as the TAP is NOT_FOUND', async () => {
    const ops = createMemoryNetOps();
    await ops.ensureBridge({ name: 'br0', address: '10.231.0.1/24' });
    await ops.ensureBridge({ name: 'br1', address: '10.231.1.1/24' });
    await expectNetOpsError(ops.addToBridge('br1', 'br0'), 'NOT_FOUND');
  });

  it('rejects bad owners and non-boolean multiQueue with INVALID_ARGUMENT naming the field', async () => {
    const ops = createMemoryNetOps();
    const uid = await expectNetOpsError(
      ops.createTap({ name: 't', owner: { uid: -1, gid: 0 } }),
      'INVALID_ARGUMENT',
    );
    expect(uid.details.field).toBe('owner.uid');
    const gid = await expectNetOpsError(
      ops.createTap({ name: 't', owner: { uid: 0, gid: 1.5 } }),
      'INVALID_ARGUMENT',
    );
    expect(gid.details.field).toBe('owner.gid');
    const mq = await expectNetOpsError(
      ops.createTap({ name: 't', multiQueue: 'yes' as unknown as boolean }),
      'INVALID_ARGUMENT',
    );
    expect(mq.details.field).toBe('multiQueue');
  });

  it('a spec that is not an object is a TypeError (a programmer error)', async () => {
    const ops = createMemoryNetOps();
    await expect(ops.createTap(undefined as unknown as { name: string })).rejects.toBeInstanceOf(TypeError);
    await expect(
      ops.ensureBridge(null as unknown as { name: string; address: string }),
    ).rejects.toBeInstanceOf(TypeError);
  });
});
