import { existsSync } from 'node:fs';
import { ChvClient } from '@my-hypervisor/chv-client';
import { describe, expect, it } from 'vitest';
import {
  hasVirtiofsd,
  isRoot,
  listTree,
  makeHarness,
  pidsMentioning,
  probeOutput,
  tapsInNetns,
} from '../harness.js';

const skip = !isRoot
  ? 'needs root (network namespace, virtiofsd)'
  : !hasVirtiofsd
    ? 'virtiofsd is missing (apt-get install --no-install-recommends qemu-system-common)'
    : undefined;
if (skip) console.warn(`kernel lifecycle tests skipped: ${skip}`);

// Real parts where users have them: TAPs, bridge and nft forwards in a throwaway namespace, the real virtiofsd,
// and the VMM (simulator, or MYHV_CLOUD_HYPERVISOR) inside that namespace, checking TAP queue modes like CH does.
describe.skipIf(skip)('VmManager on the kernel (LocalOps in a netns, real virtiofsd)', () => {
  it('runs two VMs with shares and forwards through their whole lifecycle and leaves nothing behind', async () => {
    await using h = await makeHarness({ backend: 'local', shares: true });
    const [a, b] = await Promise.all([
      h.manager.create({
        name: 'alpha',
        kernel: h.kernel,
        shares: [{ hostPath: h.shareDir, tag: 'data' }],
        network: { forwards: [{ hostPort: 8080, guestPort: 80 }] },
      }),
      h.manager.create({
        name: 'beta',
        kernel: h.kernel,
        cpus: 2, // 2 queue pairs need 2 boot vCPUs (the real VMM refuses more pairs than vCPUs)
        network: { queues: 2, forwards: [{ hostPort: 8081, guestPort: 80 }] },
      }),
    ]);
    expect((await tapsInNetns(h.netns!)).sort()).toEqual([a.tap, b.tap].sort());
    expect((await h.ops.listPortForwards()).map((f) => f.hostPort).sort()).toEqual([8080, 8081]);

    await using client = new ChvClient({ socketPath: a.paths.socket! });
    const info = await client.vmInfo();
    expect(info.config.memory).toMatchObject({ shared: true });
    expect(info.config.fs).toEqual([
      expect.objectContaining({ tag: 'data', socket: a.shares[0]!.socketPath }),
    ]);
    expect(info.config.net?.[0]).toMatchObject({ tap: a.tap, mac: a.mac });
    expect(info.config.payload?.cmdline).toContain(`ip=${a.ip}::10.62.0.1:255.255.255.0:alpha:eth0:off`);
    expect((await probeOutput(a.paths.serialLog)).cmdline).toContain(
      `ip=${a.ip}::10.62.0.1:255.255.255.0:alpha:eth0:off`,
    );
    client.close();
    // beta asked for 2 queue pairs: a multi-queue TAP, which the VMM checks against num_queues at boot.
    await using clientB = new ChvClient({ socketPath: b.paths.socket! });
    expect((await clientB.vmInfo()).config.net?.[0]).toMatchObject({ num_queues: 4 });
    clientB.close();

    // virtiofsd serves one front-end: it runs while the VM runs, and start prepares a fresh one.
    const socket = a.shares[0]!.socketPath!;
    expect((await pidsMentioning(socket)).length).toBeGreaterThan(0); // the C daemon forks a sandboxed child
    await h.manager.stop('alpha');
    expect(await pidsMentioning(socket)).toEqual([]);
    expect(existsSync(socket)).toBe(false);
    const restarted = await h.manager.start('alpha');
    expect((await pidsMentioning(restarted.shares[0]!.socketPath!)).length).toBeGreaterThan(0);

    await h.manager.delete('alpha', { force: true });
    await h.manager.delete('beta', { force: true });
    expect(await tapsInNetns(h.netns!)).toEqual([]);
    expect(await h.ops.listPortForwards()).toEqual([]);
    expect(await pidsMentioning(h.runDir)).toEqual([]);
    expect(await h.ipam.list()).toEqual([]);
    expect(await listTree(h.runDir)).toEqual(['fs']);
  });

  it('reconcile marks a VM whose VMM was killed as stopped, stops its virtiofsd, and start brings it back', async () => {
    await using h = await makeHarness({ backend: 'local', shares: true });
    const vm = await h.manager.create({
      name: 'gamma',
      kernel: h.kernel,
      shares: [{ hostPath: h.shareDir, tag: 'data' }],
    });
    process.kill(vm.pid!, 'SIGKILL');
    for (let i = 0; i < 100 && (await h.manager.get('gamma')).vmmAlive; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(await h.manager.get('gamma')).toMatchObject({ status: 'running', vmmAlive: false });
    const report = await h.manager.reconcile();
    expect(report.changes).toContainEqual(
      expect.objectContaining({ kind: 'vm', target: 'gamma', action: expect.stringMatching(/VMM is gone/) }),
    );
    expect(await h.manager.get('gamma')).toMatchObject({ status: 'stopped' });
    expect(await pidsMentioning(vm.shares[0]!.socketPath!)).toEqual([]);
    expect((await h.manager.start('gamma')).status).toBe('running');
  });
});
