import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ChvClient } from '@my-hypervisor/chv-client';
import { isProcessAlive } from '@my-hypervisor/host-utils';
import { describe, expect, it } from 'vitest';
import { memoryMode } from '../src/snapshots.js';
import type { VmRecord } from '../src/state-store.js';
import { isRoot, makeHarness, vmmLabel } from './harness.js';

const exec = promisify(execFile);

async function vmmState(socketPath: string): Promise<string> {
  await using client = new ChvClient({ socketPath });
  return (await client.vmInfo()).state;
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(
    () => undefined,
    (error: { code?: string }) => error.code,
  );
}

describe(`snapshot and restore (memory network, ${vmmLabel})`, () => {
  it('snapshots a running VM, keeps it running, and restores it into a fresh VMM on the same TAP', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({ name: 'web', kernel: h.kernel, memory: '64M' });
    const snap = await h.manager.snapshot('web');

    expect(snap.path).toBe(join(h.stateDir, 'vms', 'web', 'snapshots', snap.id));
    // Nobody else may read or change it; a confined VM's group may read it (its VMM restores from it).
    expect((await stat(snap.path)).mode & 0o027).toBe(0);
    expect((await stat(snap.path)).uid).toBe(process.getuid?.());
    expect(existsSync(join(snap.path, 'config.json'))).toBe(true);
    expect(snap.sizeBytes).toBeGreaterThan(0);
    expect(snap).toMatchObject({ status: 'running', spec: { cpus: 1, memory: 64 * 1024 * 1024 } });
    expect(await h.manager.get('web')).toMatchObject({ status: 'running' });
    expect(await vmmState(vm.paths.socket!)).toBe('Running');
    expect(await h.manager.listSnapshots('web')).toEqual([snap]);

    const restored = await h.manager.restore('web');
    expect(restored.status).toBe('running');
    expect(restored.pending).toBeUndefined();
    const record = (await h.store.read('web'))!;
    expect(vm.pid).toBeGreaterThan(0);
    expect(record.resources.vmm!.pid).not.toBe(vm.pid);
    expect(await vmmState(record.resources.vmm!.socketPath)).toBe('Running');
    expect(h.memory!.snapshot().taps).toEqual([expect.objectContaining({ name: record.resources.tap })]);
    // The snapshot stays for another restore.
    expect(await h.manager.listSnapshots('web')).toEqual([snap]);
  });

  it('restore kills the running VMM (its state is replaced): no grace period for a guest that ignores the button', async () => {
    // The probe guest and this simulated one ignore the power button: a stop would wait out the grace period.
    await using h = await makeHarness({
      backend: 'memory',
      simEnv: { MYHV_SIM_POWER_BUTTON: 'ignore' },
      vmm: { stopGracefulMs: 60_000 },
    });
    await h.manager.create({ name: 'web', kernel: h.kernel, memory: '64M' });
    await h.manager.snapshot('web');
    const old = (await h.store.read('web'))!.resources.vmm!;
    const steps: string[] = [];
    const started = performance.now();
    const restored = await h.manager.restore('web', {
      onProgress: (e) => {
        if (e.phase === 'start') steps.push(e.step);
      },
    });
    expect(performance.now() - started).toBeLessThan(30_000);
    expect(restored.status).toBe('running');
    // One operation: the kill, then the next VMM starts while the network is re-asserted and the old VMM dies
    // (vmm-gone), then the restore; no shares to release (a confined VM also has its `uid` step).
    expect(steps.filter((step) => step !== 'uid')).toEqual([
      'vmm-stop',
      'vmm',
      'network-ensure',
      'forwards-ensure',
      'vmm-gone',
      'vm.restore',
      'record',
    ]);
    // The replaced VMM and its serial relay are gone; the new ones run, recorded.
    const now = (await h.store.read('web'))!.resources.vmm!;
    expect(isProcessAlive(old.pid!, old.startTime)).toBe(false);
    expect(isProcessAlive(old.serialRelay!.pid, old.serialRelay!.startTime)).toBe(false);
    expect(isProcessAlive(now.pid!, now.startTime)).toBe(true);
    expect(isProcessAlive(now.serialRelay!.pid, now.serialRelay!.startTime)).toBe(true);
    expect(await vmmState(now.socketPath)).toBe('Running');
  });

  it('a snapshot right after a restore is taken (on demand, once the VMM has loaded the memory)', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'web', kernel: h.kernel, memory: '64M' });
    const first = await h.manager.snapshot('web');
    await h.manager.restore('web');
    const second = await h.manager.snapshot('web');
    expect(second.status).toBe('running');
    expect(await h.manager.listSnapshots('web')).toEqual([first, second]);
    await h.manager.restore('web', { from: second.id });
    expect(await h.manager.get('web')).toMatchObject({ status: 'running' });
  });

  it('--leave-paused leaves the VM paused; restore of a stopped VM starts it', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({ name: 'web', kernel: h.kernel });
    const snap = await h.manager.snapshot('web', { leavePaused: true });
    expect(snap.status).toBe('running');
    expect(await h.manager.get('web')).toMatchObject({ status: 'paused' });
    expect(await vmmState(vm.paths.socket!)).toBe('Paused');

    await h.manager.stop('web', { gracefulMs: 0 });
    expect(await h.manager.restore('web', { from: snap.id })).toMatchObject({ status: 'running' });
  });

  it('lists and removes snapshots; unknown ids are NOT_FOUND', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'web', kernel: h.kernel });
    expect(await codeOf(h.manager.restore('web'))).toBe('NOT_FOUND');
    const first = await h.manager.snapshot('web');
    const second = await h.manager.snapshot('web');
    expect((await h.manager.listSnapshots('web')).map((s) => s.id)).toEqual([first.id, second.id]);

    await h.manager.removeSnapshot('web', first.id);
    expect(existsSync(first.path)).toBe(false);
    expect((await h.manager.listSnapshots('web')).map((s) => s.id)).toEqual([second.id]);
    expect(await codeOf(h.manager.removeSnapshot('web', first.id))).toBe('NOT_FOUND');
    expect(await codeOf(h.manager.restore('web', { from: first.id }))).toBe('NOT_FOUND');
    expect(await codeOf(h.manager.listSnapshots('nope'))).toBe('NOT_FOUND');
  });

  it('refuses a corrupt, missing or changed snapshot up front and leaves the running VM running', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({ name: 'web', kernel: h.kernel });
    const pid = vm.pid;
    expect(pid).toBeGreaterThan(0);
    const stillRunning = async () => {
      const now = await h.manager.get('web');
      expect(now).toMatchObject({ status: 'running' });
      expect(now.pid).toBe(pid);
      expect(await vmmState(vm.paths.socket!)).toBe('Running');
    };

    const damaged = await h.manager.snapshot('web');
    await appendFile(join(damaged.path, 'state.json'), 'garbage');
    expect(await codeOf(h.manager.restore('web'))).toBe('CORRUPT_STATE');
    await stillRunning();

    const truncated = await h.manager.snapshot('web');
    await rm(join(truncated.path, 'config.json'));
    expect(await codeOf(h.manager.restore('web'))).toBe('CORRUPT_STATE');
    await stillRunning();

    const gone = await h.manager.snapshot('web');
    await rm(gone.path, { recursive: true });
    expect(await codeOf(h.manager.restore('web'))).toBe('CORRUPT_STATE');
    await stillRunning();
  });

  it('refuses a snapshot taken with another config (CONFLICT) and leaves the VM running', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({ name: 'web', kernel: h.kernel, cpus: 2 });
    const snap = await h.manager.snapshot('web');
    // The spec changed since (as a resize would change it).
    const record = (await h.store.read('web'))!;
    record.spec.cpus = 1;
    record.spec.memory *= 2;
    await h.store.write(record);

    const error = await h.manager.restore('web', { from: snap.id }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CONFLICT', details: { fields: ['cpus', 'memory'] } });
    expect(await h.manager.get('web')).toMatchObject({ status: 'running', pid: vm.pid });
  });

  it('--to needs an absolute, existing directory nobody else can write', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'web', kernel: h.kernel });
    const open = await mkdtemp(join(h.stateDir, '..', 'open-'));
    await chmod(open, 0o777);
    expect(await codeOf(h.manager.snapshot('web', { to: 'relative/dir' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(h.manager.snapshot('web', { to: join(open, 'missing') }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(h.manager.snapshot('web', { to: open }))).toBe('UNSAFE_PERMISSIONS');
    expect(await h.manager.listSnapshots('web')).toEqual([]);
    expect(await h.manager.get('web')).toMatchObject({ status: 'running' });
  });

  it('deleting the VM deletes its snapshots, in the state dir and in --to directories', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'web', kernel: h.kernel });
    const to = await mkdtemp(join(h.stateDir, '..', 'snaps-'));
    // A confined VMM writes there: it must be let through.
    await chmod(to, 0o711);
    const inside = await h.manager.snapshot('web');
    const outside = await h.manager.snapshot('web', { to });
    expect(outside.path.startsWith(`${to}/web-`)).toBe(true);
    expect(existsSync(join(outside.path, 'state.json'))).toBe(true);

    await h.manager.delete('web', { force: true });
    expect(existsSync(inside.path)).toBe(false);
    expect(existsSync(outside.path)).toBe(false);
    expect(existsSync(to)).toBe(true);
  });

  it.skipIf(!isRoot)('NO_SPACE when the target file system cannot hold the guest memory', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({ name: 'web', kernel: h.kernel, memory: '64M' });
    const small = await mkdtemp(join(h.stateDir, '..', 'small-'));
    try {
      await exec('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0711', 'tmpfs', small]);
    } catch (error) {
      console.warn(`NO_SPACE test skipped: cannot mount a tmpfs (${(error as Error).message})`);
      return;
    }
    try {
      expect(await codeOf(h.manager.snapshot('web', { to: small }))).toBe('NO_SPACE');
      expect(await h.manager.get('web')).toMatchObject({ status: 'running', pid: vm.pid });
      expect(await vmmState(vm.paths.socket!)).toBe('Running');
      expect(await h.manager.listSnapshots('web')).toEqual([]);
    } finally {
      await exec('umount', [small]);
    }
  });
  if (!isRoot) console.warn('NO_SPACE test skipped: mounting a small tmpfs needs root');

  it('reconcile removes the half-written directory of a crashed snapshot and resumes the VM', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    const vm = await h.manager.create({ name: 'web', kernel: h.kernel });
    // What a crash after pausing and starting to write leaves: pending, a partial directory, a paused VMM.
    const dir = join(h.stateDir, 'vms', 'web', 'snapshots', '20261206-040000-abcd');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'config.json'), '{"half');
    await using client = new ChvClient({ socketPath: vm.paths.socket! });
    await client.vmPause();
    const record = (await h.store.read('web'))!;
    record.pending = { op: 'snapshot', step: `vm.snapshot ${dir}`, since: new Date().toISOString() };
    await h.store.write(record);

    const report = await h.manager.reconcile();
    expect(report.changes).toEqual([
      expect.objectContaining({ vm: 'web', action: expect.stringContaining('resumed the VM') }),
    ]);
    expect(existsSync(dir)).toBe(false);
    expect(await h.manager.get('web')).toMatchObject({ status: 'running' });
    expect((await h.manager.get('web')).pending).toBeUndefined();
    expect(await vmmState(vm.paths.socket!)).toBe('Running');
    expect(await h.manager.listSnapshots('web')).toEqual([]);
  });

  it('reconcile marks a VM whose restore crashed stopped, and it can be restored again', async () => {
    await using h = await makeHarness({ backend: 'memory' });
    await h.manager.create({ name: 'web', kernel: h.kernel });
    await h.manager.snapshot('web');
    const record = (await h.store.read('web'))!;
    record.pending = { op: 'restore', step: 'vmm', since: new Date().toISOString() };
    await h.store.write(record);

    await h.manager.reconcile();
    expect(await h.manager.get('web')).toMatchObject({ status: 'stopped' });
    expect((await h.manager.get('web')).pending).toBeUndefined();
    expect(await h.manager.restore('web')).toMatchObject({ status: 'running' });
  });
});

describe('how a restore loads memory', () => {
  const record = (confined: boolean) =>
    ({ resources: confined ? { confinement: { uid: 1_500_000_001 } } : {} }) as unknown as VmRecord;
  const unprivileged = readFileSync('/proc/sys/vm/unprivileged_userfaultfd', 'utf8').trim() === '1';

  it('on demand for an unconfined VMM run by root, copied for a confined one (unless the host lets it use userfaultfd)', () => {
    expect(memoryMode({}, record(false))).toBe(isRoot || unprivileged ? 'on-demand' : 'copy');
    expect(memoryMode({}, record(true))).toBe(unprivileged ? 'on-demand' : 'copy');
  });

  it('restoreMemory decides when given', () => {
    expect(memoryMode({ restoreMemory: 'copy' }, record(false))).toBe('copy');
    expect(memoryMode({ restoreMemory: 'on-demand' }, record(true))).toBe('on-demand');
  });
});
