import { TapNetwork } from '@my-hypervisor/net-ops';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeOps } from '../test/support/fake-ops.js';
import { ok, type RawRequest, rawPeer, socketDir } from '../test/support/sockets.js';
import { defaultMosnetCapabilities } from './discovery.js';
import { mosnetMethods } from './methods.js';
import { MosnetClient } from './mosnet-client.js';
import { MosnetOps } from './mosnet-ops.js';
import { openrpcDocument } from './openrpc-document.js';
import { createMosnetServer, type MosnetServer } from './server/index.js';

let dir: Awaited<ReturnType<typeof socketDir>>;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  dir = await socketDir();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await dir.remove();
});

async function serve(ops = new FakeOps()): Promise<{ ops: FakeOps; server: MosnetServer }> {
  const server = await createMosnetServer({ ops, socketPath: dir.path() });
  cleanups.push(() => server.close());
  return { ops, server };
}

function mosnetOps(): MosnetOps {
  const ops = new MosnetOps({ socketPath: dir.path() });
  cleanups.push(() => ops.close());
  return ops;
}

/** A peer that records every request and answers with `answer(request)`. */
async function recordingPeer(answer: (request: RawRequest) => unknown = () => ({})) {
  const requests: RawRequest[] = [];
  const peer = await rawPeer(dir.path(), (request, socket) => {
    requests.push(request);
    const reply = answer(request);
    socket.write(
      reply instanceof Error
        ? `${JSON.stringify({ jsonrpc: '2.0', id: request.id, error: { code: -32601, message: reply.message } })}\n`
        : ok(request.id, reply),
    );
  });
  cleanups.push(peer.close);
  return requests;
}

const rule = { protocol: 'tcp', hostPort: 8080, guestIp: '10.62.0.2', guestPort: 80 } as const;

