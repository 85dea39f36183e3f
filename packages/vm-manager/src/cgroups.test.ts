import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type CgroupLayout,
  createVmCgroup,
  detectCgroupLayout,
  joinCgroup,
  listVmCgroups,
  ownProcsFile,
  readCgroupUsage,
  removeVmCgroup,
  vmCgroupFor,
  warmCgroupMoves,
} from './cgroups.js';
import { VmManagerError } from './errors.js';

// Copied from /proc/self/mounts of a host with systemd's hybrid layout (cpu and cpuacct mounted apart).
const HYBRID_MOUNTS = `tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/devices cgroup rw,relatime,devices 0 0
cgroup /sys/fs/cgroup/freezer cgroup rw,relatime,freezer 0 0
cgroup /sys/fs/cgroup/blkio cgroup rw,relatime,blkio 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
`;

// Debian 10 style: no cgroup2 mount, cpu and cpuacct co-mounted.
const V1_MOUNTS = `proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,nosuid,nodev,noexec,relatime,xattr,name=systemd 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,nosuid,nodev,noexec,relatime,pids 0 0
`;

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'myhv-cgroups-'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function fakeV2Root(controllers: string): Promise<string> {
  const root = join(tmp, 'cg root'); // a space: mounts escape it as \040
  await mkdir(root);
  await writeFile(join(root, 'cgroup.controllers'), `${controllers}\n`);
  await writeFile(join(root, 'cgroup.subtree_control'), '');
  return root;
}

function v2Mounts(root: string): string {
  return `sysfs /sys sysfs rw 0 0\ncgroup2 ${root.replaceAll(' ', '\\040')} cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n`;
}

async function expectCode(promise: Promise<unknown> | (() => unknown), code: string, details: object) {
  const error = await (typeof promise === 'function' ? Promise.resolve().then(promise) : promise).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(VmManagerError.isInstance(error) && error.code).toBe(code);
  expect((error as VmManagerError).details).toMatchObject(details);
}

describe('detectCgroupLayout', () => {
  it('finds a pure v2 host and the controllers its root offers', async () => {
    const root = await fakeV2Root('cpuset cpu io memory hugetlb pids rdma misc');
    expect(detectCgroupLayout(v2Mounts(root))).toEqual({
      kind: 'v2',
      root,
      available: ['cpu', 'memory', 'pids'],
    });
  });

  it('reports only the controllers a v2 root offers', async () => {
    const root = await fakeV2Root('cpuset io memory');
    expect(detectCgroupLayout(v2Mounts(root))).toMatchObject({ kind: 'v2', available: ['memory'] });
  });

  it('finds a hybrid host: v1 controllers plus the cgroup2 membership hierarchy', () => {
    expect(detectCgroupLayout(HYBRID_MOUNTS)).toEqual({
      kind: 'hybrid',
      unified: '/sys/fs/cgroup/unified',
      controllers: {
        cpu: '/sys/fs/cgroup/cpu',
        cpuacct: '/sys/fs/cgroup/cpuacct',
        memory: '/sys/fs/cgroup/memory',
        pids: '/sys/fs/cgroup/pids',
      },
    });
  });

  it('finds a v1-only host with cpu and cpuacct co-mounted', () => {
    expect(detectCgroupLayout(V1_MOUNTS)).toEqual({
      kind: 'v1',
      controllers: {
        cpu: '/sys/fs/cgroup/cpu,cpuacct',
        cpuacct: '/sys/fs/cgroup/cpu,cpuacct',
        memory: '/sys/fs/cgroup/memory',
        pids: '/sys/fs/cgroup/pids',
      },
    });
  });

  it('returns undefined without any cgroup mount', () => {
    expect(detectCgroupLayout('proc /proc proc rw 0 0\nsysfs /sys sysfs rw 0 0\n')).toBeUndefined();
    expect(detectCgroupLayout('')).toBeUndefined();
  });

  it('reads /proc/self/mounts when given no text', () => {
    const layout = detectCgroupLayout();
    const mounts = readFileSync('/proc/self/mounts', 'utf8');
    expect(layout === undefined).toBe(!/ cgroup2? /.test(mounts));
  });
});

