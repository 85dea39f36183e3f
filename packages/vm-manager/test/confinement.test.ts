import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { confinementSupport, DEFAULT_UID_BASE, DEFAULT_UID_COUNT, VmManagerError } from '../src/index.js';
import { type Harness, hasVirtiofsd, hostCanConfine, makeHarness, realVmm, vmmLabel } from './harness.js';

// Least privilege, on the simulator spawned through the same confinement as cloud-hypervisor: what /proc says
// about the VMM (and virtiofsd), its cgroup and limits, its TAP's owner, and that nothing is left after delete.

const skip = hostCanConfine ? undefined : `cannot confine here: ${confinementSupport().problems.join('; ')}`;
if (skip) it.skip(`confinement — skipped: ${skip}`, () => {});

function status(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const at = line.indexOf(':');
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1).trim();
  }
  return out;
}

const MiB = 1024 * 1024;
const exec = promisify(execFile);
// The real VMM, unprivileged, can only attach to a TAP made for its uid: that takes real TAPs (in the harness's
// namespace). The simulator only checks the owner the network backend recorded.
const backend = realVmm ? 'local' : 'memory';

/** The uid/gid a VM's TAP was made for: the kernel's (`ip -d link`) on a real network, else the memory backend's. */
async function tapOwner(h: Harness, tap: string): Promise<{ uid?: number; gid?: number }> {
  if (!h.netns) return h.memory!.snapshot().taps.find((t) => t.name === tap)?.owner ?? {};
  const { stdout } = await exec('ip', ['-n', h.netns, '-d', '-j', 'link', 'show', tap]);
  const info = (JSON.parse(stdout) as { linkinfo?: { info_data?: { user?: number; group?: number } } }[])[0]
    ?.linkinfo?.info_data;
  return {
    ...(info?.user !== undefined ? { uid: info.user } : {}),
    ...(info?.group !== undefined ? { gid: info.group } : {}),
  };
}
const cgroups = confinementSupport().cgroups;
const memoryMount = cgroups?.kind === 'v2' ? cgroups.root : cgroups?.controllers.memory;

