import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { bin, e2eSkipReason, json, myhv, Sandbox, virtiofsdMissing } from './myhv.js';

const skip =
  e2eSkipReason() ??
  (virtiofsdMissing() ? 'virtiofsd is missing (apt-get install qemu-system-common)' : undefined);
if (skip) console.warn(`skipped: myhv commands end to end, because ${skip}`);

interface VmJson {
  name: string;
  id: string;
  status: string;
  vmmAlive: boolean;
  ip?: string;
  tap?: string;
  pid?: number;
  forwards: { protocol: string; hostPort: number; guestPort: number; guestIp: string }[];
  shares: { tag: string; hostPath: string }[];
}

// One sandbox, commands in the order a user would run them; each step depends on the previous ones.
describe
  .skipIf(skip !== undefined)
  .sequential('myhv commands, bundled binary, simulator VMM, in a netns', () => {
    const box = new Sandbox('cmd');
    const run = (...args: string[]) => myhv(args, box.env);

    beforeAll(() => {
      box.create();
    });
    afterAll(() => {
      box.destroy();
    });

    it('version: human and JSON', async () => {
      const human = await run('version');
      expect(human.code).toBe(0);
      expect(human.stdout).toMatch(/^myhv \d+\.\d+\.\d+\n$/);
      const data = json<{ name: string; version: string }>(await run('version', '--json'));
      expect(data.name).toBe('myhv');
      expect(human.stdout).toBe(`myhv ${data.version}\n`);
    });

    it('doctor: every check with ✓/✗, JSON agrees with the exit code', async () => {
      const human = await run('doctor');
      expect(human.stdout.split('\n')[0]).toMatch(/^VMM: the bundled simulator/);
      expect(human.stdout).toMatch(/✓ running as root/);
      expect(human.stdout).toMatch(/virtiofsd/);
      const result = await run('doctor', '--json');
      const report = json<{
        ok: boolean;
        vmm: { kind: string };
        checks: { id: string; ok: boolean; required: boolean }[];
      }>(result);
      expect(report.vmm.kind).toBe('simulator');
      expect(result.code).toBe(report.ok ? 0 : 1);
      expect(human.code).toBe(result.code);
      expect(report.checks.find((c) => c.id === 'netns')).toMatchObject({ ok: true, required: true });
      expect(report.checks.find((c) => c.id === 'root')).toMatchObject({ ok: true });
    });

    it('net ensure: creates the bridge once, then finds it', async () => {
      const first = await run('--json', 'net', 'ensure');
      expect(first.code).toBe(0);
      expect(json(first)).toMatchObject({
        netns: box.name,
        bridge: { name: 'myhvbr0', address: '10.62.0.1/24', created: true },
      });
      const again = await run('net', 'ensure');
      expect(again.code).toBe(0);
      expect(again.stdout).toMatch(/myhvbr0 \(10\.62\.0\.1\/24, network default\) already there/);
    });

    it('vm create from flags: VMM named first, progress on stderr, running', async () => {
      const result = await run(
        'vm',
        'create',
        'web',
        '--kernel',
        box.kernel,
        '-p',
        '8080:80',
        '--share',
        `${box.share}:data`,
        '--memory',
        '256M',
      );
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.split('\n')[0]).toMatch(/^VMM: the bundled simulator/);
      expect(result.stdout).toMatch(/✓ created web at 10\.62\.0\.\d+, running/);
      expect(result.stderr).toMatch(/^create web: vmm done \(\d/m);
    });

    it('vm create from a YAML spec file with --json', async () => {
      const spec = join(box.dir, 'db.yaml');
      writeFileSync(
        spec,
        `name: db\nkernel: ${box.kernel}\ncpus: 2\nmemory: 128M\nnetwork:\n  forwards:\n    - { hostPort: 5432, guestPort: 5432 }\n`,
      );
      const result = await run('--json', 'vm', 'create', '-f', spec);
      expect(result.code, result.stderr).toBe(0);
      const data = json<{
        vmm: { kind: string };
        vm: VmJson;
        steps: { step: string; phase: string; ms: number }[];
      }>(result);
      expect(data.vmm).toEqual({ kind: 'simulator', path: null, source: 'env' });
      expect(data.vm).toMatchObject({ name: 'db', status: 'running', vmmAlive: true });
      expect(data.steps.map((s) => s.step)).toEqual(
        expect.arrayContaining(['ip', 'network', 'vmm', 'vm.boot']),
      );
      expect(result.stderr).toBe('');
    });

    it('vm create of an existing name fails with 1 (ALREADY_EXISTS)', async () => {
      const result = await run('--json', 'vm', 'create', 'web', '--kernel', box.kernel);
      expect(result.code).toBe(1);
      expect(JSON.parse(result.stderr)).toMatchObject({ error: { code: 'ALREADY_EXISTS', exitCode: 1 } });
    });

    it('vm ls: tab-separated when piped, JSON summaries', async () => {
      const human = await run('vm', 'ls');
      expect(human.code).toBe(0);
      const rows = human.stdout
        .trim()
        .split('\n')
        .map((l) => l.split('\t'));
      expect(rows.map((r) => r[0])).toEqual(['db', 'web']);
      expect(rows[1]).toEqual([
        'web',
        'running',
        expect.stringMatching(/^10\.62\.0\./),
        '1',
        '256M',
        'tcp/8080→80',
      ]);
      const data = json<{
        vms: { name: string; status: string; memory: number; forwards: unknown[]; shares: string[] }[];
      }>(await run('vm', 'ls', '--json'));
      expect(data.vms).toHaveLength(2);
      expect(data.vms[1]).toMatchObject({
        name: 'web',
        status: 'running',
        memory: 256 * 1024 * 1024,
        shares: ['data'],
      });
    });

    it('vm inspect: fields for people, VmInfo as JSON', async () => {
      const human = await run('vm', 'inspect', 'web');
      expect(human.code).toBe(0);
      expect(human.stdout).toMatch(/^name: +web$/m);
      expect(human.stdout).toMatch(/^share: +data → /m);
      const { vm } = json<{ vm: VmJson }>(await run('vm', 'inspect', 'web', '--json'));
      expect(vm).toMatchObject({ name: 'web', status: 'running', vmmAlive: true });
      expect(vm.tap).toMatch(/^myhv/);
      expect(vm.shares).toEqual([expect.objectContaining({ tag: 'data', hostPath: `${box.share}` })]);
    });

    it('vm logs: the serial log and the VMM log', async () => {
      expect((await run('vm', 'logs', 'web')).code).toBe(0);
      const vmmLog = json<{ log: string; path: string; lines: string[] }>(
        await run('--json', 'vm', 'logs', 'web', '--vmm', '-n', '5'),
      );
      expect(vmmLog.log).toBe('vmm');
      expect(vmmLog.path).toBe(join(box.stateDir, 'vms/web/vmm.log'));
      expect(vmmLog.lines.length).toBeLessThanOrEqual(5);
    });

    it('forward add / ls / rm, human and JSON, rm is idempotent', async () => {
      const added = await run('forward', 'add', 'web', '9090:90/udp');
      expect(added.code, added.stderr).toBe(0);
      expect(added.stdout).toMatch(/web: forwarding udp\/9090→10\.62\.0\.\d+:90/);
      const listed = json<{ forwards: { vm: string; protocol: string; hostPort: number }[] }>(
        await run('--json', 'forward', 'ls', 'web'),
      );
      expect(listed.forwards.map((f) => `${f.protocol}/${f.hostPort}`).sort()).toEqual([
        'tcp/8080',
        'udp/9090',
      ]);
      expect((await run('forward', 'ls')).stdout.trim().split('\n')).toHaveLength(3);
      expect(json(await run('--json', 'forward', 'rm', 'web', '9090/udp'))).toMatchObject({
        removed: true,
        hostPort: 9090,
      });
      const again = await run('forward', 'rm', 'web', '9090/udp');
      expect(again.code).toBe(0);
      expect(again.stdout).toMatch(/nothing to do/);
      const viaJson = json<{
        vm: string;
        forward: { protocol: string; hostPort: number; hostIp: string | null };
      }>(await run('--json', 'forward', 'add', 'db', '127.0.0.1:6432:5432'));
      expect(viaJson).toMatchObject({
        vm: 'db',
        forward: { protocol: 'tcp', hostPort: 6432, hostIp: '127.0.0.1' },
      });
      expect((await run('forward', 'rm', 'db', '6432')).code).toBe(0);
      // web forwards 8080: found while validating, before any work, so bad input (exit 2).
      const conflict = await run('--json', 'forward', 'add', 'db', '8080:80');
      expect(conflict.code).toBe(2);
      expect(JSON.parse(conflict.stderr)).toMatchObject({ error: { code: 'CONFLICT', exitCode: 2 } });
    });

    it('net inspect: the bridge ports and forwards, each with its VM', async () => {
      const data = json<{
        bridge: { exists: boolean; ports: { name: string; vm: string | null }[] };
        forwards: { hostPort: number; vm: string | null }[];
      }>(await run('--json', 'net', 'inspect'));
      expect(data.bridge.exists).toBe(true);
      expect(data.bridge.ports.map((p) => p.vm).sort()).toEqual(['db', 'web']);
      expect(data.forwards.map((f) => `${f.hostPort}:${f.vm}`).sort()).toEqual(['5432:db', '8080:web']);
      const human = await run('net', 'inspect');
      expect(human.stdout).toMatch(
        /^bridge myhvbr0 \(10\.62\.0\.0\/24, local backend in netns .*\): present$/m,
      );
    });

    it('vm pause / resume', async () => {
      expect(json<{ vm: VmJson }>(await run('--json', 'vm', 'pause', 'web')).vm.status).toBe('paused');
      expect((await run('vm', 'ls')).stdout).toMatch(/^web\tpaused\t/m);
      const resumed = await run('vm', 'resume', 'web');
      expect(resumed.code).toBe(0);
      expect(resumed.stdout).toMatch(/resumed web: running/);
    });

    it('vm stop / start / restart', async () => {
      const stopped = await run('vm', 'stop', 'web', '-t', '1');
      expect(stopped.code, stopped.stderr).toBe(0);
      expect(stopped.stdout).toMatch(/stopped web: stopped/);
      expect(stopped.stderr).toMatch(/^stop web: vmm-stop done/m);
      const started = await run('--json', 'vm', 'start', 'web');
      expect(started.code, started.stderr).toBe(0);
      expect(json<{ vmm: { kind: string }; vm: VmJson }>(started)).toMatchObject({
        vmm: { kind: 'simulator' },
        vm: { status: 'running' },
      });
      const restarted = await run('vm', 'restart', 'web', '--timeout', '1');
      expect(restarted.code, restarted.stderr).toBe(0);
      expect(restarted.stdout.split('\n')[0]).toMatch(/^VMM: /);
    });

    it('operations on a missing VM exit 1 (NOT_FOUND) and say what to do', async () => {
      for (const args of [
        ['vm', 'start', 'nosuch'],
        ['vm', 'inspect', 'nosuch'],
        ['forward', 'add', 'nosuch', '1:1'],
        ['vm', 'rm', 'nosuch'],
      ]) {
        const result = await run(...args);
        expect(result.code, args.join(' ')).toBe(1);
        expect(result.stderr).toMatch(/no VM named nosuch\n {2}hint: run `myhv vm ls`/);
      }
    });

    it('gc repairs a VM whose VMM was killed; human and JSON', async () => {
      const { vm } = json<{ vm: VmJson }>(await run('--json', 'vm', 'inspect', 'db'));
      process.kill(vm.pid!, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      expect((await run('vm', 'ls')).stdout).toMatch(/^db\trunning \(VMM gone\)\t/m);
      const repaired = json<{
        changes: { kind: string; target: string; action: string }[];
        errors: unknown[];
      }>(await run('--json', 'gc'));
      expect(repaired.errors).toEqual([]);
      expect(repaired.changes).toEqual(
        expect.arrayContaining([expect.objectContaining({ kind: 'vm', target: 'db' })]),
      );
      expect(json<{ vm: VmJson }>(await run('--json', 'vm', 'inspect', 'db')).vm.status).toBe('stopped');
      const clean = await run('gc');
      expect(clean.code).toBe(0);
      expect(clean.stdout).toMatch(/nothing to repair/);
    });

    it('vm rm: refuses a running VM without --force (exit 1), removes with it', async () => {
      const refused = await run('vm', 'rm', 'web');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/cannot delete web/);
      const removed = await run('--json', 'vm', 'rm', '--force', 'web', 'db');
      expect(removed.code, removed.stderr).toBe(0);
      expect(json<{ removed: { name: string }[] }>(removed).removed.map((r) => r.name)).toEqual([
        'web',
        'db',
      ]);
      expect(json<{ vms: unknown[] }>(await run('--json', 'vm', 'ls')).vms).toEqual([]);
      expect(box.processes()).toEqual([]);
      const ports = json<{ bridge: { ports: unknown[] }; forwards: unknown[] }>(
        await run('--json', 'net', 'inspect'),
      );
      expect(ports.bridge.ports).toEqual([]);
      expect(ports.forwards).toEqual([]);
    });

    it('vm create interrupted by Ctrl-C: undoes its steps, exits 130, leaves no VM, forward or process', async () => {
      // A slow simulator keeps the create inside its VMM step long enough to interrupt it there. Through myhvd it is
      // the daemon that spawns the VMM, so the knob goes to the daemon (restarted with it, and without it after).
      await box.restartDaemon({ MYHV_SIM_DELAY_MS: '5000' });
      onTestFinished(() => box.restartDaemon());
      const child = spawn(
        process.execPath,
        [bin, 'vm', 'create', 'slow', '--kernel', box.kernel, '-p', '7070:70'],
        {
          env: { PATH: process.env.PATH ?? '', ...box.env, MYHV_SIM_DELAY_MS: '5000' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stderr = '';
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      await new Promise<void>((resolve, reject) => {
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          if (/create slow: forwards done/.test(stderr)) resolve();
        });
        child.on('exit', () => reject(new Error(`create ended before its VMM step:\n${stderr}`)));
      });
      await new Promise((r) => setTimeout(r, 300));
      child.kill('SIGINT');
      expect(await exited, stderr).toBe(130);
      expect(stderr).toMatch(/create slow: forwards undone/);
      expect(stderr).toMatch(/interrupted by SIGINT; the steps done so far were undone/);
      expect(json<{ vms: unknown[] }>(await run('--json', 'vm', 'ls')).vms).toEqual([]);
      expect(json<{ forwards: unknown[] }>(await run('--json', 'net', 'inspect')).forwards).toEqual([]);
      expect(box.processes()).toEqual([]);
    });
  });
