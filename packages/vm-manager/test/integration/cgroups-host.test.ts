import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type CgroupLayout,
  createVmCgroup,
  detectCgroupLayout,
  joinCgroup,
  listVmCgroups,
  readCgroupUsage,
  removeVmCgroup,
  type VmCgroup,
} from '../../src/cgroups.js';

const isRoot = process.getuid?.() === 0;
const layout = detectCgroupLayout();
const skip = !isRoot
  ? 'needs root (creates cgroups)'
  : layout === undefined
    ? 'no cgroup file system mounted'
    : undefined;
if (skip) console.warn(`cgroup host tests skipped: ${skip}`);

const parent = `myhv-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const MiB = 1024 * 1024;

function parentDirs(l: CgroupLayout): string[] {
  const mounts = l.kind === 'v2' ? [l.root] : [l.unified, ...Object.values(l.controllers)];
  return [...new Set(mounts.filter((m): m is string => m !== undefined).map((m) => join(m, parent)))];
}

/** The cgroup path per hierarchy in /proc/PID/cgroup: "memory" → "/x/y", "" (the v2 line 0::) → "/x/y". */
async function procCgroups(pid: number): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  for (const line of (await readFile(`/proc/${pid}/cgroup`, 'utf8')).trim().split('\n')) {
    const [, controllers = '', path = ''] = line.split(':');
    for (const c of controllers.split(',')) map.set(c, path);
  }
  return map;
}

describe.skipIf(skip)("cgroups on this host's cgroupfs", () => {
  const children: ChildProcess[] = [];
  const l = layout!;

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    for (const name of await listVmCgroups(l, parent).catch(() => [])) {
      await removeVmCgroup({ layout: l, parent, name }).catch((e: unknown) => console.warn(e));
    }
    for (const dir of parentDirs(l)) await rmdir(dir).catch(() => undefined);
  });

  it('confines a process: limits read back, usage is read, removal kills it and removes every directory', async () => {
    const cg: VmCgroup = await createVmCgroup(l, parent, 'vm1', {
      cpus: 1.5,
      memoryBytes: 256 * MiB,
      pids: 64,
    });
    expect(cg.enforced).toEqual({ cpus: true, memory: true, pids: true });
    // Idempotent: a second create reuses the directories.
    await createVmCgroup(l, parent, 'vm1', { cpus: 1.5, memoryBytes: 256 * MiB, pids: 64 });

    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(sleeper);
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      sleeper.on('exit', (_, signal) => resolve(signal)),
    );
    await joinCgroup(cg, sleeper.pid!);

    const membership = await procCgroups(sleeper.pid!);
    expect(membership.get('memory') ?? membership.get('')).toBe(`/${parent}/vm1`);
    expect(membership.get('pids') ?? membership.get('')).toBe(`/${parent}/vm1`);
    expect(membership.get('cpu') ?? membership.get('')).toBe(`/${parent}/vm1`);
    if (l.kind === 'v2' || l.unified) expect(membership.get('')).toBe(`/${parent}/vm1`);

    const read = async (dir: string | undefined, file: string) =>
      (await readFile(join(dir!, file), 'utf8')).trim();
    if (l.kind === 'v2') {
      expect(await read(cg.dirs.unified, 'memory.max')).toBe('268435456');
      expect(await read(cg.dirs.unified, 'cpu.max')).toBe('150000 100000');
      expect(await read(cg.dirs.unified, 'pids.max')).toBe('64');
    } else {
      expect(await read(cg.dirs.memory, 'memory.limit_in_bytes')).toBe('268435456');
      if (existsSync(join(cg.dirs.memory!, 'memory.memsw.limit_in_bytes'))) {
        expect(await read(cg.dirs.memory, 'memory.memsw.limit_in_bytes')).toBe('268435456');
      }
      expect(await read(cg.dirs.cpu, 'cpu.cfs_quota_us')).toBe('150000');
      expect(await read(cg.dirs.cpu, 'cpu.cfs_period_us')).toBe('100000');
      expect(await read(cg.dirs.pids, 'pids.max')).toBe('64');
    }

    const usage = await readCgroupUsage(cg);
    expect(usage).toMatchObject({ memoryLimitBytes: 256 * MiB, cpus: 1.5, pids: 1, pidsLimit: 64 });
    expect(usage.memoryBytes).toEqual(expect.any(Number));
    expect(usage.cpuUsageUsec).toEqual(expect.any(Number));
    expect(await listVmCgroups(l, parent)).toEqual(['vm1']);

    await removeVmCgroup(cg);
    expect(await exited).toBe('SIGKILL');
    for (const dir of cg.paths) expect(existsSync(dir), dir).toBe(false);
    expect(await listVmCgroups(l, parent)).toEqual([]);
    // Its last VM gone, the parent goes too.
    for (const dir of parentDirs(l)) expect(existsSync(dir), dir).toBe(false);
    await removeVmCgroup(cg); // idempotent
  });

  it('removes nested cgroups a VM created below its own', async () => {
    const cg = await createVmCgroup(l, parent, 'vm2', {});
    const nested = cg.paths.map((p) => join(p, 'inner'));
    for (const dir of nested) await mkdir(dir);
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(sleeper);
    const exited = new Promise((resolve) => sleeper.on('exit', resolve));
    await joinCgroup({ ...cg, procsFiles: nested.map((d) => join(d, 'cgroup.procs')) }, sleeper.pid!);

    await removeVmCgroup({ layout: l, parent, name: 'vm2' });
    await exited;
    for (const dir of cg.paths) expect(existsSync(dir), dir).toBe(false);
    for (const dir of parentDirs(l)) expect(existsSync(dir), dir).toBe(false);
  });

  it('keeps the parent while another VM has its cgroup in it', async () => {
    await createVmCgroup(l, parent, 'vm3', {});
    const other = await createVmCgroup(l, parent, 'vm4', {});
    await removeVmCgroup({ layout: l, parent, name: 'vm3' });
    for (const dir of parentDirs(l)) expect(existsSync(dir), dir).toBe(true);
    expect(await listVmCgroups(l, parent)).toEqual(['vm4']);
    await removeVmCgroup(other);
    for (const dir of parentDirs(l)) expect(existsSync(dir), dir).toBe(false);
  });
});
