import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { connectConsole, runSerialRelay } from './serial-relay.js';

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Stands in for the VMM's serial socket: one client; records what the "guest" received. */
async function fakeSerial(path: string) {
  const state = { received: '', client: undefined as net.Socket | undefined };
  const server = net.createServer((socket) => {
    state.client = socket;
    socket.on('data', (chunk) => {
      state.received += chunk.toString();
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    state,
    print: (text: string) => state.client!.write(text),
    close: () =>
      new Promise<void>((resolve) => {
        state.client?.destroy();
        server.close(() => resolve());
      }),
  };
}

function collect(socket: net.Socket): { text: string } {
  const seen = { text: '' };
  socket.on('data', (chunk) => {
    seen.text += chunk.toString();
  });
  return seen;
}

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), 'relay-'));
  dirs.push(dir);
  const paths = {
    vmmSocket: join(dir, 'serial.sock'),
    consoleSocket: join(dir, 'console.sock'),
    logFile: join(dir, 'serial.log'),
  };
  const guest = await fakeSerial(paths.vmmSocket);
  const relay = runSerialRelay(paths);
  await until(async () => (await stat(paths.consoleSocket).catch(() => undefined)) !== undefined, 'console');
  await until(() => guest.state.client !== undefined, 'relay connected');
  return { paths, guest, relay };
}

describe('serial relay', () => {
  it('relays bytes both ways, replays recent output on attach, and logs it all (0600)', async () => {
    const { paths, guest, relay } = await setup();
    guest.print('early line\n');
    await until(async () => (await readFile(paths.logFile, 'utf8')) === 'early line\n', 'log');
    expect((await stat(paths.logFile)).mode & 0o777).toBe(0o600);
    expect((await stat(paths.consoleSocket)).mode & 0o777).toBe(0o600);

    const console = await connectConsole(paths.consoleSocket);
    const seen = collect(console);
    console.resume();
    guest.print('login: ');
    console.write('root\n');
    await until(() => seen.text === 'early line\nlogin: ', 'backlog, then console output');
    await until(() => guest.state.received === 'root\n', 'guest input');
    expect(await readFile(paths.logFile, 'utf8')).toBe('early line\nlogin: ');
    console.destroy();
    await guest.close();
    await relay;
  });

  it('refuses a second console with BUSY and keeps serving after the first detaches', async () => {
    const { paths, guest, relay } = await setup();
    const first = await connectConsole(paths.consoleSocket);
    await expect(connectConsole(paths.consoleSocket)).rejects.toMatchObject({ code: 'BUSY' });
    // The refused client's bytes never reached the guest, and the writer still works.
    first.write('a');
    await until(() => guest.state.received === 'a', 'first writes');
    first.destroy();

    guest.print('after detach\n');
    let second: net.Socket | undefined;
    await until(async () => {
      second = await connectConsole(paths.consoleSocket).catch(() => undefined);
      return second !== undefined;
    }, 'slot freed');
    const seen = collect(second!);
    second!.resume();
    second!.write('b');
    guest.print('again\n');
    await until(() => seen.text === 'after detach\nagain\n', 'second console output');
    await until(() => guest.state.received === 'ab', 'second writes');
    await until(
      async () => (await readFile(paths.logFile, 'utf8')) === 'after detach\nagain\n',
      'log survives detach',
    );
    second!.destroy();
    await guest.close();
    await relay;
    await expect(stat(paths.consoleSocket)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('fails with TIMEOUT when the VMM serial socket never accepts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relay-'));
    dirs.push(dir);
    await expect(
      runSerialRelay({
        vmmSocket: join(dir, 'missing.sock'),
        consoleSocket: join(dir, 'console.sock'),
        logFile: join(dir, 'serial.log'),
        connectTimeoutMs: 100,
      }),
    ).rejects.toMatchObject({ code: 'TIMEOUT' });
  });

  it('waits for the socket while the VMM lives, and stops waiting the moment it is gone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relay-'));
    dirs.push(dir);
    let alive = true;
    const started = Date.now();
    const relay = runSerialRelay({
      vmmSocket: join(dir, 'late.sock'),
      consoleSocket: join(dir, 'console.sock'),
      logFile: join(dir, 'serial.log'),
      vmmAlive: () => alive,
    });
    const outcome = relay.catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 300));
    alive = false;
    expect(await outcome).toMatchObject({ code: 'VMM_FAILED', message: expect.stringMatching(/VMM exited/) });
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