describe('MosnetOps: what goes on the wire', () => {
  it('sends each operation as its mosnet method with snake_case params by name', async () => {
    const requests = await recordingPeer((request) => {
      const p = request.params as { name?: string };
      if (request.method === mosnetMethods.bridgeAdd || request.method === mosnetMethods.createTap)
        return { name: p.name, created: true };
      if (request.method === mosnetMethods.deleteTap) return { name: p.name, existed: true };
      if (request.method === mosnetMethods.addForward) return { created: true };
      return { existed: true };
    });
    const ops = mosnetOps();
    expect(
      await ops.ensureBridge({ name: 'br0', address: '10.62.0.1/24', mtu: 1500, ipv6Address: 'fd00::1/64' }),
    ).toEqual({ name: 'br0', created: true });
    expect(
      await ops.createTap({
        name: 'tap0',
        bridge: 'br0',
        mtu: 1500,
        multiQueue: true,
        owner: { uid: 1000, gid: 1000 },
      }),
    ).toEqual({ name: 'tap0', created: true });
    expect(await ops.deleteTap('tap0')).toEqual({ name: 'tap0', existed: true });
    expect(await ops.addPortForward({ ...rule, hostIp: '192.0.2.1', owner: 'vm-1' })).toEqual({
      created: true,
    });
    expect(await ops.removePortForward(rule)).toEqual({ existed: true });
    expect(requests.map(({ method, params }) => ({ method, params }))).toEqual([
      {
        method: 'mosnet.bridge.add',
        params: { name: 'br0', address: '10.62.0.1/24', mtu: 1500, ipv6_address: 'fd00::1/64' },
      },
      {
        method: 'mosnet.vm.create_tap',
        params: {
          name: 'tap0',
          bridge: 'br0',
          mtu: 1500,
          multi_queue: true,
          owner: { uid: 1000, gid: 1000 },
        },
      },
      { method: 'mosnet.vm.delete_tap', params: { name: 'tap0' } },
      {
        method: 'mosnet.nat.add_forward',
        params: {
          protocol: 'tcp',
          host_port: 8080,
          guest_ip: '10.62.0.2',
          guest_port: 80,
          host_ip: '192.0.2.1',
          owner: 'vm-1',
        },
      },
      {
        method: 'mosnet.nat.remove_forward',
        params: { protocol: 'tcp', host_port: 8080, guest_ip: '10.62.0.2', guest_port: 80 },
      },
    ]);
    expect(requests.every((request) => request.jsonrpc === '2.0')).toBe(true);
  });

  it('addToBridge and bringUp send nothing (createTap already did it) but still check input and signal', async () => {
    const requests = await recordingPeer();
    const ops = mosnetOps();
    await ops.addToBridge('tap0', 'br0');
    await ops.bringUp('tap0');
    await expect(ops.addToBridge('tap 0', 'br0')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(ops.bringUp('-tap0')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(ops.bringUp('tap0', { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'ABORTED',
    });
    expect(requests).toEqual([]);
    expect(ops.capabilities.atomicTap).toBe(true);
  });

  it('rejects bad input with INVALID_ARGUMENT naming the API field, before sending anything', async () => {
    const requests = await recordingPeer();
    const ops = mosnetOps();
    const cases: [Promise<unknown>, string][] = [
      [ops.createTap({ name: 'tap0' }), 'bridge'],
      [ops.createTap({ name: 'tap0', bridge: 'br0', mtu: 67 }), 'mtu'],
      [ops.createTap({ name: 'tap0', bridge: 'br0', owner: { uid: -1, gid: 0 } }), 'owner.uid'],
      [ops.createTap({ name: 'all', bridge: 'br0' }), 'name'],
      [ops.ensureBridge({ name: 'br0', address: '10.62.0.1' }), 'address'],
      [ops.ensureBridge({ name: 'br0', address: '10.62.0.1/24', ipv6Address: '10.0.0.1/24' }), 'ipv6Address'],
      [ops.deleteTap('x'.repeat(16)), 'name'],
      [ops.addPortForward({ ...rule, hostPort: 0 }), 'rule.hostPort'],
      [ops.removePortForward({ ...rule, guestIp: 'fd00::2' }), 'rule.guestIp'],
      [ops.listBridgePorts('br 0'), 'bridge'],
    ];
    for (const [call, field] of cases) {
      await expect(call).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', details: { field } });
    }
    expect(requests).toEqual([]);
    await expect(ops.ensureBridge(null as never)).rejects.toThrow(TypeError);
  });

  it('fails with BACKEND_FAILURE when the daemon answers a result of the wrong shape', async () => {
    await recordingPeer(() => ({ name: 'br0' }));
    await expect(mosnetOps().ensureBridge({ name: 'br0', address: '10.62.0.1/24' })).rejects.toMatchObject({
      code: 'BACKEND_FAILURE',
      details: { command: 'mosnet.bridge.add', result: { name: 'br0' } },
    });
  });

  it('carries the daemon’s NOT_FOUND / CONFLICT through the server as the same codes', async () => {
    await serve();
    const ops = mosnetOps();
    await expect(ops.createTap({ name: 'tap0', bridge: 'nobr' })).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
    await ops.ensureBridge({ name: 'br0', address: '10.62.0.1/24' });
    await expect(ops.createTap({ name: 'br0', bridge: 'br0' })).rejects.toMatchObject({ code: 'CONFLICT' });
  });
});

describe('MosnetOps: capabilities and discovery', () => {
  it('starts from the defaults (no listing) and lists nothing before discovery, sending nothing', async () => {
    const requests = await recordingPeer();
    const ops = mosnetOps();
    expect(ops.capabilities).toEqual(defaultMosnetCapabilities);
    expect(ops.capabilities).toMatchObject({
      listBridgePorts: false,
      listPortForwards: false,
      atomicTap: true,
    });
    await expect(ops.listBridgePorts('br0')).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    await expect(ops.listPortForwards()).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    expect(requests).toEqual([]);
  });

  it('cannot promise a TAP owned by the VMM: a TapNetwork over it refuses tapOwner, sending nothing', async () => {
    // mosnet can create a TAP with an owner, but nothing says it gives an adopted TAP the owner asked for.
    await serve();
    const ops = await MosnetOps.connect({ socketPath: dir.path() });
    cleanups.push(() => ops.close());
    const network = new TapNetwork({
      bridge: ops,
      tap: ops,
      nat: ops,
      bridgeName: 'br0',
      subnet: '10.62.0.0/24',
    });
    expect(network.setsTapOwner).toBe(false);
    const vm = { vmId: 'vm-1', ipv4: '10.62.0.2', tapOwner: { uid: 4000, gid: 4000 } };
    await expect(network.attach(vm)).rejects.toMatchObject({
      code: 'UNSUPPORTED',
      details: { field: 'tapOwner' },
    });
    expect(await ops.listBridgePorts('br0').catch((error: { code: string }) => error.code)).toBe('NOT_FOUND');
  });

  it('connect() discovers: a daemon that lists the optional methods enables listing', async () => {
    const { ops: backend } = await serve();
    const ops = await MosnetOps.connect({ socketPath: dir.path() });
    cleanups.push(() => ops.close());
    expect(ops.capabilities).toEqual({
      listBridgePorts: true,
      listPortForwards: true,
      atomicTap: true,
      multiQueue: true,
      tapOwner: true,
      ipv6: true,
    });
    await ops.ensureBridge({ name: 'br0', address: '10.62.0.1/24' });
    await ops.createTap({ name: 'tap0', bridge: 'br0' });
    await ops.addPortForward({ ...rule, owner: 'vm-1' });
    expect(await ops.listBridgePorts('br0')).toEqual([{ name: 'tap0' }]);
    expect(await ops.listPortForwards()).toEqual([{ ...rule, owner: 'vm-1' }]);
    expect(backend.taps.get('tap0')).toMatchObject({ bridge: 'br0', up: true });
  });

  it('turns off what the daemon’s document lacks, and refuses those options without sending them', async () => {
    await serve(
      new FakeOps({
        listBridgePorts: false,
        listPortForwards: false,
        multiQueue: false,
        tapOwner: false,
        ipv6: false,
      }),
    );
    const ops = mosnetOps();
    expect(await ops.discover()).toEqual({
      listBridgePorts: false,
      listPortForwards: false,
      atomicTap: true,
      multiQueue: false,
      tapOwner: false,
      ipv6: false,
    });
    const before = ops.client.connectionCount;
    await expect(ops.listBridgePorts('br0')).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    await expect(
      ops.ensureBridge({ name: 'br0', address: '10.62.0.1/24', ipv6Address: 'fd00::1/64' }),
    ).rejects.toMatchObject({ code: 'UNSUPPORTED', details: { field: 'ipv6Address' } });
    await expect(ops.createTap({ name: 't', bridge: 'b', multiQueue: true })).rejects.toMatchObject({
      code: 'UNSUPPORTED',
    });
    await expect(ops.createTap({ name: 't', bridge: 'b', owner: { uid: 1, gid: 1 } })).rejects.toMatchObject({
      code: 'UNSUPPORTED',
    });
    expect(ops.client.connectionCount).toBe(before);
  });

  it('falls back to the defaults for a daemon without rpc.discover', async () => {
    const requests = await recordingPeer((request) =>
      request.method === 'rpc.discover' ? new Error('Method not found') : {},
    );
    const ops = mosnetOps();
    expect(await ops.discover()).toEqual(defaultMosnetCapabilities);
    await expect(ops.listPortForwards()).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    expect(requests.map((request) => request.method)).toEqual(['rpc.discover']);
  });

  it('shares one rpc.discover between concurrent callers', async () => {
    const requests = await recordingPeer(() => openrpcDocument);
    const ops = mosnetOps();
    await Promise.all([ops.discover(), ops.discover(), ops.discover()]);
    expect(requests.filter((request) => request.method === 'rpc.discover')).toHaveLength(1);
  });

  it('discovers again after the daemon restarts, and follows what the new one offers', async () => {
    const first = await serve();
    const ops = await MosnetOps.connect({ socketPath: dir.path() });
    cleanups.push(() => ops.close());
    expect(ops.capabilities.listPortForwards).toBe(true);
    await first.server.close();
    await serve(new FakeOps({ listPortForwards: false }));
    await expect(ops.listPortForwards()).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    expect(ops.capabilities.listPortForwards).toBe(false);
    expect(ops.capabilities.listBridgePorts).toBe(true);
    expect(ops.client.connectionCount).toBe(2);
  });
});

describe('MosnetOps: ownership', () => {
  it('closes the client it created, not one it was given', async () => {
    await serve();
    const client = new MosnetClient({ socketPath: dir.path() });
    cleanups.push(() => client.close());
    const borrowed = new MosnetOps({ client });
    await borrowed.deleteTap('tap0');
    await borrowed.close();
    expect(await client.call(mosnetMethods.deleteTap, { name: 'tap0' })).toEqual({
      name: 'tap0',
      existed: false,
    });

    const owning = new MosnetOps({ socketPath: dir.path() });
    await owning.deleteTap('tap0');
    await owning[Symbol.asyncDispose]();
    await expect(owning.deleteTap('tap0')).rejects.toMatchObject({ code: 'ABORTED' });
    expect(() => new MosnetOps({ client: {} as MosnetClient })).toThrow(TypeError);
  });

  it('connect() closes what it opened when discovery fails', async () => {
    await expect(MosnetOps.connect({ socketPath: dir.path() })).rejects.toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
    });
  });
});
