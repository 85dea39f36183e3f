import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kvmUnavailableReason, realVmmBinary, realVmmMissingReason } from '@my-hypervisor/chv-client/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bin,
  e2eSkipReason,
  have,
  json,
  myhv,
  netnsExists,
  pidsMentioning,
  Sandbox,
  virtiofsdMissing,
} from './myhv.js';

const skip =
  e2eSkipReason() ??
  (virtiofsdMissing() ? 'virtiofsd is missing (apt-get install qemu-system-common)' : undefined);
if (skip) console.warn(`skipped: myhv demo end to end, because ${skip}`);

/** The real cloud-hypervisor: MYHV_CLOUD_HYPERVISOR's (.ci/run sets it to the v53.0.0 beside the checkout). */
const realBinary = realVmmBinary() ?? '';
const kvmMissing = kvmUnavailableReason();
const realDemoSkip = realVmmMissingReason();
if (!skip && realDemoSkip)
  console.warn(`skipped: myhv demo on the real cloud-hypervisor, because ${realDemoSkip}`);

interface DemoJson {
  vmm: { kind: string };
  netns: string;
  dir: string;
  kernel: { path: string; probeGuest: boolean };
  guest: { vm: string; cmdline: string | null } | null;
  vms: { name: string; status: string; forwards: { hostPort: number }[]; shares: string[] }[];
  steps: { step: string; ms: number }[];
  totalMs: number;
  cleanedUp: boolean;
  leftovers: string[];
}

/** What a demo run by `pid` could leave: its namespace, its directory, processes using it. */
function leftoversOf(pid: number): string[] {
  const left: string[] = [];
  if (netnsExists(`myhv-demo-${pid}`)) left.push('netns');
  if (existsSync(`/run/myhv-demo-${pid}`)) left.push('dir');
  if (pidsMentioning(`/run/myhv-demo-${pid}/`).length > 0) left.push('processes');
  return left;
}

/** Starts `myhv demo` and resolves once its output shows `marker` (a point in the middle of the run). */
function startDemo(
  env: Record<string, string>,
  marker: RegExp,
): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, [bin, 'demo'], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      if (marker.test(text)) resolve({ child, output: () => text });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`demo exited (${code}) before ${marker}:\n${text}`)));
  });
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null)));
  });
}

