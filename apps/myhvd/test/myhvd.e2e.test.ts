import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { createClient } from '@my-hypervisor/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, json, myhv, Sandbox } from '../../myhv/test/myhv.js';
import { myhvd, startMyhvd } from './start-myhvd.js';

const run = promisify(execFile);

const skip = e2eSkipReason();
if (skip) console.warn(`skipped: the myhvd e2e tests, because ${skip}`);

describe('myhvd', () => {
  it('--version prints the version of the myhv it runs', async () => {
    const { stdout } = await run(process.execPath, [myhvd, '--version']);
    expect(stdout).toMatch(/^myhv \d+\.\d+\.\d+\n$/);
  });
});

describe.skipIf(skip !== undefined)('myhvd on a host (simulator VMM)', () => {
  const box = new Sandbox('myhvd');
  const socket = () => `${box.runDir}/myhvd.sock`;

  beforeAll(() => {
    box.create();
  });
  afterAll(() => {
    box.destroy();
  });

  it('serves the SDK and `myhv daemon status`; SIGTERM stops it (exit 0) and leaves the VMs running', async () => {
    const daemon = await startMyhvd(box.env);
    await using sdk = createClient({ socketPath: socket() });
    const vm = await sdk.create({
      name: 'web',
      kernel: box.kernel,
      network: { forwards: [{ hostPort: 18090, guestPort: 80 }] },
    });
    expect(vm).toMatchObject({ status: 'running', vmmAlive: true });
    const status = await myhv(['--json', 'daemon', 'status'], box.env);
    expect(status.code, status.stderr).toBe(0);
    expect(json(status)).toMatchObject({ socket: socket(), pid: daemon.child.pid, vms: 1 });
    // The CLI in-process sees what the daemon made.
    const listed = await myhv(['--json', 'vm', 'ls'], box.env);
    expect(json<{ vms: { name: string; status: string }[] }>(listed).vms).toMatchObject([
      { name: 'web', status: 'running' },
    ]);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    expect(existsSync(socket())).toBe(false);
    const after = await myhv(['--json', 'vm', 'inspect', 'web'], box.env);
    expect(json<{ vm: unknown }>(after).vm).toMatchObject({ status: 'running', vmmAlive: true, pid: vm.pid });
    const down = await myhv(['--json', 'daemon', 'status'], box.env);
    expect(down.code).toBe(1);
    expect(JSON.parse(down.stderr)).toMatchObject({ error: { code: 'DAEMON_UNAVAILABLE' } });
    expect((await myhv(['vm', 'rm', '--force', 'web'], box.env)).code).toBe(0);
  });

  it('kill -9 mid-create, then a new myhvd: its reconcile leaves no VM, process, TAP or forward behind', async () => {
    const before = box.snapshot();
    // A slow boot, so the kill lands inside the create.
    const env = { ...box.env, MYHV_SIM_DELAY_MS: 'vm.boot:3000' };
    const daemon = await startMyhvd(env);
    const sdk = createClient({ socketPath: socket() });
    let sawVmm = false;
    const creating = sdk
      .create(
        { name: 'doomed', kernel: box.kernel, network: { forwards: [{ hostPort: 18091, guestPort: 80 }] } },
        {
          onProgress: (event) => {
            if (event.step === 'vmm' && event.phase === 'done') sawVmm = true;
          },
        },
      )
      .catch((error: unknown) => error);
    await expect.poll(() => sawVmm, { timeout: 20_000 }).toBe(true);
    daemon.child.kill('SIGKILL');
    await daemon.exited;
    expect(await creating).toMatchObject({ code: 'DISCONNECTED' });
    await sdk.close();
    // What the dead daemon left: a half-made VM with its VMM running.
    expect(box.processes().length).toBeGreaterThan(0);
    const again = await startMyhvd(box.env);
    expect(again.stderr()).toMatch(/reconciled: [1-9]\d* change/);
    await using fresh = createClient({ socketPath: socket() });
    expect(await fresh.list(), again.stderr()).toEqual([]);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
    // The network the daemon recorded at its start stays (as `myhv vm create` leaves it); nothing of the VM does.
    const leftovers = box.processes();
    expect(leftovers).toEqual([]);
    const after = box.snapshot();
    // The port as a word: file mtimes in the snapshot (ms since 1970) may hold the same digits.
    expect(after).not.toMatch(/doomed|\b18091\b/);
    expect(after.split('\n').filter((l) => /^link myhv[0-9a-f]{11} /.test(l))).toEqual([]);
    void before;
  });
});
