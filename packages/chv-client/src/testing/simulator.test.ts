import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { followFile } from '@my-hypervisor/host-utils';
import { describe, expect, it } from 'vitest';
import { bodyCorpus, zodFirstIssue } from '../../test/body-corpus.js';
import { expectChvError, tempDir } from '../../test/helpers.js';
import { chvEndpointSpecs } from '../endpoint-table.js';
import { ChvClient, parseEventStream, type VmConfig } from '../index.js';
import { SimulatorStartError, type SimulatorVersion, simulatorVersions, startSimulator } from './index.js';
import { simBodySchema, withSerdeDefaults } from './sim-body-check.js';

/** One raw HTTP exchange (Connection: close), so the exact bytes on the wire can be checked. */
function raw(socketPath: string, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
    });
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
    socket.write(request);
  });
}

/** A Unix socket server standing in for virtiofsd: counts front-end connections and their closing. */
async function fakeVirtiofsd(socketPath: string) {
  const state = { connected: 0, closed: 0 };
  const server = net.createServer((socket) => {
    state.connected++;
    socket.on('close', () => state.closed++);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    state,
    [Symbol.asyncDispose]: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function until(check: () => boolean, ms = 2_000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('simulator wire format', () => {
  it('frames responses like micro_http: no reason phrase, keep-alive, no Content-Length on 204', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    await using _sim = await startSimulator({ socketPath });
    const body = JSON.stringify({ payload: { kernel: '/k' } });
    const created = await raw(
      socketPath,
      `PUT /api/v1/vm.create HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    expect(created).toBe('HTTP/1.1 204 \r\nServer: Cloud Hypervisor API\r\nConnection: keep-alive\r\n\r\n');
    const info = await raw(socketPath, 'GET /api/v1/vm.info HTTP/1.1\r\nConnection: close\r\n\r\n');
    const [head, json] = info.split('\r\n\r\n');
    expect(head).toMatch(
      /^HTTP\/1\.1 200 \r\nServer: Cloud Hypervisor API\r\nConnection: keep-alive\r\nContent-Type: application\/json\r\nContent-Length: \d+$/,
    );
    // vm.info answers the config with the VMM's defaults filled in (test/real-answers/ holds the full answer).
    expect(JSON.parse(json!)).toMatchObject({
      config: {
        payload: { kernel: '/k' },
        cpus: { boot_vcpus: 1, max_vcpus: 1, max_phys_bits: 46 },
        memory: { size: 536870912 },
        rng: { src: '/dev/urandom' },
        console: { mode: 'Tty' },
      },
      state: 'Created',
      memory_actual_size: 536870912,
    });
  });

  it.each(simulatorVersions)('%s: error bodies and status codes of its generation', async (version) => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    await using _sim = await startSimulator({ socketPath, version });
    const info = await raw(socketPath, 'GET /api/v1/vm.info HTTP/1.1\r\nConnection: close\r\n\r\n');
    const unknown = await raw(socketPath, 'GET /api/v1/vm.nothing HTTP/1.1\r\nConnection: close\r\n\r\n');
    const noBody = await raw(socketPath, 'PUT /api/v1/vm.resize HTTP/1.1\r\nConnection: close\r\n\r\n');
    const bodyOnBoot = await raw(
      socketPath,
      'PUT /api/v1/vm.boot HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}',
    );
    const missing = await raw(
      socketPath,
      // serde requires cpus.boot_vcpus (a VmConfig without payload is accepted and refused only at boot).
      'PUT /api/v1/vm.create HTTP/1.1\r\nContent-Length: 24\r\nConnection: close\r\n\r\n{"cpus":{"max_vcpus":1}}',
    );
    const status = (response: string) => Number(response.split(' ')[1]);
    const payload = (response: string) => response.split('\r\n\r\n')[1];
    if (version === 'v46') {
      expect([status(info), payload(info)]).toEqual([500, 'ApiError(VmInfo(VmNotCreated))']);
      expect([status(unknown), payload(unknown)]).toEqual([404, 'NotFound']);
      expect([status(noBody), payload(noBody)]).toEqual([400, 'BadRequest']);
      expect(payload(missing)).toMatch(/^SerdeJsonDeserialize\(Error\("missing field `boot_vcpus`"/);
    } else {
      const expectedStatus = version === 'v53' ? 404 : 500;
      expect([status(info), payload(info)]).toEqual([
        expectedStatus,
        '["Error from API","The VM info is not available","VM is not created"]',
      ]);
      expect([status(unknown), payload(unknown)]).toEqual([404, '["Not Found"]']);
      expect([status(noBody), payload(noBody)]).toEqual([400, '["Bad Request"]']);
      expect(payload(missing)).toBe('["Failed to deserialize JSON","missing field `boot_vcpus`"]');
    }
    expect(status(bodyOnBoot)).toBe(400);
    expect(status(missing)).toBe(400);
  });

  it("refuses a body above 4 MiB with micro_http's 400 and closes the connection", async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    await using _sim = await startSimulator({ socketPath });
    const response = await raw(
      socketPath,
      `PUT /api/v1/vm.create HTTP/1.1\r\nContent-Length: ${4 * 1024 * 1024 + 1}\r\n\r\n{`,
    );
    expect(response).toMatch(/^HTTP\/1\.1 400 /);
    expect(response).toContain('larger than the limit of 4194304 allowed by server');
  });

  it('serves one request at a time across connections (a slow call blocks ping)', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    await using _sim = await startSimulator({ socketPath, delayMs: { 'vm.counters': 400 } });
    await using a = new ChvClient({ socketPath });
    await using b = new ChvClient({ socketPath });
    const order: string[] = [];
    const slow = a.vmCounters().catch(() => order.push('counters'));
    await new Promise((r) => setTimeout(r, 50));
    const started = performance.now();
    await b.vmmPing().then(() => order.push('ping'));
    expect(performance.now() - started).toBeGreaterThan(200);
    await slow;
    expect(order).toEqual(['counters', 'ping']);
  });

  it('answers 404 for endpoints newer than the simulated release', async () => {
    await using dir = await tempDir();
    for (const version of simulatorVersions) {
      const socketPath = join(dir.path, `${version}.sock`);
      await using _sim = await startSimulator({ socketPath, version });
      await using client = new ChvClient({ socketPath });
      await client.vmCreate({ payload: { kernel: '/k' } });
      const resizeDisk = client.vmResizeDisk({ id: 'd', desired_size: 1 });
      if (version === 'v53') await expectChvError(resizeDisk, 'INTERNAL');
      else expect((await expectChvError(resizeDisk, 'NOT_FOUND')).status).toBe(404);
    }
  });

  it('never answers in hang mode (client TIMEOUT)', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    await using _sim = await startSimulator({ socketPath, hang: true });
    await using client = new ChvClient({ socketPath, timeoutMs: 100 });
    await expectChvError(client.vmmPing(), 'TIMEOUT');
  });
});

/** serde's wording of the first zod issue, as the simulator phrased it when it validated bodies with zod. */
function serdeTextBeforeZodWasDropped(issue: {
  code: string;
  path: readonly PropertyKey[];
  message: string;
}) {
  const field = issue.path.at(-1);
  if (issue.code === 'invalid_type' && issue.message.includes('undefined') && field !== undefined) {
    return `missing field \`${String(field)}\``;
  }
  return `${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message}`;
}

/** One PUT over a keep-alive connection; the status and the body as sent. */
function put(agent: http.Agent, socketPath: string, path: string, body: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const request = http.request(
      { agent, socketPath, path, method: 'PUT', headers: { 'Content-Length': Buffer.byteLength(body) } },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          text += chunk;
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

describe('simulator request bodies', () => {
  // Per schema: the valid forms and a spread of broken ones (wrong types, missing fields, unknown fields, two
  // faults at once) from the same corpus checkBody is compared with zod on.
  const sample = (corpus: readonly unknown[], count: number) =>
    corpus.filter((_, i) => i < 3 || i % Math.max(1, Math.floor(corpus.length / count)) === 0);

  it.each(simulatorVersions)(
    '%s: answers every body with the status and error body it gave when it validated with zod',
    async (version: SimulatorVersion) => {
      await using dir = await tempDir();
      const socketPath = join(dir.path, 'api.sock');
      await using _sim = await startSimulator({ socketPath, version });
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      let rejected = 0;
      let accepted = 0;
      try {
        for (const spec of chvEndpointSpecs) {
          // Endpoints newer than the release answer 404 before reading the body.
          if (!spec.body || (version !== 'v53' && /resize-disk|generic-vhost-user/.test(spec.name))) continue;
          for (const body of sample(bodyCorpus(simBodySchema(spec.body), 40), 40)) {
            const text = JSON.stringify(body) ?? '';
            if (text === '') continue;
            const wire: unknown = JSON.parse(text);
            const answer = await put(agent, socketPath, `/api/v1/${spec.name}`, text);
            // Where serde is more lenient than the API description (payload, fs queue defaults), so is the simulator.
            const issue = zodFirstIssue(spec.body, withSerdeDefaults(spec.body, wire));
            if (issue) {
              rejected++;
              const detail = serdeTextBeforeZodWasDropped(issue);
              expect(answer, `${spec.name} ${text}`).toEqual({
                status: 400,
                body:
                  version === 'v46'
                    ? `SerdeJsonDeserialize(Error(${JSON.stringify(detail)}, line: 1, column: 1))`
                    : JSON.stringify(['Failed to deserialize JSON', detail]),
              });
              continue;
            }
            accepted++;
            // A valid body reaches the VMM: whatever it answers, it is not a body error.
            expect(answer.body, `${spec.name} ${text}`).not.toMatch(/deserialize|Deserialize/);
            if (spec.name === 'vm.create') {
              expect(answer.status, text).toBe(204);
              expect((await put(agent, socketPath, '/api/v1/vm.delete', '')).status).toBe(204);
            }
          }
        }
      } finally {
        agent.destroy();
      }
      expect(rejected).toBeGreaterThan(200);
      expect(accepted).toBeGreaterThan(40);
    },
    // Hundreds of sequential requests: ~2 s alone, but far longer while every package's suite runs at once.
    120_000,
  );
});

describe('simulator VMM checks', () => {
  const base = (kernel: string): VmConfig => ({
    payload: { kernel },
    serial: { mode: 'Null' },
    console: { mode: 'Off' },
  });

  it('requires the kernel file at boot and stays Created when boot fails', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    await using _sim = await startSimulator({ socketPath });
    await using client = new ChvClient({ socketPath });
    await client.vmCreate(base(join(dir.path, 'missing-vmlinux')));
    const error = await expectChvError(client.vmBoot(), 'INTERNAL');
    // The real VMM opens the kernel after building the VM (vmm/src/vm.rs:1748): the VM stays built but Created.
    expect(error.messages.slice(-2)).toEqual([
      'Cannot open kernel file',
      'No such file or directory (os error 2)',
    ]);
    expect((await client.vmInfo()).state).toBe('Created');
    await expectChvError(client.vmBoot(), 'WRONG_STATE');
  });

  it('requires memory.shared for fs, connects each fs socket at boot, holds it, closes it at shutdown', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    const kernel = join(dir.path, 'vmlinux');
    await writeFile(kernel, '');
    await using virtiofsd = await fakeVirtiofsd(join(dir.path, 'fs.sock'));
    await using sim = await startSimulator({ socketPath });
    await using client = new ChvClient({ socketPath });
    const fs = [{ tag: 'share', socket: join(dir.path, 'fs.sock'), num_queues: 1, queue_size: 1024 }];
    await client.vmCreate({ ...base(kernel), fs });
    const invalid = await expectChvError(client.vmBoot(), 'INVALID_CONFIG');
    expect(invalid.messages.at(-1)).toBe('Using vhost-user requires using shared memory or huge pages');
    expect(virtiofsd.state.connected).toBe(0);
    await client.vmDelete();
    await client.vmCreate({ ...base(kernel), fs, memory: { size: 1 << 28, shared: true } });
    await client.vmBoot();
    await until(() => virtiofsd.state.connected === 1);
    expect(sim.fsConnectionCount).toBe(1);
    await client.vmPause();
    await client.vmResume();
    expect(virtiofsd.state.closed).toBe(0);
    await client.vmShutdown();
    await until(() => virtiofsd.state.closed === 1);
    expect(sim.fsConnectionCount).toBe(0);
    await client.vmBoot();
    await until(() => virtiofsd.state.connected === 2);
    await sim.close();
    await until(() => virtiofsd.state.closed === 2);
  });

  it('fails the boot when an fs socket does not answer', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    const kernel = join(dir.path, 'vmlinux');
    await writeFile(kernel, '');
    await using _sim = await startSimulator({ socketPath });
    await using client = new ChvClient({ socketPath });
    const fs = [{ tag: 'share', socket: join(dir.path, 'nobody.sock'), num_queues: 1, queue_size: 1024 }];
    await client.vmCreate({ ...base(kernel), fs, memory: { size: 1 << 28, shared: true } });
    const error = await expectChvError(client.vmBoot(), 'INTERNAL');
    expect(error.messages).toContain('Cannot create virtio-fs device');
  });

  it("checks a named TAP's queue mode against num_queues, and a missing TAP in strict mode", async () => {
    await using dir = await tempDir();
    const kernel = join(dir.path, 'vmlinux');
    await writeFile(kernel, '');
    const sys = join(dir.path, 'sys');
    // tun_flags as the kernel shows them: IFF_TAP|IFF_NO_PI (0x1002), plus IFF_MULTI_QUEUE (0x0100).
    await mkdir(join(sys, 'tapplain'), { recursive: true });
    await writeFile(join(sys, 'tapplain', 'tun_flags'), '0x1002\n');
    await mkdir(join(sys, 'tapmq'), { recursive: true });
    await writeFile(join(sys, 'tapmq', 'tun_flags'), '0x1102\n');
    await mkdir(join(sys, 'br0'), { recursive: true });
    const cases: [string, number | undefined, boolean, string | undefined][] = [
      ['tapplain', undefined, true, undefined],
      ['tapplain', 2, true, undefined],
      ['tapplain', 4, true, 'Error related to the multiqueue support (no support TAP side)'],
      ['tapmq', 4, true, undefined],
      ['tapmq', 2, true, 'Error related to the multiqueue support (no support device side)'],
      ['tapmq', 3, true, 'Error related to the multiqueue support (no support device side)'],
      ['nosuchtap', 2, true, 'Open tap device failed'],
      ['nosuchtap', 2, false, undefined],
      ['br0', 2, true, 'Unable to configure tap interface'],
    ];
    for (const [tap, numQueues, strictTaps, failure] of cases) {
      const socketPath = join(dir.path, 'api.sock');
      await using _sim = await startSimulator({ socketPath, sysClassNetDir: sys, strictTaps });
      await using client = new ChvClient({ socketPath });
      await client.vmCreate({
        ...base(kernel),
        // Two boot vCPUs: the VMM refuses more than two queues per vCPU before it opens a TAP.
        cpus: { boot_vcpus: 2, max_vcpus: 2 },
        net: [{ tap, ...(numQueues ? { num_queues: numQueues } : {}) }],
      });
      const label = `${tap} num_queues=${numQueues} strict=${strictTaps}`;
      if (failure) {
        const error = await expectChvError(client.vmBoot(), 'INTERNAL');
        expect(error.messages, label).toContain(failure);
        expect(error.messages, label).toContain('Cannot create virtio-net device');
      } else {
        await client.vmBoot();
        expect((await client.vmInfo()).state, label).toBe('Running');
      }
    }
  });

  it("writes the lifecycle to the event monitor in Cloud Hypervisor's format", async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    const eventFile = join(dir.path, 'events.json');
    const kernel = join(dir.path, 'vmlinux');
    await writeFile(kernel, '');
    const sim = await startSimulator({ socketPath, eventMonitor: eventFile });
    await using client = new ChvClient({ socketPath });
    await client.vmCreate(base(kernel));
    await client.vmBoot();
    await client.vmPause();
    await client.vmResume();
    await client.vmAddDisk({ path: '/d.img', id: 'd1' });
    await client.vmRemoveDevice({ id: 'd1' });
    await client.vmmShutdown();
    expect(await sim.closed).toEqual({ reason: 'vmm.shutdown' });
    const events = [];
    for await (const event of parseEventStream(followFile(eventFile, { until: Promise.resolve() }))) {
      events.push(
        `${event.source}:${event.event}${event.properties ? `:${JSON.stringify(event.properties)}` : ''}`,
      );
    }
    expect(events).toEqual([
      'vmm:starting',
      'vm:booting',
      'vm:booted',
      'vm:pausing',
      'vm:paused',
      'vm:resuming',
      'vm:resumed',
      'vm:device-removed:{"id":"d1"}',
      'vm:shutdown',
      'vm:deleted',
      'vmm:shutdown',
    ]);
    const { readFile } = await import('node:fs/promises');
    expect(await readFile(eventFile, 'utf8')).toMatch(
      /^\{\n {2}"timestamp": \{\n {4}"secs": 0,\n {4}"nanos": \d+\n {2}\},\n {2}"source": "vmm",\n {2}"event": "starting",\n {2}"properties": null\n\}\n\n\{/,
    );
  });

  it('ends on vmm.shutdown with the socket removed', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    const sim = await startSimulator({ socketPath });
    await using client = new ChvClient({ socketPath });
    await client.vmmShutdown();
    expect(await sim.closed).toEqual({ reason: 'vmm.shutdown' });
    expect(existsSync(socketPath)).toBe(false);
  });

  it('power button: the simulated guest powers off (VMM ends), or stays with --no-shutdown, or ignores it', async () => {
    await using dir = await tempDir();
    const kernel = join(dir.path, 'vmlinux');
    await writeFile(kernel, '');
    for (const mode of ['exit', 'no-shutdown', 'ignore'] as const) {
      const socketPath = join(dir.path, `${mode}.sock`);
      await using sim = await startSimulator({
        socketPath,
        noShutdown: mode === 'no-shutdown',
        powerButton: mode === 'ignore' ? 'ignore' : 'poweroff',
        powerOffDelayMs: 5,
      });
      await using client = new ChvClient({ socketPath });
      await client.vmCreate(base(kernel));
      await client.vmBoot();
      await client.vmPowerButton();
      if (mode === 'exit') {
        expect(await sim.closed).toEqual({ reason: 'guest-poweroff' });
      } else if (mode === 'no-shutdown') {
        await until(() => sim.state === 'Created');
        expect(await client.vmmPing()).toBeDefined();
      } else {
        await new Promise((r) => setTimeout(r, 100));
        expect(sim.state).toBe('Running');
      }
    }
  });

  it('snapshots a paused VM and restores it into a fresh VMM', async () => {
    await using dir = await tempDir();
    const kernel = join(dir.path, 'vmlinux');
    await writeFile(kernel, '');
    const snapshot = join(dir.path, 'snap');
    await mkdir(snapshot);
    const first = join(dir.path, 'a.sock');
    await using _a = await startSimulator({ socketPath: first });
    await using a = new ChvClient({ socketPath: first });
    await a.vmCreate({ ...base(kernel), cpus: { boot_vcpus: 2, max_vcpus: 2 } });
    await a.vmBoot();
    await expectChvError(a.vmSnapshot({ destination_url: pathToFileURL(snapshot).href }), 'WRONG_STATE');
    await a.vmPause();
    await a.vmSnapshot({ destination_url: pathToFileURL(snapshot).href });
    const second = join(dir.path, 'b.sock');
    await using _b = await startSimulator({ socketPath: second });
    await using b = new ChvClient({ socketPath: second });
    await b.vmRestore({ source_url: pathToFileURL(snapshot).href });
    const info = await b.vmInfo();
    expect(info.state).toBe('Paused');
    expect(info.config.cpus?.boot_vcpus).toBe(2);
    await expectChvError(b.vmRestore({ source_url: pathToFileURL(snapshot).href }), 'CONFLICT');
    await b.vmResume();
    await expectChvError(b.vmSendMigration({ destination_url: 'nowhere' }), 'INVALID_CONFIG');
    await expectChvError(b.vmSendMigration({ destination_url: 'unix:/tmp/x' }), 'INTERNAL');
    await b.vmCoredump({ destination_url: pathToFileURL(join(dir.path, 'core')).href });
    expect(existsSync(join(dir.path, 'core'))).toBe(true);
  });

  it('fault injection: a listed endpoint fails like the VMM would and changes nothing', async () => {
    await using dir = await tempDir();
    const kernel = join(dir.path, 'vmlinux');
    await writeFile(kernel, '');
    const socketPath = join(dir.path, 'api.sock');
    await using _sim = await startSimulator({ socketPath, fail: ['vm.boot'], version: 'v50' });
    await using client = new ChvClient({ socketPath });
    await client.vmCreate(base(kernel));
    const error = await expectChvError(client.vmBoot(), 'INTERNAL');
    expect(error.status).toBe(500);
    expect(error.messages).toEqual([
      'Error from API',
      'The VM could not boot',
      'Simulated failure (MYHV_SIM_FAIL=vm.boot)',
    ]);
    expect((await client.vmInfo()).state).toBe('Created');
  });
});

describe('simulator start', () => {
  async function staleSocket(socketPath: string) {
    // A process that dies without closing leaves its socket file behind.
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    await new Promise((resolve) => child.once('exit', resolve));
    expect(existsSync(socketPath)).toBe(true);
  }

  it('fails on a stale socket before v53 and replaces it from v53 on', async () => {
    await using dir = await tempDir();
    for (const version of simulatorVersions) {
      const socketPath = join(dir.path, `${version}.sock`);
      await staleSocket(socketPath);
      if (version === 'v53') {
        await using sim = await startSimulator({ socketPath, version });
        expect(sim.state).toBeUndefined();
      } else {
        const error = await startSimulator({ socketPath, version }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(SimulatorStartError);
        expect((error as SimulatorStartError).chain).toContain('Address in use (os error 98)');
      }
    }
  });

  it('refuses a socket another simulator listens on, and a startup fault', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    await using _live = await startSimulator({ socketPath });
    await expect(startSimulator({ socketPath })).rejects.toBeInstanceOf(SimulatorStartError);
    await expect(
      startSimulator({ socketPath: join(dir.path, 'b.sock'), fail: ['startup'] }),
    ).rejects.toBeInstanceOf(SimulatorStartError);
    expect(existsSync(join(dir.path, 'b.sock'))).toBe(false);
  });
});
