import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  kvmUnavailableReason,
  parseProbeGuestOutput,
  realVmmBinary,
  realVmmMissingReason,
} from '@my-hypervisor/chv-client/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  consoleSession,
  e2eSkipReason,
  have,
  json,
  myhv,
  pidsMentioning,
  Sandbox,
  virtiofsdMissing,
} from './myhv.js';

// The CLI as a user runs it on a host with cloud-hypervisor installed: MYHV_CLOUD_HYPERVISOR's binary (.ci/run sets
// it to the v53.0.0 beside the checkout). With KVM the probe guest boots and tells what it received; without KVM
// the CLI must say so and change nothing.
const realBinary = realVmmBinary() ?? '';
const skip =
  e2eSkipReason() ??
  (virtiofsdMissing() ? 'virtiofsd is missing (apt-get install qemu-system-common)' : undefined) ??
  realVmmMissingReason();
const kvmMissing = kvmUnavailableReason();
if (skip) console.warn(`skipped: myhv on the real cloud-hypervisor, because ${skip}`);
else if (kvmMissing)
  console.warn(`myhv on the real cloud-hypervisor: only the refusal is tested, because ${kvmMissing}`);

/** The links of network namespace `netns`, one per line. */
const links = (netns: string) =>
  execFileSync('ip', ['-n', netns, '-o', 'link', 'show'], { encoding: 'utf8' });

interface VmJson {
  name: string;
  status: string;
  vmmAlive: boolean;
  ip: string;
  forwards: { hostPort: number }[];
}

describe.skipIf(skip !== undefined || kvmMissing === undefined)('myhv on the real VMM without KVM', () => {
  // The VMM in the sandbox's settings, so that a sandbox daemon (MYHV_E2E_DAEMON) runs the same one.
  const box = new Sandbox('nokvm', { MYHV_CLOUD_HYPERVISOR: realBinary || 'simulator' });
  beforeAll(() => {
    box.create();
  });
  afterAll(() => {
    box.destroy();
  });

  it('vm create exits 1 saying KVM is unavailable, and changes nothing', async () => {
    const env = box.env;
    // The bridge first, so the snapshot holds what a user's host would already have.
    expect((await myhv(['net', 'ensure'], env)).code).toBe(0);
    const before = box.snapshot();
    const result = await myhv(['vm', 'create', 'web', '--kernel', box.kernel, '-p', '8080:80'], env);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/the VMM cannot run guests on this host: KVM is unavailable/);
    expect(result.stderr).toMatch(/hint: .*\/dev\/kvm/);
    expect(box.snapshot()).toBe(before);
    expect(box.processes()).toEqual([]);
    expect(json<{ vms: unknown[] }>(await myhv(['--json', 'vm', 'ls'], env)).vms).toEqual([]);
  });
});

