import {
  kvmUnavailableReason,
  parseProbeGuestOutput,
  realVmmBinary,
  realVmmMissingReason,
} from '@my-hypervisor/chv-client/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, json, myhv, Sandbox, virtiofsdMissing } from './myhv.js';

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
  });
