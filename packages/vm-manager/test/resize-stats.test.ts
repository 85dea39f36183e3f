import { readFile } from 'node:fs/promises';
import { ChvClient } from '@my-hypervisor/chv-client';
import { describe, expect, it } from 'vitest';
import { parseVmSpec } from '../src/index.js';
import { hasVirtiofsd, isRoot, makeHarness, realVmm, vmmLabel } from './harness.js';

const MiB = 1024 * 1024;

async function vmmConfig(socketPath: string) {
  await using client = new ChvClient({ socketPath });
  return (await client.vmInfo()).config;
}

describe(`VmManager.resize (memory network, ${vmmLabel})`, () => {
  it('grows vCPUs and memory within the maximums and boots with the new size after stop/start', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({
      name: 'grow',
      kernel: h.kernel,
      cpus: 1,
      cpusMax: 4,
      memory: '512M',
      memoryHotplug: '512M',
    });
    expect(await vmmConfig(vm.paths.socket!)).toMatchObject({
      cpus: { boot_vcpus: 1, max_vcpus: 4 },
      memory: { size: 512 * MiB, hotplug_size: 512 * MiB, hotplug_method: 'Acpi' },
    });

    const resized = await h.manager.resize('grow', { cpus: 3, memory: '768M' });
    expect(resized.spec).toMatchObject({ cpus: 3, cpusMax: 4, memory: 768 * MiB, memoryHotplug: 256 * MiB });
    expect(await vmmConfig(vm.paths.socket!)).toMatchObject({
      cpus: { boot_vcpus: 3 },
      memory: { size: 768 * MiB },
    });
    expect((await h.manager.get('grow')).spec).toMatchObject({ cpus: 3, memory: 768 * MiB });

    // Paused VMs resize too; the ceiling (512M + 512M) stays where the spec put it.
    await h.manager.pause('grow');
    expect((await h.manager.resize('grow', { memory: '1G' })).spec).toMatchObject({
      memory: 1024 * MiB,
      memoryHotplug: 0,
    });
    await h.manager.resume('grow');

    await h.manager.stop('grow');
    const started = await h.manager.start('grow');
    const config = await vmmConfig(started.paths.socket!);
    expect(config.cpus).toMatchObject({ boot_vcpus: 3, max_vcpus: 4 });
    expect(config.memory?.size).toBe(1024 * MiB);
    expect(config.memory?.hotplug_size ?? undefined).toBeUndefined();

    // Fewer vCPUs are allowed (the guest ejects them).
    expect((await h.manager.resize('grow', { cpus: 2 })).spec.cpus).toBe(2);
  });

  it('refuses sizes beyond the maximums or off the 128 MiB step, naming the field, and changes nothing', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({
      name: 'caps',
      kernel: h.kernel,
      cpus: 2,
      cpusMax: 2,
      memory: '256M',
      memoryHotplug: '256M',
      network: { queues: 2 },
    });
    const refused = async (request: Parameters<typeof h.manager.resize>[1], field: string) => {
      const error = await h.manager.resize('caps', request).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field } });
    };
    await refused({ cpus: 3 }, 'cpus');
    await refused({ cpus: 1 }, 'cpus'); // fewer than network.queues: the next boot would fail
    await refused({ memory: '640M' }, 'memory'); // beyond 256M + 256M
    await refused({ memory: '320M' }, 'memory'); // 64M is not a hot-plug step
    await refused({ memory: '128M' }, 'memory'); // below the current memory
    await refused({}, 'cpus');
    const after = await h.manager.get('caps');
    expect(after.spec).toMatchObject({ cpus: 2, memory: 256 * MiB, memoryHotplug: 256 * MiB });
    expect(after.pending).toBeUndefined();

    // A VM without memoryHotplug cannot grow its memory.
    await h.manager.create({ name: 'fixed', kernel: h.kernel, memory: '256M' });
    await expect(h.manager.resize('fixed', { memory: '384M' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: { field: 'memory' },
    });
  });

  it('refuses memoryHotplug off the 128 MiB step and cpusMax below cpus in the spec', () => {
    const base = { name: 'x', kernel: '/vmlinux' };
    expect(parseVmSpec({ ...base, memoryHotplug: '1G' }).memoryHotplug).toBe(1024 * MiB);
    expect(parseVmSpec(base)).not.toHaveProperty('memoryHotplug', expect.anything());
    expect(() => parseVmSpec({ ...base, memoryHotplug: '64M' })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', details: { field: 'memoryHotplug' } }),
    );
    expect(() => parseVmSpec({ ...base, cpus: 4, cpusMax: 2 })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', details: { field: 'cpusMax' } }),
    );
  });

  it('refuses a stopped VM with WRONG_STATE', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'off', kernel: h.kernel, cpusMax: 2 });
    await h.manager.stop('off');
    await expect(h.manager.resize('off', { cpus: 2 })).rejects.toMatchObject({ code: 'WRONG_STATE' });
    await expect(h.manager.stats('off')).rejects.toMatchObject({ code: 'WRONG_STATE' });
    expect((await h.manager.get('off')).spec.cpus).toBe(1);
  });
});

const shareSkip = !isRoot
  ? 'needs root to run virtiofsd'
  : !hasVirtiofsd
    ? 'virtiofsd is not installed'
    : undefined;
if (shareSkip) console.warn(`VmManager.stats with a share skipped: ${shareSkip}`);

describe(`VmManager.stats (memory network, ${vmmLabel})`, () => {
  it('reports device counters and the VMM process numbers with a timestamp', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({ name: 'st', kernel: h.kernel });
    const before = Date.now();
    const stats = await h.manager.stats('st');
    expect(stats).toMatchObject({ vm: 'st', id: vm.id, status: 'running', shares: [] });
    expect(Date.parse(stats.at)).toBeGreaterThanOrEqual(before - 1);
    expect(stats.counters._net0).toMatchObject({ rx_bytes: 0, rx_frames: 0, tx_bytes: 0, tx_frames: 0 });
    expect(stats.vmm.pid).toBe(vm.pid);
    // The real VMM may not have used a whole clock tick yet (10 ms); the simulator, a Node process, has.
    expect(stats.vmm.cpuSeconds).toBeGreaterThanOrEqual(realVmm ? 0 : 0.01);
    expect(stats.vmm.cpuSeconds).toBeCloseTo(stats.vmm.userSeconds + stats.vmm.systemSeconds, 5);
    const procStat = (await readFile(`/proc/${vm.pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    expect(stats.vmm.cpuSeconds).toBeLessThanOrEqual((Number(procStat[11]) + Number(procStat[12])) / 100);
    expect(stats.vmm.rssBytes).toBeGreaterThan(0);
    expect(stats.vmm.threads).toBeGreaterThan(0);
    await expect(h.manager.stats('nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it.skipIf(shareSkip !== undefined)('reports each share’s virtiofsd', async () => {
    await using h = await makeHarness({ backend: 'memory', shares: true });
    await h.manager.create({
      name: 'fs',
      kernel: h.kernel,
      shares: [{ hostPath: h.shareDir, tag: 'data' }],
    });
    const stats = await h.manager.stats('fs');
    expect(stats.shares).toHaveLength(1);
    expect(stats.shares[0]!.tag).toBe('data');
    expect(stats.shares[0]!.process!.pid).toBeGreaterThan(0);
    expect(stats.shares[0]!.process!.rssBytes).toBeGreaterThan(0);
  });
});
