import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { backends, expectChvError, realBinary, realSkipReason, tempDir } from '../test/helpers.js';
import { type ChvApiError, ChvClient, type VmConfig } from './index.js';
import { parseProbeGuestOutput, startSimulator } from './testing/index.js';

if (!realBinary)
  it.skip(`ChvClient against the real cloud-hypervisor — skipped: ${realSkipReason}`, () => {});

describe.each(backends)('ChvClient against $name', (backend) => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let vmm: { stop(): Promise<void> };
  let client: ChvClient;
  let socketPath: string;

  beforeEach(async () => {
    dir = await tempDir();
    socketPath = join(dir.path, 'api.sock');
    vmm = await backend.start(socketPath);
    client = new ChvClient({ socketPath });
  });

  afterEach(async () => {
    await client.close();
    await vmm.stop();
    await dir[Symbol.asyncDispose]();
  });

  const config = (kernel: string): VmConfig => ({
    payload: { kernel, cmdline: 'console=ttyS0 ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:off' },
    cpus: { boot_vcpus: 1, max_vcpus: 2 },
    memory: { size: 256 * 1024 * 1024 },
    serial: { mode: 'Null' },
    console: { mode: 'Off' },
  });

  it('pings and parses the server version once', async () => {
    const ping = await client.vmmPing();
    expect(ping.version).toMatch(/^v?\d+\.\d+/);
    const version = await client.serverVersion();
    expect(version.major).toBeGreaterThanOrEqual(backend.simulator ? Number(backend.simulator.slice(1)) : 1);
    expect(await client.serverVersion()).toBe(version);
  });

  it('vm.info returns the stored vm.create body and the Created state', async () => {
    const body = config('/nonexistent/vmlinux');
    await client.vmCreate(body);
    const info = await client.vmInfo();
    expect(info.state).toBe('Created');
    expect(info.config).toMatchObject(body);
  });

  it('maps "no VM" to NOT_CREATED in every error generation', async () => {
    await expectChvError(client.vmInfo(), 'NOT_CREATED');
    const boot = await expectChvError(client.vmBoot(), 'NOT_CREATED');
    expect(boot.messages.length).toBeGreaterThan(0);
    expect(boot.method).toBe('PUT');
    expect(boot.path).toBe('/api/v1/vm.boot');
  });

  it('maps a second vm.create to CONFLICT and pausing an unbooted VM to WRONG_STATE', async () => {
    await client.vmCreate(config('/nonexistent/vmlinux'));
    await expectChvError(client.vmCreate(config('/nonexistent/vmlinux')), 'CONFLICT');
    const pause = await expectChvError(client.vmPause(), 'WRONG_STATE');
    expect(pause.status).toBe(500);
  });

  it('vm.delete succeeds without a VM and forgets a created one', async () => {
    await client.vmDelete();
    await client.vmCreate(config('/nonexistent/vmlinux'));
    await client.vmDelete();
    await expectChvError(client.vmInfo(), 'NOT_CREATED');
  });

  it('rejects an invalid body before sending it (INVALID_CONFIG, strict schema)', async () => {
    const bad = { ...config('/k'), cpus: { boot_vcpus: 0, max_vcpus: 1 } };
    const error = await expectChvError(client.vmCreate(bad), 'INVALID_CONFIG');
    expect(error.status).toBeUndefined();
    const typo = { ...config('/k'), memroy: { size: 1 } } as unknown as VmConfig;
    await expectChvError(client.vmCreate(typo), 'INVALID_CONFIG');
    await expectChvError(client.vmInfo(), 'NOT_CREATED');
  });

  it('runs the lifecycle create → boot → pause → resume → reboot → shutdown → boot → delete', async () => {
    const kernel = await backend.kernel(dir.path);
    await client.vmCreate(config(kernel));
    await client.vmBoot();
    expect((await client.vmInfo()).state).toBe('Running');
    await expectChvError(client.vmBoot(), 'WRONG_STATE');
    await expectChvError(client.vmResume(), 'WRONG_STATE');
    await client.vmPause();
    expect((await client.vmInfo()).state).toBe('Paused');
    await expectChvError(client.vmPause(), 'WRONG_STATE');
    await client.vmResume();
    await client.vmReboot();
    expect((await client.vmInfo()).state).toBe('Running');
    await client.vmNmi();
    expect(typeof (await client.vmCounters())).toBe('object');
    await client.vmShutdown();
    expect((await client.vmInfo()).state).toBe('Created');
    await expectChvError(client.vmShutdown(), 'WRONG_STATE');
    await client.vmBoot();
    await client.vmDelete();
    await expectChvError(client.vmInfo(), 'NOT_CREATED');
  });

  it('boots the probe guest, which prints the command line it received on the serial port', async () => {
    const kernel = await backend.kernel(dir.path);
    const serial = join(dir.path, 'serial.log');
    const body = config(kernel);
    await client.vmCreate({ ...body, serial: { mode: 'File', file: serial } });
    await client.vmBoot();
    let output = parseProbeGuestOutput('');
    for (let waited = 0; waited < 10_000 && !output.halted; waited += 5) {
      await new Promise((r) => setTimeout(r, 5));
      output = parseProbeGuestOutput(await readFile(serial, 'utf8').catch(() => ''));
    }
    expect(output).toEqual({ booted: true, cmdline: body.payload.cmdline, halted: true });
  });

  it('hot-plugs a disk with a PCI address when running, cold-adds (undefined) when not', async () => {
    const kernel = await backend.kernel(dir.path);
    // The real VMM opens the images: give it three 1 MiB raw disks.
    for (const name of ['a.img', 'b.img', 'c.img'])
      await writeFile(join(dir.path, name), Buffer.alloc(1 << 20));
    await client.vmCreate(config(kernel));
    expect(await client.vmAddDisk({ path: join(dir.path, 'a.img'), id: 'cold' })).toBeUndefined();
    await client.vmBoot();
    const added = await client.vmAddDisk({ path: join(dir.path, 'b.img'), id: 'hot' });
    expect(added).toMatchObject({
      id: 'hot',
      bdf: expect.stringMatching(/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.\d$/),
    });
    await expectChvError(client.vmAddDisk({ path: join(dir.path, 'c.img'), id: 'hot' }), 'CONFLICT');
    await client.vmRemoveDevice({ id: 'hot' });
    await expectChvError(client.vmRemoveDevice({ id: 'hot' }), 'NOT_FOUND');
    const info = await client.vmInfo();
    expect(info.config.disks?.map((d) => d.id)).toEqual(['cold']);
  });

  it('resizes a created VM (the VMM updates the stored config)', async () => {
    await client.vmCreate(config('/nonexistent/vmlinux'));
    await client.vmResize({ desired_vcpus: 2, desired_ram: 512 * 1024 * 1024 });
    const info = await client.vmInfo();
    expect(info.config.cpus?.boot_vcpus).toBe(2);
    expect(info.config.memory?.size).toBe(512 * 1024 * 1024);
  });

  it('serialises concurrent calls in order over one keep-alive connection', async () => {
    const order: string[] = [];
    const calls = [
      client.vmmPing().then(() => order.push('ping')),
      client.vmCreate(config('/k')).then(() => order.push('create')),
      client.vmInfo().then((info) => order.push(`info:${info.state}`)),
      client.vmDelete().then(() => order.push('delete')),
      client.vmInfo().catch((error: ChvApiError) => order.push(`info:${error.code}`)),
    ];
    await Promise.all(calls);
    expect(order).toEqual(['ping', 'create', 'info:Created', 'delete', 'info:NOT_CREATED']);
  });

  it('fails with UNAVAILABLE once the VMM is gone, and after close()', async () => {
    await client.vmmPing();
    await vmm.stop();
    await expectChvError(client.vmmPing(), 'UNAVAILABLE');
    await client.close();
    await client.close();
    await expectChvError(client.vmmPing(), 'UNAVAILABLE');
    vmm = await backend.start(socketPath);
  });
});