describe.skipIf(skip)(`confined VMMs (${realVmm ? 'real network' : 'memory network'}, ${vmmLabel})`, () => {
  it('runs each VMM as its own uid, with no capabilities, no_new_privs, in its cgroup with its limits', async () => {
    await using h = await makeHarness({ backend, shares: hasVirtiofsd });
    const disks = join(h.shareDir, '..', 'disks');
    await mkdir(disks);
    await chmod(disks, 0o711);
    const disk = join(disks, 'data.img');
    await writeFile(disk, Buffer.alloc(4096));
    const vm = await h.manager.create({
      name: 'web',
      kernel: h.kernel,
      memory: '128M',
      disks: [{ path: disk }],
      shares: hasVirtiofsd ? [{ hostPath: h.shareDir, tag: 'data' }] : [],
      limits: { cpus: 1.5, pids: 300 },
    });
    const uid = vm.confinement!.uid;
    expect(uid).toBeGreaterThanOrEqual(DEFAULT_UID_BASE);
    expect(uid).toBeLessThan(DEFAULT_UID_BASE + DEFAULT_UID_COUNT);
    expect(vm.confinement!.limits).toEqual({ cpus: 1.5, memoryBytes: 128 * MiB + 256 * MiB, pids: 300 });

    const fields = status(vm.pid!);
    expect(fields.Uid!.split(/\s+/)).toEqual([uid, uid, uid, uid].map(String));
    expect(fields.Gid!.split(/\s+/)[0]).toBe(String(uid));
    expect(fields.CapEff).toBe('0000000000000000');
    expect(fields.CapBnd).toBe('0000000000000000');
    expect(fields.NoNewPrivs).toBe('1');
    // cloud-hypervisor filters the system calls of every thread that works (never run with `--seccomp false`),
    // all but its idle main thread; the simulator filters none.
    const threads = readdirSync(`/proc/${vm.pid}/task`).map(
      (task) => readFileSync(`/proc/${vm.pid}/task/${task}/status`, 'utf8').match(/^Seccomp:\s*(\d)/m)![1],
    );
    if (realVmm) expect(threads.filter((mode) => mode === '2')).toHaveLength(threads.length - 1);
    // Its TAP was made for its uid; its disk is its own; its run directory too.
    expect(await tapOwner(h, vm.tap!)).toEqual({ uid, gid: uid });
    if (confinementSupport().tun) {
      // This host's /dev/net/tun is root's alone: the VMM sees the manager's prepared node (10:200, 0666, in a
      // directory only root enters) bound over it, in its own mount namespace; the host's node is unchanged.
      const node = join(h.stateDir, 'confinement', 'dev', 'tun');
      const prepared = statSync(node);
      expect([prepared.isCharacterDevice(), prepared.mode & 0o777, prepared.rdev]).toEqual([
        true,
        0o666,
        statSync('/dev/net/tun').rdev,
      ]);
      expect(statSync(join(h.stateDir, 'confinement', 'dev')).mode & 0o777).toBe(0o700);
      expect(readFileSync(`/proc/${vm.pid}/mountinfo`, 'utf8')).toMatch(/ \/dev\/net\/tun /);
      expect(statSync('/dev/net/tun').mode & 0o777).toBe(0o600);
    }
    expect(statSync(disk).uid).toBe(uid);
    expect(statSync(vm.paths.socket!).uid).toBe(uid);

    // inspect: how every process runs, from /proc.
    const inspected = await h.manager.get('web');
    const processes = inspected.confinement!.processes!;
    expect(processes[0]).toMatchObject({ role: 'vmm', pid: vm.pid, uid, capEff: '0000000000000000' });
    expect(processes[0]!.noNewPrivs).toBe(true);
    expect(processes[0]!.seccomp).toBe(realVmm ? 2 : 0);
    expect(processes[0]!.seccompThreads?.total).toBe(threads.length);
    if (cgroups) {
      const cgroup = vm.confinement!.cgroup!;
      expect(cgroup).toMatch(/^\/myhv-[0-9a-f]{6}\/[0-9a-f]{12}$/);
      expect(processes[0]!.cgroups).toContain(cgroup);
      if (hasVirtiofsd) expect(processes[1]).toMatchObject({ role: 'virtiofsd', tag: 'data' });
      if (hasVirtiofsd) expect(processes[1]!.cgroups).toContain(cgroup);
      if (cgroups.kind !== 'v2' && memoryMount) {
        const dir = join(memoryMount, cgroup);
        expect(Number(readFileSync(join(dir, 'memory.limit_in_bytes'), 'utf8'))).toBe(384 * MiB);
        expect(readFileSync(join(cgroups.controllers.pids!, cgroup, 'pids.max'), 'utf8').trim()).toBe('300');
        expect(readFileSync(join(cgroups.controllers.cpu!, cgroup, 'cpu.cfs_quota_us'), 'utf8').trim()).toBe(
          '150000',
        );
      }
      const stats = await h.manager.stats('web');
      expect(stats.cgroup).toMatchObject({ path: cgroup, pidsLimit: 300 });
      expect(stats.cgroup!.pids).toBeGreaterThan(0);
    }

    // It still pauses, snapshots, restores (a fresh VMM, same uid) and stops.
    await h.manager.pause('web');
    await h.manager.resume('web');
    const snap = await h.manager.snapshot('web');
    expect(statSync(snap.path).uid).toBe(0);
    await h.manager.restore('web');
    const restored = await h.manager.get('web');
    expect(restored.pid).not.toBe(vm.pid);
    expect(status(restored.pid!).Uid!.split(/\s+/)[0]).toBe(String(uid));
    await h.manager.stop('web');
    const started = await h.manager.start('web');
    expect(started.confinement!.uid).toBe(uid);

    // Under Landlock (the VMM's own), a disk hot-added from elsewhere is refused before any change; one put in
    // the VM's disk directory is given to it and added. (Where the kernel has no Landlock, there are no rules.)
    const landlock = confinementSupport().landlock !== false;
    if (landlock)
      expect(inspected.confinement!.landlock).toEqual([
        join(vm.paths.dir, 'snapshots'),
        join(vm.paths.dir, 'disks'),
      ]);
    const outside = join(disks, 'late.img');
    await writeFile(outside, Buffer.alloc(4096));
    if (landlock) {
      const refused = await h.manager.addDisk('web', { path: outside }).catch((e: unknown) => e);
      expect(VmManagerError.isInstance(refused) && refused.details.field).toBe('path');
      expect((await h.manager.get('web')).spec.disks).toHaveLength(1);
    }
    const inside = join(vm.paths.dir, 'disks', 'late.img');
    await writeFile(inside, Buffer.alloc(4096));
    await h.manager.addDisk('web', { path: inside });
    expect(statSync(inside).uid).toBe(uid);
    // A snapshot asked for elsewhere is written in its own directory and moved there.
    const to = join(h.shareDir, '..', 'elsewhere');
    await mkdir(to, { mode: 0o700 });
    const moved = await h.manager.snapshot('web', { to });
    expect(moved.path.startsWith(`${to}/`)).toBe(true);
    expect(existsSync(join(moved.path, 'config.json'))).toBe(true);
    expect(existsSync(join(vm.paths.dir, 'snapshots', moved.id))).toBe(false);
    expect((await h.manager.get('web')).status).toBe('running');

    // A second VM gets another uid.
    const other = await h.manager.create({ name: 'db', kernel: h.kernel, memory: '64M' });
    expect(other.confinement!.uid).not.toBe(uid);

    // Delete leaves nothing: cgroup, uid reservation, run directory; the disk goes back to its owner.
    await h.manager.delete('web', { force: true });
    expect(statSync(disk).uid).toBe(0);
    expect(existsSync(join(h.stateDir, 'confinement', 'uids', String(uid)))).toBe(false);
    expect(existsSync(join(h.runDir, vm.id))).toBe(false);
    if (memoryMount) expect(existsSync(join(memoryMount, vm.confinement!.cgroup!))).toBe(false);
    await h.manager.delete('db', { force: true });
    // With the last VM its manager's parent cgroup goes too.
    if (memoryMount) expect(existsSync(join(memoryMount, dirname(vm.confinement!.cgroup!)))).toBe(false);
  });

  it.skipIf(!statSync('/dev/userfaultfd', { throwIfNoEntry: false })?.isCharacterDevice())(
    'with confinement.userfaultfd its VMM gets a /dev/userfaultfd of its own, and a restore loads memory on demand',
    async () => {
      await using h = await makeHarness({ backend, confinement: { mode: 'on', userfaultfd: true } });
      const hostNode = statSync('/dev/userfaultfd');
      // 256 MiB: the VMM loads the memory for a second or so after the restore answered (64 MiB took ~400 ms, which
      // a loaded CI machine spent before the check below could look).
      await h.manager.create({ name: 'web', kernel: h.kernel, memory: '256M' });
      await h.manager.snapshot('web');
      const restored = await h.manager.restore('web');
      const threads = readdirSync(`/proc/${restored.pid}/task`).map((t) =>
        readFileSync(`/proc/${restored.pid}/task/${t}/comm`, 'utf8').trim(),
      );
      const node = statSync(`/proc/${restored.pid}/root/dev/userfaultfd`);
      expect(node.rdev).toBe(hostNode.rdev);
      expect(node.mode & 0o777).toBe(0o666);
      // The host's own node is as it was; the VMM still runs as its own uid.
      expect(statSync('/dev/userfaultfd').mode).toBe(hostNode.mode);
      expect(restored.confinement).toMatchObject({ userfaultfd: true });
      expect(readFileSync(`/proc/${restored.pid}/status`, 'utf8')).toMatch(/^Uid:\s+1\d{9}\s/m);
      // The real VMM loads the memory in a thread of its own, for a few hundred ms after the restore answered.
      if (realVmm) expect(threads).toContain('uffd-handler');
      // A snapshot right after waits for that load instead of failing.
      expect((await h.manager.snapshot('web')).status).toBe('running');
      await h.manager.delete('web', { force: true });
    },
  );

  it('refuses, before any work, a kernel its VMM could not open, naming the field', async () => {
    await using h = await makeHarness({ backend });
    const hidden = join(h.shareDir, 'private');
    await mkdir(hidden, { mode: 0o700 });
    const kernel = join(hidden, 'vmlinux');
    await writeFile(kernel, readFileSync(h.kernel));
    const error = await h.manager.create({ name: 'web', kernel }).catch((e: unknown) => e);
    expect(VmManagerError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
    expect((error as VmManagerError).details.field).toBe('kernel');
    expect(await h.manager.list()).toEqual([]);
    expect(existsSync(join(h.stateDir, 'confinement'))).toBe(false);
  });

  it('runs the VMM as root when confinement is off', async () => {
    await using h = await makeHarness({ backend, confinement: { mode: 'off' } });
    const vm = await h.manager.create({ name: 'web', kernel: h.kernel, memory: '64M' });
    expect(vm.confinement).toBeUndefined();
    expect(status(vm.pid!).Uid!.split(/\s+/)[0]).toBe('0');
  });

  it('reconcile removes the cgroup and uid of a VM whose record is gone', async () => {
    await using h = await makeHarness({ backend });
    const vm = await h.manager.create({ name: 'web', kernel: h.kernel, memory: '64M' });
    await h.manager.stop('web');
    // As if a crash hit right after the record went: its uid reservation and cgroup are still there.
    await h.store.remove('web');
    await h.ipam.release(vm.id);
    const report = await h.manager.reconcile();
    const kinds = report.changes.map((c) => `${c.kind} ${c.target}`);
    expect(kinds).toContain(`uid ${vm.confinement!.uid}`);
    if (cgroups) expect(kinds).toContain(`cgroup ${vm.id}`);
    expect(existsSync(join(h.stateDir, 'confinement', 'uids', String(vm.confinement!.uid)))).toBe(false);
    if (memoryMount) expect(existsSync(join(memoryMount, vm.confinement!.cgroup!))).toBe(false);
  });
});
