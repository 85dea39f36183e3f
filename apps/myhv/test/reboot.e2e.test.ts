import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, json, myhv, Sandbox } from './myhv.js';

const skip = e2eSkipReason();
if (skip) console.warn(`skipped: the reboot e2e tests, because ${skip}`);

const sh = (args: string[]) => execFileSync(args[0]!, args.slice(1), { encoding: 'utf8' });

/** What a host reboot takes from the sandbox: every VMM, the TAPs and bridges, the nft tables, the run dir. */
function reboot(box: Sandbox): void {
  for (const pid of box.processes()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  const links = JSON.parse(sh(['ip', '-n', box.name, '-j', '-d', 'link', 'show'])) as {
    ifname: string;
    linkinfo?: { info_kind?: string };
  }[];
  for (const l of links.filter((l) => l.linkinfo?.info_kind === 'tun'))
    sh(['ip', '-n', box.name, 'link', 'del', l.ifname]);
  for (const l of links.filter((l) => l.linkinfo?.info_kind === 'bridge'))
    sh(['ip', '-n', box.name, 'link', 'del', l.ifname]);
  for (const line of sh(['ip', 'netns', 'exec', box.name, 'nft', 'list', 'tables'])
    .split('\n')
    .filter(Boolean)) {
    const [, family, name] = line.split(' ');
    sh(['ip', 'netns', 'exec', box.name, 'nft', 'delete', 'table', family!, name!]);
  }
  rmSync(box.runDir, { recursive: true, force: true });
}

interface VmJson {
  name: string;
  status: string;
  vmmAlive: boolean;
  tap: string;
}

describe.skipIf(skip !== undefined)('after a host reboot (simulated in a namespace)', () => {
  const box = new Sandbox('boot');
  const run = (...args: string[]) => myhv(args, box.env);

  beforeAll(() => {
    box.create();
  });
  afterAll(() => {
    box.destroy();
  });

  it('doctor reports the drift; autostart repairs it and starts only the on-boot and always VMs', async () => {
    for (const args of [
      ['vm', 'create', 'web', '--kernel', box.kernel, '-p', '8080:80', '--restart', 'on-boot'],
      ['vm', 'create', 'idle', '--kernel', box.kernel, '-p', '8081:80'],
      ['vm', 'create', 'keep', '--kernel', box.kernel, '--restart', 'always'],
    ]) {
      const result = await run(...args);
      expect(result.code, result.stderr).toBe(0);
    }
    const bad = await run('vm', 'create', 'x', '--kernel', box.kernel, '--restart', 'sometimes');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/restart: /);

    reboot(box);
    const doctor = json<{ checks: { id: string; ok: boolean; detail: string }[] }>(
      await run('--json', 'doctor'),
    );
    const drift = doctor.checks.find((c) => c.id === 'drift');
    expect(drift?.ok).toBe(false);
    expect(drift?.detail).toMatch(/bridge myhvbr0/);
    // The bridge, three TAPs and two forwards; the detail names the first five.
    expect(drift?.detail).toMatch(/^6 missing \(after a reboot\?\)/);

    const started = await run('--json', 'autostart');
    expect(started.code, started.stderr).toBe(0);
    const report = json<{
      repairs: { changes: { kind: string; target: string; action: string }[] };
      vms: { vm: string; result: string }[];
    }>(started);
    expect(report.vms).toEqual([
      expect.objectContaining({ vm: 'keep', result: 'started', status: 'running' }),
      expect.objectContaining({ vm: 'web', result: 'started', status: 'running' }),
    ]);
    expect(
      report.repairs.changes
        .filter((c) => c.action.startsWith('restored'))
        .map((c) => c.kind)
        .sort(),
    ).toEqual(['bridge', 'forward', 'forward', 'tap', 'tap', 'tap']);

    const vms = json<{ vms: VmJson[] }>(await run('--json', 'vm', 'ls')).vms;
    expect(vms.map((v) => `${v.name} ${v.status}`)).toEqual(['idle stopped', 'keep running', 'web running']);
    const inspected = json<{
      bridge: { exists: boolean; ports: unknown[] };
      forwards: { hostPort: number }[];
    }>(await run('--json', 'net', 'inspect'));
    expect(inspected.bridge.exists).toBe(true);
    expect(inspected.bridge.ports).toHaveLength(3);
    expect(inspected.forwards.map((f) => f.hostPort).sort()).toEqual([8080, 8081]);
    const healthy = json<{ checks: { id: string; ok: boolean }[] }>(await run('--json', 'doctor'));
    expect(healthy.checks.find((c) => c.id === 'drift')?.ok).toBe(true);

    // A second run finds nothing to repair and the VMs already running.
    const again = json<{ repairs: { changes: unknown[] }; vms: { result: string }[] }>(
      await run('--json', 'autostart'),
    );
    expect(again.repairs.changes).toEqual([]);
    expect(again.vms.map((v) => v.result)).toEqual(['running', 'running']);
  });

  it('vm start alone, with no gc first, brings a stopped VM back with its network', async () => {
    reboot(box);
    const started = await run('--json', 'vm', 'start', 'idle');
    expect(started.code, started.stderr).toBe(0);
    expect(json<{ vm: VmJson }>(started).vm).toMatchObject({ status: 'running', vmmAlive: true });
    const inspected = json<{
      bridge: { ports: { vm: string }[] };
      forwards: { hostPort: number; vm: string }[];
    }>(await run('--json', 'net', 'inspect'));
    expect(inspected.bridge.ports.map((p) => p.vm)).toEqual(['idle']);
    expect(inspected.forwards.map((f) => `${f.hostPort} ${f.vm}`)).toEqual(['8081 idle']);
  });
});
