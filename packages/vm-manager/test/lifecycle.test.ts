import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChvClient } from '@my-hypervisor/chv-client';
import { writeUnloadableProbeGuest } from '@my-hypervisor/chv-client/testing';
import { NetOpsError } from '@my-hypervisor/net-ops';
import { describe, expect, it } from 'vitest';
import { VmManager, VmManagerError } from '../src/index.js';
import { confined, listTree, makeHarness, pidsMentioning, probeOutput, vmmLabel, vmTree } from './harness.js';

// The simulator accepts any kernel path that exists; these tests use the memory network, so TAPs are not real and
// the simulator runs with MYHV_SIM_STRICT_TAPS=0. The kernel-backed variant is in test/integration/.
describe(`VmManager lifecycle (memory network, ${vmmLabel})`, () => {
  it('creates, inspects, pauses, stops, starts, forwards and deletes a VM, leaving nothing behind', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const steps: string[] = [];
    const vm = await h.manager.create(
      {
        name: 'web',
        kernel: h.kernel,
        memory: '256M',
        cpus: 2,
        network: { forwards: [{ hostPort: 8080, guestPort: 80 }] },
      },
      { onProgress: (e) => e.phase === 'done' && steps.push(e.step) },
    );
    // A confined VM gets its uid first: its TAP is made for that uid.
    expect(steps).toEqual([
      ...(confined ? ['uid'] : []),
      ...['ip', 'network', 'forwards', 'vmm', 'vm.create', 'vm.boot', 'confirm', 'record'],
    ]);
    expect(vm).toMatchObject({
      name: 'web',
      status: 'running',
      vmmAlive: true,
      ip: '10.62.0.2',
      bridge: 'myhvbr0',
    });
    expect(vm.tap).toMatch(/^myhv[0-9a-f]{11}$/);
    expect(vm.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);

    // The body the VMM received, as the VMM reports it back.
    await using client = new ChvClient({ socketPath: vm.paths.socket! });
    const info = await client.vmInfo();
    expect(info.state).toBe('Running');
    expect(info.config.net?.[0]).toMatchObject({ tap: vm.tap, mac: vm.mac, num_queues: 2 });
    expect(info.config.net?.[0]).not.toHaveProperty('ip');
    expect(info.config.payload?.cmdline).toContain('ip=10.62.0.2::10.62.0.1:255.255.255.0:web:eth0:off');
    expect(info.config.memory).toMatchObject({ size: 256 * 1024 * 1024, shared: false });
    expect(info.config.console).toMatchObject({ mode: 'Off' });
    expect(info.config.serial).toMatchObject({
      mode: 'Socket',
      socket: expect.stringMatching(/\/serial\.sock$/),
    });
    expect(info.config.cpus).toMatchObject({ boot_vcpus: 2 });
    client.close();
    // What the guest itself received: the probe guest prints its command line on the serial port.
    const guest = await probeOutput(vm.paths.serialLog);
    expect(guest.cmdline).toContain('ip=10.62.0.2::10.62.0.1:255.255.255.0:web:eth0:off');

    const snapshot = h.memory!.snapshot();
    expect(snapshot.taps.map((t) => t.name)).toEqual([vm.tap]);
    expect(snapshot.forwards).toEqual([
      { protocol: 'tcp', hostPort: 8080, guestIp: '10.62.0.2', guestPort: 80, owner: `myhv-${vm.id}` },
    ]);
    expect((await h.manager.list()).map((v) => v.name)).toEqual(['web']);

    expect((await h.manager.pause('web')).status).toBe('paused');
    expect((await h.manager.resume('web')).status).toBe('running');

    const firstPid = vm.pid!;
    const stopped = await h.manager.stop('web');
    expect(stopped).toMatchObject({ status: 'stopped', vmmAlive: false });
    expect(existsSync(vm.paths.socket!)).toBe(false);
    expect(await pidsMentioning(vm.paths.socket!)).toEqual([]);
    // Network and forwards stay reserved while stopped.
    expect(h.memory!.snapshot().taps).toHaveLength(1);
    await expect(h.manager.pause('web')).rejects.toMatchObject({ code: 'WRONG_STATE' });

    const started = await h.manager.start('web');
    expect(started).toMatchObject({ status: 'running', vmmAlive: true, ip: '10.62.0.2', tap: vm.tap });
    expect(started.pid).not.toBe(firstPid);
    await expect(h.manager.start('web')).rejects.toMatchObject({ code: 'WRONG_STATE' });
    expect((await h.manager.restart('web')).status).toBe('running');

    await h.manager.addForward('web', { protocol: 'udp', hostPort: 5353, guestPort: 53 });
    expect(h.memory!.snapshot().forwards).toHaveLength(2);
    expect((await h.manager.get('web')).spec.network.forwards).toHaveLength(2);
    expect((await h.manager.removeForward('web', { protocol: 'udp', hostPort: 5353 })).removed).toBe(true);
    expect((await h.manager.removeForward('web', { protocol: 'udp', hostPort: 5353 })).removed).toBe(false);
    expect(h.memory!.snapshot().forwards).toHaveLength(1);

    await expect(h.manager.delete('web')).rejects.toMatchObject({ code: 'WRONG_STATE' });
    const last = await h.manager.get('web');
    await h.manager.delete('web', { force: true });
    await expect(h.manager.get('web')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(h.memory!.snapshot()).toMatchObject({ taps: [], forwards: [] });
    expect(await h.ipam.list()).toEqual([]);
    expect(await pidsMentioning(last.paths.socket!)).toEqual([]);
    expect(await listTree(h.runDir)).toEqual([]);
    expect(await vmTree(h.stateDir)).toEqual([]);
  });

  it('gives two VMs distinct addresses, TAPs and MACs, and refuses a duplicate name', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const a = await h.manager.create({ name: 'a', kernel: h.kernel });
    const b = await h.manager.create({ name: 'b', kernel: h.kernel });
    expect(new Set([a.ip, b.ip]).size).toBe(2);
    expect(new Set([a.tap, b.tap]).size).toBe(2);
    expect(new Set([a.mac, b.mac]).size).toBe(2);
    await expect(h.manager.create({ name: 'a', kernel: h.kernel })).rejects.toMatchObject({
      code: 'ALREADY_EXISTS',
    });
    expect((await h.manager.get('a')).status).toBe('running');
  });

  it('rolls back every step when the boot fails, and reports the step', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    // A kernel every header check accepts, which the VMM (real or simulated) then fails to load at vm.boot.
    const kernel = await writeUnloadableProbeGuest(join(h.shareDir, 'unloadable'));
    const undone: string[] = [];
    const error = await h.manager
      .create(
        { name: 'doomed', kernel, network: { forwards: [{ hostPort: 8080, guestPort: 80 }] } },
        { onProgress: (e) => e.phase === 'undone' && undone.push(e.step) },
      )
      .catch((e: unknown) => e);
    expect(VmManagerError.isInstance(error) && error.code).toBe('VMM_FAILED');
    expect((error as VmManagerError).details).toMatchObject({ vm: 'doomed', step: 'vm.boot' });
    expect((error as Error).message).toMatch(/Invalid bzImage/);
    expect(undone).toEqual(['vmm', 'forwards', 'network', 'ip', ...(confined ? ['uid'] : [])]);
    expect(h.memory!.snapshot()).toMatchObject({ taps: [], forwards: [] });
    expect(await h.ipam.list()).toEqual([]);
    expect(await h.manager.list()).toEqual([]);
    expect(await listTree(h.runDir)).toEqual([]);
    expect(await vmTree(h.stateDir)).toEqual([]);
  });

  it('rolls back a create whose forward the host refuses at the forwards step, keeping the other VM intact', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({
      name: 'one',
      kernel: h.kernel,
      network: { forwards: [{ hostPort: 8080, guestPort: 80 }] },
    });
    // A forward no VM record names (another tool's): only the network step can find it.
    await h.ops.addPortForward({ protocol: 'tcp', hostPort: 8081, guestIp: '10.62.0.200', guestPort: 80 });
    const error = await h.manager
      .create({ name: 'two', kernel: h.kernel, network: { forwards: [{ hostPort: 8081, guestPort: 81 }] } })
      .catch((e: unknown) => e);
    expect((error as VmManagerError).code).toBe('CONFLICT');
    expect(NetOpsError.isInstance((error as Error).cause)).toBe(true);
    expect((await h.manager.list()).map((v) => v.name)).toEqual(['one']);
    expect(h.memory!.snapshot().taps).toHaveLength(1);
    expect(h.memory!.snapshot().forwards).toHaveLength(2);
    expect((await h.ipam.list()).length).toBe(1);
  });

  it('reconcile leaves alone what a VM with an unreadable record owns', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({
      name: 'web',
      kernel: h.kernel,
      network: { forwards: [{ hostPort: 8080, guestPort: 80 }] },
    });
    await writeFile(join(h.stateDir, 'vms', 'web', 'state.json'), '{ torn');
    const report = await h.manager.reconcile();
    expect(report.skipped.map((s) => s.target)).toEqual(['web', 'leftovers no VM owns']);
    expect(report.changes).toEqual([]);
    // Its address, TAP, forward and VMM are all still there, for the operator to look at.
    expect((await h.ipam.list()).map((r) => r.address)).toEqual([vm.ip]);
    expect(h.memory!.snapshot().taps.map((t) => t.name)).toEqual([vm.tap]);
    expect(h.memory!.snapshot().forwards).toHaveLength(1);
    expect(await pidsMentioning(vm.paths.socket!)).not.toEqual([]);
    process.kill(vm.pid!, 'SIGKILL');
  });

  it('rejects bad specs before creating anything, naming the field', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const file = join(h.shareDir, 'a-file');
    await writeFile(file, '');
    const cases: [unknown, string][] = [
      [{ name: 'bad name', kernel: h.kernel }, 'name'],
      [{ name: 'x', kernel: join(h.shareDir, 'missing-vmlinux') }, 'kernel'],
      [{ name: 'x', kernel: h.shareDir }, 'kernel'],
      [{ name: 'x', kernel: h.kernel, memory: 0 }, 'memory'],
      [{ name: 'x', kernel: h.kernel, shares: [{ hostPath: file, tag: 'data' }] }, 'shares[0].hostPath'],
      [{ name: 'x', kernel: h.kernel, shares: [{ hostPath: h.shareDir, tag: 'data' }] }, 'shares'],
      [{ name: 'x', kernel: h.kernel, network: { bridge: 'otherbr' } }, 'network.bridge'],
      [
        {
          name: 'x',
          kernel: h.kernel,
          network: {
            forwards: [
              { hostPort: 1, guestPort: 1 },
              { hostPort: 1, guestPort: 2 },
            ],
          },
        },
        'network.forwards[1].hostPort',
      ],
    ];
    for (const [spec, field] of cases) {
      const error = await h.manager.create(spec).catch((e: unknown) => e);
      expect(VmManagerError.isInstance(error), JSON.stringify(spec)).toBe(true);
      expect((error as VmManagerError).code).toBe('INVALID_ARGUMENT');
      expect((error as VmManagerError).details.field).toBe(field);
    }
    expect(await listTree(h.stateDir)).toEqual([]);
    expect(h.memory!.calls).toEqual([]);
    expect(
      () =>
        new VmManager({
          stateDir: h.stateDir,
          runDir: h.runDir,
          network: { ...h.manager.options.network!, subnet: '10.0.0.1/32' },
        }),
    ).toThrow(/subnet/);
  });
});
