import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, e2eSkipReason, json, myhv, Sandbox } from './myhv.js';

const skip = e2eSkipReason();
if (skip) console.warn(`skipped: the myhv-through-myhvd e2e tests, because ${skip}`);

interface Event {
  type: string;
  vm: string;
  op?: string;
  pid: number;
}

// With myhvd answering on its socket, VM commands run in the daemon (its pid writes their journal events) and print
// exactly what they print in-process (`--no-daemon`), with the same exit codes.
describe.skipIf(skip !== undefined)('myhv through myhvd (simulator VMM)', () => {
  const box = new Sandbox('routing');
  let daemon: ChildProcess;
  const run = (...args: string[]) => myhv(args, box.env);
  const local = (...args: string[]) => myhv(['--no-daemon', ...args], box.env);

  beforeAll(async () => {
    box.create();
    // The watcher off: its periodic list rewrites the listing cache once records settle, which the before/after
    // snapshots of the refusal test would see. The watcher is proven in packages/daemon and apps/myhvd.
    daemon = spawn(process.execPath, [bin, 'daemon', 'run', '--watch-interval', '0'], {
      cwd: '/',
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...box.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    daemon.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const deadline = Date.now() + 30_000;
    while (!stderr.includes('listening on')) {
      if (Date.now() > deadline || daemon.exitCode !== null)
        throw new Error(`myhvd did not start:\n${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
  afterAll(async () => {
    if (daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((resolve) => daemon.once('close', resolve));
    }
    box.destroy();
  });

  const createdBy = async (vm: string) => {
    const events = (await run('--json', 'events', '--vm', vm)).stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Event);
    return new Set(events.filter((e) => e.type === 'step' && e.op === 'create').map((e) => e.pid));
  };

  it('runs create in the daemon, and --no-daemon in the CLI process; both print the same shape', async () => {
    const viaDaemon = await run('--json', 'vm', 'create', 'web', '--kernel', box.kernel, '-p', '18100:80');
    expect(viaDaemon.code, viaDaemon.stderr).toBe(0);
    const inProcess = await local('--json', 'vm', 'create', 'api', '--kernel', box.kernel, '-p', '18101:80');
    expect(inProcess.code, inProcess.stderr).toBe(0);
    expect(Object.keys(json(viaDaemon)).sort()).toEqual(Object.keys(json(inProcess)).sort());
    expect(await createdBy('web')).toEqual(new Set([daemon.pid]));
    expect([...(await createdBy('api'))]).not.toContain(daemon.pid);
  });

  it('prints the same `vm ls`, `vm inspect` and `forward ls` either way', async () => {
    for (const args of [
      ['--json', 'vm', 'ls'],
      ['vm', 'ls'],
      ['--json', 'vm', 'inspect', 'web'],
      ['--json', 'forward', 'ls'],
    ]) {
      const [a, b] = [await run(...args), await local(...args)];
      expect(a.code, a.stderr).toBe(0);
      expect(a.stdout, args.join(' ')).toBe(b.stdout);
    }
  });

  it('lifecycle, forwards and snapshots through the daemon', async () => {
    for (const args of [
      ['vm', 'stop', 'web'],
      ['vm', 'start', 'web'],
      ['vm', 'pause', 'web'],
      ['vm', 'resume', 'web'],
      ['forward', 'add', 'web', '18102:22'],
      ['forward', 'rm', 'web', '18102'],
      ['vm', 'snapshot', 'web'],
      ['vm', 'restore', 'web'],
    ]) {
      const result = await run(...args);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
    }
    const inspected = json<{ vm: { status: string } }>(await run('--json', 'vm', 'inspect', 'web'));
    expect(inspected.vm.status).toBe('running');
  });

  it('fails with the same message and exit code either way', async () => {
    for (const [args, code] of [
      [['vm', 'start', 'nope'], 1],
      [['vm', 'start', 'web'], 1],
      [['vm', 'resize', 'web', '--cpus', '9'], 2],
      [['forward', 'add', 'api', '18100:80'], 2],
    ] as const) {
      const [a, b] = [await run('--json', ...args), await local('--json', ...args)];
      expect(a.code, `${args.join(' ')}: ${a.stderr}`).toBe(code);
      expect(b.code).toBe(code);
      expect(JSON.parse(a.stderr), args.join(' ')).toEqual(JSON.parse(b.stderr));
    }
  });

  it('refuses (exit 2, naming it) a host setting given explicitly that the daemon runs otherwise', async () => {
    const before = box.snapshot();
    for (const [args, env, field] of [
      [['--subnet', '10.99.0.0/24', 'vm', 'ls'], {}, '--subnet'],
      [['vm', 'stop', 'web'], { MYHV_BRIDGE: 'otherbr0' }, 'MYHV_BRIDGE'],
      [['--state-dir', `${box.dir}/other-state`, 'vm', 'ls'], {}, '--state-dir'],
    ] as const) {
      const result = await myhv(['--json', ...args], { ...box.env, ...env });
      expect(result.code, result.stderr).toBe(2);
      const { error } = JSON.parse(result.stderr) as { error: Record<string, unknown> };
      expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', field, exitCode: 2 });
      expect(error.message).toContain(`differs from what myhvd (pid ${daemon.pid}`);
    }
    expect(box.snapshot()).toBe(before);
    // The same value as the daemon's passes; --no-daemon runs it in this process with what it was given.
    expect((await run('--subnet', '10.62.0.0/24', 'vm', 'ls')).code).toBe(0);
    expect((await local('--subnet', '10.99.0.0/24', 'vm', 'ls')).code).toBe(0);
    const status = json<{ settings: Record<string, string> }>(await run('--json', 'daemon', 'status'));
    expect(status.settings).toMatchObject({
      stateDir: box.stateDir,
      runDir: box.runDir,
      netns: box.name,
      subnet: '10.62.0.0/24',
      vmmBinary: 'simulator',
    });
  });

  it('rm through the daemon removes what the daemon and the CLI made', async () => {
    const removed = await run('vm', 'rm', '--force', 'web', 'api');
    expect(removed.code, removed.stderr).toBe(0);
    expect(json<{ vms: unknown[] }>(await run('--json', 'vm', 'ls')).vms).toEqual([]);
  });
});