describe.skipIf(skip !== undefined)('myhv demo, bundled binary', () => {
  // gc needs a namespace and a state directory of its own, so it never touches the host's network.
  const box = new Sandbox('demo');
  const env = { ...box.env };
  beforeAll(() => {
    box.create();
  });
  afterAll(() => box.destroy());

  it('runs twice in a row, names the simulator first, leaves nothing behind', async () => {
    const first = await myhv(['demo'], { MYHV_CLOUD_HYPERVISOR: 'simulator' });
    expect(first.code, first.stderr).toBe(0);
    const lines = first.stdout.split('\n');
    expect(lines[0]).toMatch(/^myhv demo: VMM: the bundled simulator/);
    expect(first.stdout).toMatch(/^kernel: \/run\/myhv-demo-\d+\/vmlinux is the probe guest/m);
    // The first VM's serial log shows the command line the (played) probe guest received, with its ip=.
    expect(first.stdout).toMatch(
      /^\$ myhv vm logs demo-1\n.*no guest runs.*\nmyhv-probe: booted\nmyhv-probe: cmdline=.*ip=10\.62\.0\.\d+::10\.62\.0\.1:255\.255\.255\.0:demo-1:eth0:off\n/m,
    );
    expect(first.stdout).toMatch(
      /^\$ myhv vm ls\nNAME +STATUS +IP .*\ndemo-1 +running +10\.62\.0\.\d+ .*tcp\/8080→80\ndemo-2 +running/m,
    );
    expect(first.stdout).toMatch(/^\$ myhv vm inspect demo-1\n/m);
    expect(first.stdout).toMatch(/^share: +shared → \/run\/myhv-demo-\d+\/shared$/m);
    expect(first.stdout).toMatch(/^total +\d/m);
    expect(first.stdout).toMatch(/✓ nothing left behind/);

    const second = await myhv(['demo', '--json'], { MYHV_CLOUD_HYPERVISOR: 'simulator' });
    expect(second.code, second.stderr).toBe(0);
    const data = json<DemoJson>(second);
    expect(data.vmm.kind).toBe('simulator');
    expect(data.kernel.probeGuest).toBe(true);
    expect(data.guest).toEqual({ vm: 'demo-1', cmdline: expect.stringMatching(/ ip=10\.62\.0\.\d+::/) });
    expect(data.vms.map((v) => [v.name, v.status, v.forwards[0]?.hostPort, v.shares])).toEqual([
      ['demo-1', 'running', 8080, ['shared']],
      ['demo-2', 'running', 8081, ['shared']],
    ]);
    expect(data.steps.map((s) => s.step.split(' ')[0])).toEqual([
      'namespace',
      'directories',
      'bridge',
      'create',
      'create',
      'stop',
      'stop',
      'rm',
      'rm',
      'cleanup',
    ]);
    expect(data).toMatchObject({ cleanedUp: true, leftovers: [] });
    const pid = Number(/myhv-demo-(\d+)/.exec(data.netns)![1]);
    expect(leftoversOf(pid)).toEqual([]);
  });

  it('Ctrl-C mid-way: cleans up, exits 130; then gc finds nothing of it', async () => {
    const { child, output } = await startDemo(
      { MYHV_CLOUD_HYPERVISOR: 'simulator' },
      /create demo-1: vmm done/,
    );
    const pid = child.pid!;
    expect(leftoversOf(pid)).toContain('netns');
    child.kill('SIGINT');
    expect(await exitOf(child)).toBe(130);
    expect(output()).toMatch(/SIGINT: stopping the demo/);
    expect(output()).toMatch(/demo interrupted by SIGINT; everything it made was removed/);
    expect(leftoversOf(pid)).toEqual([]);
    const gc = await myhv(['--json', 'gc'], env);
    expect(gc.code, gc.stderr).toBe(0);
    const report = json<{ changes: { target: string }[] }>(gc);
    expect(report.changes.filter((c) => c.target.includes(`myhv-demo-${pid}`))).toEqual([]);
    expect(leftoversOf(pid)).toEqual([]);
  });

  it('killed outright (SIGKILL) mid-way: gc removes the namespace, processes and directory', async () => {
    const { child } = await startDemo({ MYHV_CLOUD_HYPERVISOR: 'simulator' }, /create demo-2: vmm done/);
    const pid = child.pid!;
    child.kill('SIGKILL');
    await exitOf(child);
    expect(leftoversOf(pid)).toEqual(['netns', 'dir', 'processes']);
    const gc = await myhv(['gc'], env);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).toMatch(new RegExp(`netns\\tmyhv-demo-${pid}\\tdeleted`));
    expect(gc.stdout).toMatch(new RegExp(`demo-dir\\t/run/myhv-demo-${pid}\\tremoved`));
    expect(leftoversOf(pid)).toEqual([]);
  });

  it('refuses a cloud-hypervisor on PATH that is not one (exit 2) before making anything', async () => {
    const dir = join(box.dir, 'fake-bin');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'cloud-hypervisor'), '#!/bin/sh\necho "qemu-system-x86_64 8.2.0"\n');
    chmodSync(join(dir, 'cloud-hypervisor'), 0o755);
    const result = await myhv(['demo'], { PATH: `${dir}:${process.env.PATH}` });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stdout).toMatch(
      /^myhv demo: VMM: cloud-hypervisor .*fake-bin\/cloud-hypervisor \(from PATH\)/,
    );
    expect(result.stderr).toMatch(
      /PATH: .*fake-bin\/cloud-hypervisor is not cloud-hypervisor: `--version` printed "qemu-system-x86_64 8\.2\.0"/,
    );
    expect(result.stderr).toMatch(/hint: .*install Cloud Hypervisor/);
    expect(result.stdout).not.toMatch(/namespace myhv-demo/);
  });

  it.skipIf(realDemoSkip !== undefined)(
    'with the real cloud-hypervisor it boots the probe guest, or says plainly that KVM is missing',
    async () => {
      const result = await myhv(['demo'], { MYHV_CLOUD_HYPERVISOR: realBinary }, 120_000);
      expect(result.stdout).toMatch(/^myhv demo: VMM: cloud-hypervisor /);
      expect(result.stdout).toMatch(/^kernel: .* is the probe guest/m);
      const pid = Number(/namespace myhv-demo-(\d+)/.exec(result.stdout)?.[1]);
      expect(pid).toBeGreaterThan(0);
      if (kvmMissing) {
        expect(result.code, result.stderr).toBe(1);
        expect(result.stderr).toMatch(/demo-1: the VMM cannot run guests on this host: KVM is unavailable/);
        expect(result.stderr).toMatch(/hint: .*\/dev\/kvm/);
      } else {
        expect(result.code, result.stderr).toBe(0);
      }
      expect(result.stdout).toMatch(/nothing left behind/);
      expect(leftoversOf(pid)).toEqual([]);
    },
  );

  it.skipIf(!have('runuser'))('refuses to run without root (exit 1) and says why', () => {
    const result = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, bin, 'demo'], {
      encoding: 'utf8',
      cwd: '/',
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/myhv demo needs root/);
  });
});
