import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { expectChvError, tempDir } from '../../test/helpers.js';
import { ChvClient, parseEventStream, waitForApiReady } from '../index.js';
import { runSimulatorCli, simulatorCommand } from './index.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t) },
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

describe('runSimulatorCli', () => {
  it('prints the version of the simulated release, and help', async () => {
    const c = capture();
    expect(await runSimulatorCli(['--version'], { ...c.io, env: { MYHV_SIM_VERSION: 'v46' } })).toBe(0);
    expect(c.out()).toBe('cloud-hypervisor v46.0 (simulator, no guest runs)\n');
    const h = capture();
    expect(await runSimulatorCli(['-h'], { ...h.io, env: {} })).toBe(0);
    expect(h.out()).toContain('--api-socket');
  });

  it.each([
    [['--bogus'], {}, "unexpected argument '--bogus'"],
    [['-v'], {}, 'needs --api-socket'],
    [['--api-socket'], {}, 'a value is required'],
    [['--event-monitor', 'file=/x', '--api-socket', '/s'], {}, "invalid value 'file=/x'"],
    [
      ['--api-socket', '/s', '--no-shutdown'],
      { MYHV_SIM_VERSION: 'v50' },
      "unexpected argument '--no-shutdown'",
    ],
    [['--api-socket', '/s'], { MYHV_SIM_VERSION: 'v99' }, 'MYHV_SIM_VERSION=v99'],
    [['--api-socket', '/s'], { MYHV_SIM_DELAY_MS: 'soon' }, 'MYHV_SIM_DELAY_MS'],
    [['--api-socket', '/s'], { MYHV_SIM_POWER_BUTTON: 'maybe' }, 'MYHV_SIM_POWER_BUTTON'],
  ])('rejects %j %j with exit code 2 like clap', async (argv, env, message) => {
    const c = capture();
    expect(await runSimulatorCli(argv, { ...c.io, env })).toBe(2);
    expect(c.err()).toContain(message);
  });

  it('runs with cloud-hypervisor flags and env knobs, and ends cleanly on the signal', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    const logFile = join(dir.path, 'vmm.log');
    const controller = new AbortController();
    const c = capture();
    const exit = runSimulatorCli(
      ['--api-socket', socketPath, '--log-file', logFile, '-vv', '--seccomp', 'false'],
      {
        ...c.io,
        env: { MYHV_SIM_VERSION: '50', MYHV_SIM_FAIL: 'vm.boot', MYHV_SIM_DELAY_MS: 'vm.info:1' },
        signal: controller.signal,
      },
    );
    await using client = new ChvClient({ socketPath });
    await waitForApiReady(socketPath, { client });
    expect((await client.serverVersion()).major).toBe(50);
    await client.vmCreate({ payload: { kernel: '/k' } });
    await expectChvError(client.vmBoot(), 'INTERNAL');
    controller.abort();
    expect(await exit).toBe(0);
    expect(existsSync(socketPath)).toBe(false);
    const log = await readFile(logFile, 'utf8');
    expect(log).toMatch(/^cloud-hypervisor: [\d.]+ms: <vmm> INFO:simulator -- API server listening on /m);
    expect(log).toContain('DEBUG:simulator -- API socket accepting at epoch_ms=');
    expect(log).toContain('VMM exiting (close)');
  });

  it('exits 1 with the chain of errors when the start fails', async () => {
    const c = capture();
    await using dir = await tempDir();
    const logFile = join(dir.path, 'vmm.log');
    const code = await runSimulatorCli(
      ['--api-socket', `path=${join(dir.path, 'a.sock')}`, '--log-file', logFile],
      {
        ...c.io,
        env: { MYHV_SIM_FAIL: 'startup' },
      },
    );
    expect(code).toBe(1);
    expect(c.err()).toBe(
      'Error: Cloud Hypervisor exited with the following chain of errors:\n  0: Error starting the VMM\n  1: Simulated startup failure (MYHV_SIM_FAIL=startup)\n',
    );
    expect(await readFile(logFile, 'utf8')).toContain('ERROR:simulator -- Error: Cloud Hypervisor exited');
  });
});

describe('chv-simulator bin', () => {
  it('serves the API, writes events to an inherited fd, and exits 0 on SIGTERM with the socket removed', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    const { command, args } = simulatorCommand();
    const child = spawn(command, [...args, '--api-socket', `path=${socketPath}`, '--event-monitor', 'fd=3'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const events = parseEventStream(child.stdio[3] as Readable);
    await using client = new ChvClient({ socketPath });
    try {
      await waitForApiReady(socketPath, { client, exited: exit, timeoutMs: 20_000 });
      await client.vmCreate({ payload: { kernel: process.execPath } });
      await client.vmBoot();
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    }
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(existsSync(socketPath)).toBe(false);
    const seen: string[] = [];
    for await (const event of events) seen.push(`${event.source}:${event.event}`);
    expect(seen).toEqual([
      'vmm:starting',
      'vm:booting',
      'vm:booted',
      'vm:shutdown',
      'vm:deleted',
      'vmm:shutdown',
    ]);
  }, 30_000);
});
