import { join } from 'node:path';
import { ChvProcess, type ChvProcessSpawnOptions } from '@my-hypervisor/chv-client';
import {
  type MemoryNetOps,
  type NetworkBackend,
  type OperationOptions,
  TapNetwork,
  type VmNetworkAttachment,
  type VmNetworkDetachRequest,
  type VmNetworkDetachResult,
  type VmNetworkRequest,
  type VmPolicyCounters,
} from '@my-hypervisor/net-ops';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { VmManager } from '../src/index.js';
import { BRIDGE, type Harness, latestVmmNetns, listTree, makeHarness, SUBNET, vmmLabel } from './harness.js';

/**
 * A backend that enforces policy, as a namespace backend does: a TapNetwork over the harness's memory ops that
 * gives each VM the namespace `myhv-<id>` and records what it was asked.
 */
class PolicyNetwork implements NetworkBackend {
  readonly specificationVersion = 'v1' as const;
  readonly enforcesPolicy = true;
  readonly attaches: VmNetworkRequest[] = [];
  readonly detaches: VmNetworkDetachRequest[] = [];
  /** VM ids with a "namespace". */
  readonly attached = new Set<string>();
  counters: VmPolicyCounters | Error = { egressDenied: 7, isolationDenied: 2 };
  readonly #tap: TapNetwork;

  constructor(ops: MemoryNetOps) {
    this.#tap = new TapNetwork({ bridge: ops, tap: ops, nat: ops, bridgeName: BRIDGE, subnet: SUBNET });
  }

  get bridge(): string {
    return this.#tap.bridge;
  }

  get subnet(): string {
    return this.#tap.subnet;
  }

  async attach(vm: VmNetworkRequest, options?: OperationOptions): Promise<VmNetworkAttachment> {
    this.attaches.push(vm);
    const { policy: _policy, ...plain } = vm;
    const attachment = await this.#tap.attach(plain, options);
    this.attached.add(vm.vmId);
    return { ...attachment, netns: `myhv-${vm.vmId}` };
  }

  async detach(vm: VmNetworkDetachRequest, options?: OperationOptions): Promise<VmNetworkDetachResult> {
    this.detaches.push(vm);
    this.attached.delete(vm.vmId);
    return this.#tap.detach(vm, options);
  }

  addForward: NetworkBackend['addForward'] = (rule, options) => this.#tap.addForward(rule, options);
  removeForward: NetworkBackend['removeForward'] = (rule, options) => this.#tap.removeForward(rule, options);

  async policyCounters(_vmId: string): Promise<VmPolicyCounters> {
    if (this.counters instanceof Error) throw this.counters;
    return this.counters;
  }

  async listAttached(): Promise<string[]> {
    return [...this.attached];
  }
}

const policy = {
  isolation: 'vm' as const,
  egress: [{ cidr: '192.0.2.0/24', ports: [443], proto: 'tcp' as const }],
};

/** The network namespace of every VMM spawned, in order (`undefined`: the manager's own). */
let vmmNetns: (string | undefined)[];

beforeEach(() => {
  vmmNetns = [];
  const spawn = ChvProcess.spawn.bind(ChvProcess);
  // The fake namespaces do not exist, so `ip netns exec` would fail: record the choice, run the VMM where the
  // harness runs its VMMs (here, or the real VMM's own namespace: it makes its TAP, never in the host's).
  vi.spyOn(ChvProcess, 'spawn').mockImplementation(({ netns, ...options }: ChvProcessSpawnOptions) => {
    vmmNetns.push(netns === latestVmmNetns ? undefined : netns);
    return spawn({ ...options, ...(latestVmmNetns ? { netns: latestVmmNetns } : {}) });
  });
});

afterEach(() => {
  vi.restoreAllMocks();
});

function policyManager(h: Harness, network: PolicyNetwork): VmManager {
  return new VmManager({
    stateDir: h.stateDir,
    runDir: h.runDir,
    network,
    vmm: h.child.vmm,
    ...(h.child.confinement ? { confinement: h.child.confinement } : {}),
    inventory: { bridge: h.ops, nat: h.ops },
    hostProbe: { localAddresses: async () => ['127.0.0.1'], listening: async () => new Set<number>() },
  });
}