describe('createVmCgroup on v2 (a fake cgroupfs)', () => {
  it('enables the controllers down the path and writes every limit', async () => {
    const root = await fakeV2Root('cpuset cpu io memory pids');
    await writeFile(join(root, 'memory.swap.max'), 'max\n'); // so the child gets one too
    await mkdir(join(root, 'myhv', 'vm1'), { recursive: true });
    await writeFile(join(root, 'myhv', 'vm1', 'memory.swap.max'), 'max\n');
    const layout = detectCgroupLayout(v2Mounts(root))!;

    const cg = await createVmCgroup(layout, 'myhv', 'vm1', {
      cpus: 1.5,
      memoryBytes: 256 * 1024 * 1024,
      pids: 64,
    });

    const read = (...p: string[]) => readFile(join(root, ...p), 'utf8');
    expect(await read('cgroup.subtree_control')).toBe('+cpu +memory +pids');
    expect(await read('myhv', 'cgroup.subtree_control')).toBe('+cpu +memory +pids');
    expect(await read('myhv', 'vm1', 'cpu.max')).toBe('150000 100000');
    expect(await read('myhv', 'vm1', 'memory.max')).toBe('268435456');
    expect(await read('myhv', 'vm1', 'memory.swap.max')).toBe('0');
    expect(await read('myhv', 'vm1', 'pids.max')).toBe('64');
    expect(cg).toMatchObject({
      paths: [join(root, 'myhv', 'vm1')],
      procsFiles: [join(root, 'myhv', 'vm1', 'cgroup.procs')],
      display: '/myhv/vm1',
      enforced: { cpus: true, memory: true, pids: true },
    });
  });

  it('rewrites the limits of an existing cgroup, unset ones as "max"', async () => {
    const root = await fakeV2Root('cpu memory pids');
    const layout = detectCgroupLayout(v2Mounts(root))!;
    await createVmCgroup(layout, 'myhv', 'vm1', { cpus: 2, memoryBytes: 1024 * 1024, pids: 10 });
    await createVmCgroup(layout, 'myhv', 'vm1', { memoryBytes: 2048 * 1024 });

    const read = (file: string) => readFile(join(root, 'myhv', 'vm1', file), 'utf8');
    expect(await read('cpu.max')).toBe('max 100000');
    expect(await read('memory.max')).toBe('2097152');
    expect(await read('pids.max')).toBe('max');
  });

  it('reports a limit whose controller the host lacks as not enforced, and writes nothing for it', async () => {
    const root = await fakeV2Root('cpu io memory');
    const layout = detectCgroupLayout(v2Mounts(root))!;
    const cg = await createVmCgroup(layout, 'myhv', 'vm1', { cpus: 1, pids: 64 });

    expect(cg.enforced).toEqual({ cpus: true, memory: true, pids: false });
    expect(await readFile(join(root, 'cgroup.subtree_control'), 'utf8')).toBe('+cpu +memory');
    await expect(readFile(join(root, 'myhv', 'vm1', 'pids.max'), 'utf8')).rejects.toThrow();
  });

  it('reports controllers as not enforced when the kernel refuses to enable them', async () => {
    const root = await fakeV2Root('cpu memory pids');
    // A directory in place of the file makes every write to it fail, as EBUSY would on a real host.
    await rm(join(root, 'cgroup.subtree_control'));
    await mkdir(join(root, 'cgroup.subtree_control'));
    const cg = await createVmCgroup(detectCgroupLayout(v2Mounts(root))!, 'myhv', 'vm1', { pids: 8 });
    expect(cg.enforced).toEqual({ cpus: false, memory: false, pids: false });
  });

  it('refuses names that are not one plain path segment, before touching anything', async () => {
    const root = await fakeV2Root('cpu memory pids');
    const layout = detectCgroupLayout(v2Mounts(root))!;
    for (const bad of ['..', '.', '', 'a/b', 'vm 1', 'x\n']) {
      await expectCode(createVmCgroup(layout, 'myhv', bad, {}), 'INVALID_ARGUMENT', { field: 'name' });
      await expectCode(createVmCgroup(layout, bad, 'vm1', {}), 'INVALID_ARGUMENT', { field: 'parent' });
    }
    expect(await listVmCgroups(layout, 'myhv')).toEqual([]);
  });

  it('refuses limits the kernel would reject', async () => {
    const root = await fakeV2Root('cpu memory pids');
    const layout = detectCgroupLayout(v2Mounts(root))!;
    await expectCode(createVmCgroup(layout, 'myhv', 'vm1', { cpus: 0 }), 'INVALID_ARGUMENT', {
      field: 'limits.cpus',
    });
    await expectCode(createVmCgroup(layout, 'myhv', 'vm1', { memoryBytes: 1.5 }), 'INVALID_ARGUMENT', {
      field: 'limits.memoryBytes',
    });
    await expectCode(createVmCgroup(layout, 'myhv', 'vm1', { pids: -1 }), 'INVALID_ARGUMENT', {
      field: 'limits.pids',
    });
  });

  it('fails as VMM_FAILED naming the step and path when a directory cannot be made', async () => {
    const root = await fakeV2Root('cpu memory pids');
    await writeFile(join(root, 'myhv'), 'a file where the parent cgroup belongs');
    await expectCode(createVmCgroup(detectCgroupLayout(v2Mounts(root))!, 'myhv', 'vm1', {}), 'VMM_FAILED', {
      step: 'cgroup-mkdir',
      path: join(root, 'myhv'),
    });
  });
});

