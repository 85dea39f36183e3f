import { ChvClient } from '@my-hypervisor/chv-client';
import { describe, expect, it } from 'vitest';
import { makeHarness, vmmLabel } from './harness.js';

// Operations outside the pipelines (forwards, pause/resume) record what they are about to do, so a crash between
// the record and the host leaves something reconcile can finish; and the host is compared with the records.
describe(`pending work outside the pipelines, and drift (memory network, ${vmmLabel})`, () => {
  it('a forward recorded but never installed (crash after the write) is installed by reconcile', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'web', kernel: h.kernel });
    // What a crash right after addForward's first write leaves: the rule recorded and pending, not installed.
    const record = (await h.store.read('web'))!;
    const rule = {
      protocol: 'tcp' as const,
      hostPort: 8080,
      guestIp: record.resources.ip!,
      guestPort: 80,
      owner: `myhv:${record.id}`,
    };
    record.resources.forwards.push(rule);
    record.spec.network.forwards.push({ protocol: 'tcp', hostPort: 8080, guestPort: 80 });
    record.pending = { op: 'forward-add', step: 'forward-add', since: new Date().toISOString() };
    await h.store.write(record);
    expect(await h.manager.drift()).toEqual([
      expect.objectContaining({ vm: 'web', kind: 'forward', target: 'tcp/8080' }),
    ]);

    const report = await h.manager.reconcile();
    expect(report.changes.map((c) => `${c.kind} ${c.target}: ${c.action.split(' (')[0]}`)).toEqual([
      'vm web: finished an interrupted forward add',
      'forward tcp/8080: restored',
    ]);
    expect(h.memory!.snapshot().forwards).toEqual([
      expect.objectContaining({ hostPort: 8080, guestPort: 80 }),
    ]);
    expect((await h.manager.get('web')).pending).toBeUndefined();
  });

  it('a forward removal interrupted after the host rule went is finished, not undone', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({
      name: 'web',
      kernel: h.kernel,
      network: { forwards: [{ hostPort: 8080, guestPort: 80 }] },
    });
    const record = (await h.store.read('web'))!;
    await h.ops.removePortForward(record.resources.forwards[0]!);
    record.pending = { op: 'forward-rm', step: 'forward-rm tcp/8080', since: new Date().toISOString() };
    await h.store.write(record);

    const report = await h.manager.reconcile();
    expect(report.changes.map((c) => `${c.kind} ${c.target}`)).toEqual(['forward tcp/8080']);
    expect(h.memory!.snapshot().forwards).toEqual([]);
    const vm = await h.manager.get('web');
    expect(vm.forwards).toEqual([]);
    expect(vm.pending).toBeUndefined();
  });

  it('an interrupted pause is settled from what the VMM reports', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({ name: 'web', kernel: h.kernel });
    await using client = new ChvClient({ socketPath: vm.paths.socket! });
    await client.vmPause(); // the VMM paused; the process died before recording it
    const record = (await h.store.read('web'))!;
    record.pending = { op: 'pause', step: 'vm.pause', since: new Date().toISOString() };
    await h.store.write(record);

    const report = await h.manager.reconcile();
    expect(report.changes.map((c) => c.action)).toEqual(['settled an interrupted pause: paused']);
    expect(await h.manager.get('web')).toMatchObject({ status: 'paused' });
    expect((await h.manager.get('web')).pending).toBeUndefined();
    await h.manager.resume('web');
    expect(await h.manager.get('web')).toMatchObject({ status: 'running' });
  });

  it('an interrupted resize is cleared, keeping the sizes the record has', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'web', kernel: h.kernel });
    const record = (await h.store.read('web'))!;
    record.pending = { op: 'resize', step: 'vm.resize', since: new Date().toISOString() };
    await h.store.write(record);
    const report = await h.manager.reconcile();
    expect(report.changes.map((c) => c.action)).toEqual([
      expect.stringMatching(/^cleared an interrupted resize/),
    ]);
    expect(await h.manager.get('web')).toMatchObject({ status: 'running', spec: { cpus: 1 } });
    expect((await h.manager.get('web')).pending).toBeUndefined();
  });

  it('after a "reboot" of the network, start brings back the TAP and the forwards', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({
      name: 'web',
      kernel: h.kernel,
      network: { forwards: [{ hostPort: 8080, guestPort: 80 }] },
    });
    await h.manager.stop('web');
    h.memory!.reboot();
    expect((await h.manager.drift()).map((d) => d.kind).sort()).toEqual(['bridge', 'forward', 'tap']);
    await h.manager.start('web');
    expect(h.memory!.snapshot()).toMatchObject({
      bridges: [expect.objectContaining({ name: 'myhvbr0', ports: [vm.tap] })],
      forwards: [expect.objectContaining({ hostPort: 8080 })],
    });
    expect(await h.manager.drift()).toEqual([]);
  });

  it('restart holds one lock: another process cannot act between its stop and its start', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'web', kernel: h.kernel });
    const other = h.newManager();
    const steps: string[] = [];
    let stopped: Promise<{ status: string }> | undefined;
    await h.manager.restart('web', {
      gracefulMs: 0,
      onProgress: (e) => {
        if (e.phase !== 'done') return;
        steps.push(e.step);
        // Another process asks to stop it while restart is between its halves: it must wait for the whole restart.
        if (e.step === 'vmm-stop') stopped = other.stop('web', { gracefulMs: 0 });
      },
    });
    expect(steps).toContain('vm.boot');
    expect(await stopped).toMatchObject({ status: 'stopped' });
    expect((await h.manager.get('web')).status).toBe('stopped');
  });
});