describe(`VmManager network policy (memory network, ${vmmLabel})`, () => {
  it('asks the backend for the spec’s policy, runs the VMM in its namespace, and detaches by address', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const network = new PolicyNetwork(h.memory!);
    const manager = policyManager(h, network);

    const vm = await manager.create({ name: 'sandbox', kernel: h.kernel, network: policy });
    expect(network.attaches).toEqual([expect.objectContaining({ vmId: vm.id, ipv4: vm.ip, policy })]);
    expect(vmmNetns).toEqual([`myhv-${vm.id}`]);
    // Inspect shows where the VM runs and what it was given.
    const info = await manager.get('sandbox');
    expect(info).toMatchObject({ netns: `myhv-${vm.id}`, spec: { network: policy } });
    expect((await h.store.read('sandbox'))?.resources.network?.netns).toBe(`myhv-${vm.id}`);

    await manager.stop('sandbox');
    await manager.start('sandbox');
    expect(network.attaches).toHaveLength(2);
    expect(network.attaches[1]).toMatchObject({ vmId: vm.id, ipv4: vm.ip, policy });
    expect(vmmNetns).toEqual([`myhv-${vm.id}`, `myhv-${vm.id}`]);

    await manager.delete('sandbox', { force: true });
    expect(network.detaches).toEqual([{ vmId: vm.id, tap: vm.tap, ipv4: vm.ip }]);
    expect(network.attached.size).toBe(0);
  });

  it('passes only the policy fields the spec sets, and none for a spec without one', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const network = new PolicyNetwork(h.memory!);
    const manager = policyManager(h, network);
    await manager.create({ name: 'a', kernel: h.kernel, network: { egress: 'deny-all' } });
    await manager.create({ name: 'b', kernel: h.kernel });
    expect(network.attaches[0]!.policy).toEqual({ egress: 'deny-all' });
    expect(network.attaches[1]).not.toHaveProperty('policy');
    for (const name of ['a', 'b']) await manager.delete(name, { force: true });
  });

  it('undoes a failed create through detach with the VM’s address', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const network = new PolicyNetwork(h.memory!);
    const manager = policyManager(h, network);
    vi.mocked(ChvProcess.spawn).mockRejectedValueOnce(new Error('no VMM today'));
    await expect(manager.create({ name: 'x', kernel: h.kernel, network: policy })).rejects.toThrow();
    expect(network.detaches).toEqual([
      expect.objectContaining({ vmId: network.attaches[0]!.vmId, ipv4: network.attaches[0]!.ipv4 }),
    ]);
    expect(await manager.list()).toEqual([]);
  });

  it('refuses a policy the backend cannot enforce before anything exists', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    for (const [network, field] of [
      [{ isolation: 'vm' }, 'network.isolation'],
      [{ isolation: 'none', egress: 'deny-all' }, 'network.egress'],
      [{ egress: [{ cidr: '10.0.0.0/8' }] }, 'network.egress'],
    ] as const) {
      await expect(h.manager.create({ name: 'web', kernel: h.kernel, network })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        details: { field },
      });
    }
    expect(h.memory!.snapshot().taps).toEqual([]);
    expect(await h.ipam.list()).toEqual([]);
    expect(await h.manager.list()).toEqual([]);
    expect((await listTree(join(h.stateDir, 'vms'))).filter((f) => !f.startsWith('.'))).toEqual([]);
    expect(vmmNetns).toEqual([]);

    // The open policy, written out, is what a plain bridge gives: it is allowed.
    const vm = await h.manager.create({
      name: 'web',
      kernel: h.kernel,
      network: { isolation: 'none', egress: 'allow-all' },
    });
    expect(vm.netns).toBeUndefined();
    expect(vmmNetns).toEqual([undefined]);
  });

  it('shows the policy counters in stats, and leaves them out when they cannot be read', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const network = new PolicyNetwork(h.memory!);
    const manager = policyManager(h, network);
    await manager.create({ name: 'sandbox', kernel: h.kernel, network: policy });
    expect((await manager.stats('sandbox')).network).toEqual({ egressDenied: 7, isolationDenied: 2 });
    network.counters = new Error('nft is gone');
    const stats = await manager.stats('sandbox');
    expect(stats).not.toHaveProperty('network');
    expect(stats.vmm.pid).toBeGreaterThan(0);
    await manager.delete('sandbox', { force: true });

    // A backend without counters: no field at all.
    await h.manager.create({ name: 'plain', kernel: h.kernel });
    expect(await h.manager.stats('plain')).not.toHaveProperty('network');
  });

  it('reconcile deletes namespaces no VM owns, and makes a lost one of a VM again', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const network = new PolicyNetwork(h.memory!);
    const manager = policyManager(h, network);
    const vm = await manager.create({ name: 'sandbox', kernel: h.kernel, network: policy });
    network.attached.add('0123456789ab');
    // Shares the prefix but is no VM id of ours (the demo's namespace, a user's): left alone.
    network.attached.add('demo-4242');

    const report = await manager.reconcile();
    expect(report.changes).toEqual([
      { kind: 'netns', target: '0123456789ab', action: 'deleted (no VM owns it)' },
    ]);
    expect(report.errors).toEqual([]);
    expect(network.detaches).toEqual([{ vmId: '0123456789ab' }]);
    expect([...network.attached]).toEqual([vm.id, 'demo-4242']);
    expect((await manager.reconcile()).changes).toEqual([]);
    network.attached.delete('demo-4242');

    // The TAP lives in the VM's namespace, not on the bridge: only a missing namespace is drift.
    expect(await manager.drift()).toEqual([]);
    network.attached.delete(vm.id);
    expect(await manager.drift()).toEqual([
      {
        vm: 'sandbox',
        kind: 'netns',
        target: `myhv-${vm.id}`,
        problem: `network namespace myhv-${vm.id} does not exist`,
      },
    ]);
    const repaired = await manager.reconcile();
    expect(repaired.changes).toEqual([
      expect.objectContaining({ kind: 'netns', target: `myhv-${vm.id}`, vm: 'sandbox' }),
    ]);
    expect(network.attaches.at(-1)).toMatchObject({ vmId: vm.id, policy });
    expect(network.attached.has(vm.id)).toBe(true);
    await manager.delete('sandbox', { force: true });
  });
});