describe('vmCgroupFor', () => {
  it('puts a hybrid VM in every controller hierarchy and the unified one, cpu/cpuacct deduplicated on v1', () => {
    const hybrid = vmCgroupFor(detectCgroupLayout(HYBRID_MOUNTS)!, 'myhv', 'vm1');
    expect(hybrid.procsFiles).toEqual([
      '/sys/fs/cgroup/unified/myhv/vm1/cgroup.procs',
      '/sys/fs/cgroup/cpu/myhv/vm1/cgroup.procs',
      '/sys/fs/cgroup/cpuacct/myhv/vm1/cgroup.procs',
      '/sys/fs/cgroup/memory/myhv/vm1/cgroup.procs',
      '/sys/fs/cgroup/pids/myhv/vm1/cgroup.procs',
    ]);
    expect(hybrid.enforced).toEqual({ cpus: true, memory: true, pids: true });
    const v1 = vmCgroupFor(detectCgroupLayout(V1_MOUNTS)!, 'myhv', 'vm1');
    expect(v1.paths).toEqual([
      '/sys/fs/cgroup/cpu,cpuacct/myhv/vm1',
      '/sys/fs/cgroup/memory/myhv/vm1',
      '/sys/fs/cgroup/pids/myhv/vm1',
    ]);
  });

  it('marks a limit without its v1 controller mount as not enforced', () => {
    const layout: CgroupLayout = { kind: 'v1', controllers: { memory: '/m' } };
    expect(vmCgroupFor(layout, 'myhv', 'vm1').enforced).toEqual({ cpus: false, memory: true, pids: false });
  });
});