describe('ChvClient timeouts, aborts and transport (simulator)', () => {
  it('times out a slow call (TIMEOUT) and lets the next call through', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    await using _sim = await startSimulator({ socketPath, delayMs: { 'vm.info': 300 } });
    await using client = new ChvClient({ socketPath, timeoutMs: 100 });
    await expectChvError(client.vmInfo(), 'TIMEOUT');
    expect((await client.vmmPing({ timeoutMs: 2_000 })).version).toBe('53.0.0');
  });

  it('aborts a queued call (ABORTED) without disturbing the one in flight', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    await using _sim = await startSimulator({ socketPath, delayMs: { 'vmm.ping': 150 } });
    await using client = new ChvClient({ socketPath });
    const controller = new AbortController();
    const first = client.vmmPing();
    const second = client.vmCreate({ payload: { kernel: '/k' } }, { signal: controller.signal });
    controller.abort(new Error('user gave up'));
    const aborted = await expectChvError(second, 'ABORTED');
    expect((aborted.cause as Error).message).toBe('user gave up');
    await first;
    await expectChvError(client.vmInfo(), 'NOT_CREATED');
  });

  it('rejects at once when the signal is already aborted', async () => {
    const client = new ChvClient({ socketPath: '/nonexistent/api.sock' });
    await expectChvError(client.vmmPing({ signal: AbortSignal.abort() }), 'ABORTED');
    await client.close();
  });

  it('reports a missing socket as UNAVAILABLE', async () => {
    await using client = new ChvClient({ socketPath: '/nonexistent/api.sock' });
    const error = await expectChvError(client.vmmPing(), 'UNAVAILABLE');
    expect(error.message).toContain('/nonexistent/api.sock');
  });

  it('keeps one connection with keep-alive and opens one per call without', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    await using sim = await startSimulator({ socketPath });
    await using keepAlive = new ChvClient({ socketPath });
    for (let i = 0; i < 5; i++) await keepAlive.vmmPing();
    expect(sim.acceptedConnections).toBe(1);
    await using perCall = new ChvClient({ socketPath, keepAlive: false });
    for (let i = 0; i < 5; i++) await perCall.vmmPing();
    expect(sim.acceptedConnections).toBe(6);
  });

  it('refuses bodies above 4 MiB as INVALID_CONFIG (the simulator limit)', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    await using _sim = await startSimulator({ socketPath });
    await using client = new ChvClient({ socketPath });
    const huge = { payload: { kernel: '/k', cmdline: 'x'.repeat(4 * 1024 * 1024) } };
    const error = await expectChvError(client.vmCreate(huge), 'INVALID_CONFIG');
    expect(error.status).toBe(400);
    await expectChvError(client.vmInfo(), 'NOT_CREATED');
  });

  it('throws TypeError for a missing socketPath (programmer error)', () => {
    expect(() => new ChvClient({} as { socketPath: string })).toThrow(TypeError);
    expect(() => new ChvClient({ socketPath: '/x', timeoutMs: -1 })).toThrow(TypeError);
  });
});