describe
  .skipIf(skip !== undefined || kvmMissing !== undefined)
  .sequential('myhv on the real VMM, booting the probe guest', () => {
    const box = new Sandbox('real', { MYHV_CLOUD_HYPERVISOR: realBinary || 'simulator' });
    const run = (...args: string[]) => myhv(args, box.env, 120_000);
    beforeAll(() => {
      box.create();
    });
    afterAll(() => {
      box.destroy();
    });

    it('doctor boots the probe guest', async () => {
      const report = json<{ checks: { id: string; ok: boolean; detail: string }[] }>(
        await run('--json', 'doctor'),
      );
      expect(report.checks.find((c) => c.id === 'guest')).toMatchObject({ ok: true });
    });

    it('create → the guest received its ip= → stop → start → rm, nothing left', async () => {
      const created = await run(
        '--json',
        'vm',
        'create',
        'web',
        '--kernel',
        box.kernel,
        '-p',
        '8080:80',
        '--share',
        `${box.share}:data`,
      );
      expect(created.code, created.stderr).toBe(0);
      const { vmm, vm } = json<{ vmm: { kind: string; path: string | null }; vm: VmJson }>(created);
      expect(vmm).toMatchObject({ kind: 'cloud-hypervisor', path: realBinary });
      expect(vm).toMatchObject({ name: 'web', status: 'running', vmmAlive: true });

      let serial = '';
      for (let i = 0; i < 500 && parseProbeGuestOutput(serial).cmdline === undefined; i++) {
        await new Promise((r) => setTimeout(r, 10));
        serial = (await run('vm', 'logs', 'web')).stdout;
      }
      expect(parseProbeGuestOutput(serial).cmdline).toContain(
        `ip=${vm.ip}::10.62.0.1:255.255.255.0:web:eth0:off`,
      );

      expect((await run('vm', 'stop', 'web')).code).toBe(0);
      expect(box.processes()).toEqual([]);
      const started = await run('--json', 'vm', 'start', 'web');
      expect(started.code, started.stderr).toBe(0);
      expect(json<{ vm: VmJson }>(started).vm).toMatchObject({ status: 'running', vmmAlive: true });

      expect((await run('vm', 'rm', 'web', '--force')).code).toBe(0);
      expect(box.processes()).toEqual([]);
      expect(json<{ vms: unknown[] }>(await run('--json', 'vm', 'ls')).vms).toEqual([]);
    });

    it('lifecycle depth: snapshot → restore, resize, disk hot-plug, stats and the VMM events, on the real VMM', async () => {
      const spec = join(box.dir, 'deep.json');
      writeFileSync(
        spec,
        JSON.stringify({
          name: 'deep',
          kernel: box.kernel,
          cpus: 1,
          cpusMax: 2,
          memory: '128M',
          memoryHotplug: '256M',
        }),
      );
      const created = await run('vm', 'create', '-f', spec);
      expect(created.code, created.stderr).toBe(0);
      const vcpus = (pid: number) =>
        readdirSync(`/proc/${pid}/task`).filter((t) =>
          /^vcpu\d+$/.test(readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim()),
        );
      const inspect = async () =>
        json<{
          vm: { pid: number; status: string; paths: { dir: string }; confinement?: { landlock?: string[] } };
        }>(await run('--json', 'vm', 'inspect', 'deep')).vm;

      // A snapshot of the running guest: the real VMM writes its memory too; restore runs a fresh VMM from it.
      const taken = await run('--json', 'vm', 'snapshot', 'deep');
      expect(taken.code, taken.stderr).toBe(0);
      const snapshot = json<{ snapshot: { id: string; path: string } }>(taken).snapshot;
      expect(readdirSync(snapshot.path)).toEqual(
        expect.arrayContaining(['config.json', 'state.json', 'memory-ranges']),
      );
      const before = await inspect();
      const restored = await run('--json', 'vm', 'restore', 'deep', '--from', snapshot.id);
      expect(restored.code, restored.stderr).toBe(0);
      const after = await inspect();
      expect(after).toMatchObject({ status: 'running' });
      expect(after.pid).not.toBe(before.pid);

      // Resize: a second vCPU thread starts; memory grows by one 128 MiB step; beyond the maximum is exit 2.
      expect(vcpus(after.pid)).toHaveLength(1);
      const grown = await run('--json', 'vm', 'resize', 'deep', '--cpus', '2', '--memory', '256M');
      expect(grown.code, grown.stderr).toBe(0);
      expect(vcpus(after.pid)).toHaveLength(2);
      const tooMany = await run('--json', 'vm', 'resize', 'deep', '--cpus', '3');
      expect(tooMany.code).toBe(2);
      expect(JSON.parse(tooMany.stderr).error).toMatchObject({ code: 'INVALID_ARGUMENT', field: '--cpus' });

      // A disk hot-added (from the VM's disk directory when Landlock confines its VMM) and removed again.
      const image = join(after.confinement?.landlock ? join(after.paths.dir, 'disks') : box.dir, 'data.img');
      writeFileSync(image, Buffer.alloc(1 << 20));
      const added = await run('--json', 'vm', 'disk', 'add', 'deep', image);
      expect(added.code, added.stderr).toBe(0);
      const disk = json<{ disk: { id: string } }>(added).disk;
      const stats = json<{
        stats: { counters: Record<string, Record<string, number>>; vmm: { rssBytes: number } };
      }>(await run('--json', 'vm', 'stats', 'deep')).stats;
      expect(stats.counters[disk.id]).toHaveProperty('read_bytes');
      expect(stats.counters._net0).toHaveProperty('rx_bytes');
      expect(stats.vmm.rssBytes).toBeGreaterThan(0);
      const removed = await run('--json', 'vm', 'disk', 'rm', 'deep', disk.id);
      expect(removed.code, removed.stderr).toBe(0);

      // The real VMM's own event monitor, in the journal: its boot, pause/resume around the snapshot, the restore.
      const events = (await run('--json', 'events', '--vm', 'deep')).stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { type: string; event?: string; source?: string });
      const vmm = events.filter((e) => e.type === 'vmm').map((e) => `${e.source} ${e.event}`);
      expect(vmm).toEqual(
        expect.arrayContaining(['vm booted', 'vm paused', 'vm snapshotted', 'vm restored']),
      );

      expect((await run('vm', 'rm', 'deep', '--force')).code).toBe(0);
      expect(box.processes()).toEqual([]);
    });

    it('console, and hot-plugs a share (its own virtiofsd) and a NIC (a TAP made for the VMM) into a running VM', async () => {
      const created = await run(
        'vm',
        'create',
        'plug',
        '--kernel',
        box.kernel,
        '--share',
        `${box.share}:data`,
      );
      expect(created.code, created.stderr).toBe(0);
      const extra = join(box.dir, 'extra');
      mkdirSync(extra, { mode: 0o700 });
      // vm.add-fs: the real VMM connects to the new virtiofsd as its vhost-user front-end.
      const added = await run('--json', 'vm', 'share', 'add', 'plug', `${extra}:extra`);
      expect(added.code, added.stderr).toBe(0);
      expect(json<{ share: { tag: string } }>(added).share).toMatchObject({ tag: 'extra' });
      expect(pidsMentioning(extra).length).toBeGreaterThan(0);
      // The console, as a user attaches to it (on a pty): the probe guest's output, then Ctrl-] detaches.
      if (have('script')) {
        const session = await consoleSession(box.env, 'plug', /myhv-probe: booted/, '\x1d');
        expect(session.output).toContain('myhv-probe: booted');
        expect(session.code, session.output).toBe(0);
      }
      // vm.add-net: the VMM (confined: a uid of its own) opens the TAP made for it.
      const nic = await run('--json', 'vm', 'nic', 'add', 'plug');
      expect(nic.code, nic.stderr).toBe(0);
      const { id, tap } = json<{ nic: { id: string; tap: string } }>(nic).nic;
      const stats = json<{ stats: { counters: Record<string, unknown> } }>(
        await run('--json', 'vm', 'stats', 'plug'),
      );
      expect(Object.keys(stats.stats.counters).length).toBeGreaterThanOrEqual(2);
      expect(links(box.name)).toContain(tap);

      expect((await run('vm', 'nic', 'rm', 'plug', id)).code).toBe(0);
      expect(links(box.name)).not.toContain(tap);
      const removed = await run('vm', 'share', 'rm', 'plug', 'extra');
      expect(removed.code, removed.stderr).toBe(0);
      expect(pidsMentioning(extra)).toEqual([]);
      expect((await run('vm', 'rm', 'plug', '--force')).code).toBe(0);
      expect(box.processes()).toEqual([]);
    });
  });