describe('readCgroupUsage (fake files)', () => {
  it('reads v2 usage and limits; "max" is no limit', async () => {
    const root = await fakeV2Root('cpu memory pids');
    const layout = detectCgroupLayout(v2Mounts(root))!;
    const cg = await createVmCgroup(layout, 'myhv', 'vm1', { cpus: 0.5 });
    const dir = cg.paths[0]!;
    await writeFile(join(dir, 'memory.current'), '12345\n');
    await writeFile(join(dir, 'cpu.stat'), 'usage_usec 987\nuser_usec 900\nsystem_usec 87\n');
    await writeFile(join(dir, 'pids.current'), '3\n');
    expect(await readCgroupUsage(cg)).toEqual({ memoryBytes: 12345, cpuUsageUsec: 987, cpus: 0.5, pids: 3 });
  });

  it('reads v1 usage: cpuacct nanoseconds as microseconds, the huge "unlimited" as no limit', async () => {
    const mount = (c: string) => join(tmp, c);
    const layout: CgroupLayout = {
      kind: 'v1',
      controllers: {
        cpu: mount('cpu'),
        cpuacct: mount('cpuacct'),
        memory: mount('memory'),
        pids: mount('pids'),
      },
    };
    const cg = vmCgroupFor(layout, 'myhv', 'vm1');
    for (const p of cg.paths) await mkdir(p, { recursive: true });
    await writeFile(join(cg.dirs.memory!, 'memory.usage_in_bytes'), '4096\n');
    await writeFile(join(cg.dirs.memory!, 'memory.limit_in_bytes'), '9223372036854771712\n');
    await writeFile(join(cg.dirs.cpuacct!, 'cpuacct.usage'), '123456789012345678\n');
    await writeFile(join(cg.dirs.cpu!, 'cpu.cfs_quota_us'), '-1\n');
    await writeFile(join(cg.dirs.cpu!, 'cpu.cfs_period_us'), '100000\n');
    await writeFile(join(cg.dirs.pids!, 'pids.current'), '2\n');
    await writeFile(join(cg.dirs.pids!, 'pids.max'), 'max\n');
    expect(await readCgroupUsage(cg)).toEqual({ memoryBytes: 4096, cpuUsageUsec: 123456789012345, pids: 2 });
  });

  it('fails as NOT_FOUND for a cgroup that does not exist', async () => {
    const root = await fakeV2Root('cpu memory pids');
    const cg = vmCgroupFor(detectCgroupLayout(v2Mounts(root))!, 'myhv', 'gone');
    await expectCode(readCgroupUsage(cg), 'NOT_FOUND', { step: 'cgroup-usage' });
  });
});

describe('listVmCgroups, joinCgroup, removeVmCgroup (fake files)', () => {
  it('lists the VM cgroups under the parent across hierarchies, empty when the parent is missing', async () => {
    const layout: CgroupLayout = {
      kind: 'hybrid',
      unified: join(tmp, 'u'),
      controllers: { memory: join(tmp, 'm') },
    };
    expect(await listVmCgroups(layout, 'myhv')).toEqual([]);
    await mkdir(join(tmp, 'u', 'myhv', 'b'), { recursive: true });
    await mkdir(join(tmp, 'm', 'myhv', 'a'), { recursive: true });
    await mkdir(join(tmp, 'm', 'myhv', 'b'), { recursive: true });
    await writeFile(join(tmp, 'm', 'myhv', 'cgroup.procs'), '');
    expect(await listVmCgroups(layout, 'myhv')).toEqual(['a', 'b']);
  });

  it('joinCgroup writes the pid into every procs file and refuses a non-pid', async () => {
    const layout: CgroupLayout = {
      kind: 'hybrid',
      unified: join(tmp, 'u'),
      controllers: { pids: join(tmp, 'p') },
    };
    await mkdir(join(tmp, 'u'));
    await mkdir(join(tmp, 'p'));
    const cg = await createVmCgroup(layout, 'myhv', 'vm1', {});
    await joinCgroup(cg, 4242);
    for (const file of cg.procsFiles) expect(await readFile(file, 'utf8')).toBe('4242');
    await expectCode(joinCgroup(cg, 0), 'INVALID_ARGUMENT', { field: 'pid' });
  });

  it('removeVmCgroup of a cgroup that does not exist is a no-op', async () => {
    const root = await fakeV2Root('cpu memory pids');
    await removeVmCgroup({ layout: detectCgroupLayout(v2Mounts(root))!, parent: 'myhv', name: 'gone' });
  });

  it('removing the last VM cgroup of a parent removes the parent; one with another VM left stays', async () => {
    const layout: CgroupLayout = {
      kind: 'hybrid',
      unified: join(tmp, 'u'),
      controllers: { pids: join(tmp, 'p') },
    };
    await mkdir(join(tmp, 'u'));
    await mkdir(join(tmp, 'p'));
    // Empty directories stand for cgroups (whose control files cgroupfs removes with them).
    for (const mount of ['u', 'p'])
      for (const vm of ['vm1', 'vm2']) await mkdir(join(tmp, mount, 'myhv-abc123', vm), { recursive: true });
    await removeVmCgroup({ layout, parent: 'myhv-abc123', name: 'vm1' });
    expect(await listVmCgroups(layout, 'myhv-abc123')).toEqual(['vm2']);
    await removeVmCgroup({ layout, parent: 'myhv-abc123', name: 'vm2' });
    for (const mount of ['u', 'p']) expect(existsSync(join(tmp, mount, 'myhv-abc123'))).toBe(false);
    // A VM created after that makes the parent again.
    const again = await createVmCgroup(layout, 'myhv-abc123', 'vm3', {});
    for (const file of again.procsFiles) expect(existsSync(dirname(file))).toBe(true);
  });
});

