import { readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, inProcessOnly, json, myhv, Sandbox } from './myhv.js';

// `--confinement` through the CLI, on the simulator (spawned confined like cloud-hypervisor): inspect and stats
// show each process's uid, capabilities and cgroup, limits come from flags, bad limits are exit 2.

const skip = e2eSkipReason();
if (skip) console.warn(`skipped: the confinement e2e tests, because ${skip}`);

interface ProcessJson {
  role: string;
  pid: number;
  uid: number;
  capEff: string;
  noNewPrivs: boolean;
  cgroups: string[];
}
interface InspectJson {
  vm: {
    pid: number;
    confinement?: {
      uid: number;
      cgroup?: string;
      limits: { cpus: number; memoryBytes: number; pids: number };
      processes: ProcessJson[];
    };
  };
}

const MiB = 1024 * 1024;

describe.skipIf(skip !== undefined)('myhv --confinement (simulator VMM)', () => {
  const box = new Sandbox('confine');
  const run = (...args: string[]) => myhv(args, box.env);

  beforeAll(() => {
    box.create();
  });
  afterAll(() => {
    box.destroy();
  });

  it('confines the VMM by default as root: inspect and stats show its uid, no capabilities, cgroup and limits', async () => {
    const doctor = await run('--json', 'doctor');
    const check = json<{ checks: { id: string; ok: boolean; skipped: boolean }[] }>(doctor).checks.find(
      (c) => c.id === 'confinement',
    );
    if (!check?.ok) {
      console.warn('skipped: this host cannot confine VMMs (see `myhv doctor`)');
      return;
    }
    const created = await run(
      'vm',
      'create',
      'web',
      '--kernel',
      box.kernel,
      '--memory',
      '128M',
      '--share',
      `${box.share}:data`,
      '--cpu-limit',
      '0.5',
      '--memory-limit',
      '512M',
      '--pids-limit',
      '200',
    );
    expect(created.code, created.stderr).toBe(0);
    const inspected = json<InspectJson>(await run('--json', 'vm', 'inspect', 'web')).vm;
    const confinement = inspected.confinement!;
    expect(confinement.uid).toBeGreaterThan(0);
    expect(confinement.limits).toEqual({ cpus: 0.5, memoryBytes: 512 * MiB, pids: 200 });
    const vmm = confinement.processes.find((p) => p.role === 'vmm')!;
    expect(vmm).toMatchObject({ pid: inspected.pid, uid: confinement.uid, capEff: '0000000000000000' });
    expect(vmm.noNewPrivs).toBe(true);
    // /proc agrees with what inspect says.
    expect(readFileSync(`/proc/${inspected.pid}/status`, 'utf8')).toMatch(
      new RegExp(`^Uid:\\s+${confinement.uid}\\s`, 'm'),
    );
    if (confinement.cgroup) {
      expect(vmm.cgroups).toContain(confinement.cgroup);
      const virtiofsd = confinement.processes.find((p) => p.role === 'virtiofsd');
      if (virtiofsd) expect(virtiofsd.cgroups).toContain(confinement.cgroup);
    }
    const human = await run('vm', 'inspect', 'web');
    expect(human.stdout).toMatch(new RegExp(`confinement:\\s+uid ${confinement.uid} gid ${confinement.uid}`));
    expect(human.stdout).toMatch(/limits:\s+0\.5 cpus, 512M memory, 200 pids/);
    expect(human.stdout).toMatch(/vmm process:\s+pid \d+ uid \d+, no capabilities, no_new_privs/);

    const stats = await run('--json', 'vm', 'stats', 'web');
    expect(stats.code, stats.stderr).toBe(0);
    if (confinement.cgroup) {
      expect(
        json<{ stats: { cgroup: { path: string; pidsLimit: number } } }>(stats).stats.cgroup,
      ).toMatchObject({
        path: confinement.cgroup,
        pidsLimit: 200,
      });
      expect((await run('vm', 'stats', 'web')).stdout).toMatch(
        /cgroup \/myhv-[0-9a-f]{6}\/[0-9a-f]{12}: memory /,
      );
    }
    expect((await run('vm', 'rm', '--force', 'web')).code).toBe(0);
  });

  it.skipIf(inProcessOnly('--confinement off'))(
    '--confinement off runs the VMM as root, and inspect says so',
    async () => {
      const created = await run(
        '--confinement',
        'off',
        'vm',
        'create',
        'plain',
        '--kernel',
        box.kernel,
        '--memory',
        '64M',
      );
      expect(created.code, created.stderr).toBe(0);
      const inspected = json<InspectJson>(await run('--json', 'vm', 'inspect', 'plain')).vm;
      expect(inspected.confinement).toBeUndefined();
      expect(readFileSync(`/proc/${inspected.pid}/status`, 'utf8')).toMatch(/^Uid:\s+0\s/m);
      expect((await run('vm', 'inspect', 'plain')).stdout).toMatch(
        /confinement:\s+none \(the VMM runs as root\)/,
      );
      expect((await run('vm', 'rm', '--force', 'plain')).code).toBe(0);
    },
  );

  it.skipIf(
    inProcessOnly('--confinement-userfaultfd on') ||
      !statSync('/dev/userfaultfd', { throwIfNoEntry: false })?.isCharacterDevice(),
  )('--confinement-userfaultfd on gives the VMM a /dev/userfaultfd of its own; inspect says so', async () => {
    const created = await run(
      '--confinement-userfaultfd',
      'on',
      'vm',
      'create',
      'uffd',
      '--kernel',
      box.kernel,
      '--memory',
      '64M',
    );
    expect(created.code, created.stderr).toBe(0);
    const inspected = json<{ vm: { pid: number; confinement?: { userfaultfd?: boolean } } }>(
      await run('--json', 'vm', 'inspect', 'uffd'),
    ).vm;
    expect(inspected.confinement).toMatchObject({ userfaultfd: true });
    expect(statSync(`/proc/${inspected.pid}/root/dev/userfaultfd`).mode & 0o777).toBe(0o666);
    expect((await run('vm', 'inspect', 'uffd')).stdout).toMatch(/userfaultfd:\s+its own \/dev\/userfaultfd/);
    expect((await run('vm', 'rm', '--force', 'uffd')).code).toBe(0);
  });

  it.each([
    [['--confinement-userfaultfd', 'yes'], '--confinement-userfaultfd'],
    [['--cpu-limit', 'lots'], '--cpu-limit'],
    [['--cpu-limit', '0'], 'limits.cpus'],
    [['--memory-limit', '64M'], 'limits.memory'],
    [['--pids-limit', '3'], 'limits.pids'],
    [['--confinement', 'maybe'], '--confinement'],
  ])('%j is exit 2 naming %s, and nothing is made', async (args, field) => {
    const isGlobal = args[0]!.startsWith('--confinement');
    const global = isGlobal ? args : [];
    const local = isGlobal ? [] : args;
    const out = await run(
      '--json',
      ...global,
      'vm',
      'create',
      'bad',
      '--kernel',
      box.kernel,
      '--memory',
      '64M',
      ...local,
    );
    expect(out.code, out.stderr).toBe(2);
    expect(JSON.parse(out.stderr).error.field).toBe(field);
    expect(json<{ vms: unknown[] }>(await run('--json', 'vm', 'ls')).vms).toEqual([]);
  });
});