describe('warmCgroupMoves: a move of this process to the cgroup it is in', () => {
  const V2_SELF = '0::/system.slice/myhvd.service\n';
  const HYBRID_SELF =
    '9:name=systemd:/system.slice/myhvd.service\n8:pids:/system.slice/myhvd.service\n4:memory:/system.slice/myhvd.service\n1:cpu:/\n0::/system.slice/myhvd.service\n';

  it('finds its own cgroup.procs on v2, on hybrid (the memory hierarchy) and on v1 without memory (unified)', () => {
    expect(ownProcsFile({ kind: 'v2', root: '/cg', available: [] }, V2_SELF)).toBe(
      '/cg/system.slice/myhvd.service/cgroup.procs',
    );
    const hybrid = detectCgroupLayout(HYBRID_MOUNTS)!;
    expect(ownProcsFile(hybrid, HYBRID_SELF)).toBe(
      '/sys/fs/cgroup/memory/system.slice/myhvd.service/cgroup.procs',
    );
    expect(ownProcsFile({ kind: 'hybrid', unified: '/u', controllers: { cpu: '/c' } }, HYBRID_SELF)).toBe(
      '/u/system.slice/myhvd.service/cgroup.procs',
    );
    // Co-mounted controllers are one comma-separated field.
    expect(
      ownProcsFile(detectCgroupLayout(V1_MOUNTS)!, '5:memory,hugetlb:/user.slice\n3:cpu,cpuacct:/\n'),
    ).toBe('/sys/fs/cgroup/memory/user.slice/cgroup.procs');
  });

  it('finds nothing it could write for a path it cannot trust or a hierarchy it is not in', () => {
    const v2: CgroupLayout = { kind: 'v2', root: '/cg', available: [] };
    expect(ownProcsFile(v2, '0::/a/../../etc\n')).toBeUndefined();
    expect(ownProcsFile(v2, '0::relative\n')).toBeUndefined();
    expect(ownProcsFile(v2, '4:memory:/x\n')).toBeUndefined();
    expect(ownProcsFile({ kind: 'v1', controllers: { cpu: '/c' } }, HYBRID_SELF)).toBeUndefined();
  });

  it('writes this process’s pid into that file and never throws, even where it cannot', async () => {
    const root = await fakeV2Root('memory');
    await mkdir(join(root, 'svc'));
    await writeFile(join(root, 'svc', 'cgroup.procs'), '');
    const layout: CgroupLayout = { kind: 'v2', root, available: [] };
    warmCgroupMoves(layout, '0::/svc\n');
    await expect.poll(() => readFileSync(join(root, 'svc', 'cgroup.procs'), 'utf8')).toBe(`${process.pid}\n`);
    // A cgroup that is not there: nothing thrown, nothing made.
    expect(() => warmCgroupMoves(layout, '0::/gone\n')).not.toThrow();
    await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(join(root, 'gone'))).toBe(false);
  });

  const real = detectCgroupLayout();
  it.skipIf(process.getuid?.() !== 0 || !real)(
    'on this host’s cgroups (root): leaves this process where it was',
    async () => {
      const before = readFileSync('/proc/self/cgroup', 'utf8');
      const file = ownProcsFile(real!)!;
      expect(readFileSync(file, 'utf8').split('\n')).toContain(`${process.pid}`);
      warmCgroupMoves(real!);
      await new Promise((r) => setTimeout(r, 100));
      expect(readFileSync('/proc/self/cgroup', 'utf8')).toBe(before);
    },
  );
  if (process.getuid?.() !== 0 || !real)
    console.warn(
      'skipped: warmCgroupMoves on the host’s cgroups, because this is not root with cgroups mounted',
    );
});
