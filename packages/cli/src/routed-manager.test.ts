import { chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmManager } from '@my-hypervisor/vm-manager';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openRoutedManager } from './backends.js';
import { resolveConfig } from './config.js';

let dir: string;
let server: Server | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'myhv-route-'));
});
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function config() {
  return resolveConfig({
    flags: { stateDir: join(dir, 'state'), runDir: dir, config: '/dev/null' },
    env: {},
  });
}

/** A stand-in myhvd: answers `daemon.hello` with `settings` (or drops every connection when none are given). */
async function listen(path: string, settings?: Record<string, string>): Promise<void> {
  server = createServer((socket) => {
    if (!settings) {
      socket.destroy();
      return;
    }
    socket.on('data', (chunk) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        const { id } = JSON.parse(line) as { id: number };
        const result = { version: '0.0.0', pid: 4242, settings };
        socket.write(`${JSON.stringify({ jsonrpc: '2.0', id, result })}\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server!.listen(path, resolve));
}

const isRoot = process.getuid?.() === 0;

describe('openRoutedManager', () => {
  it('runs in-process when no daemon listens, or with --no-daemon', async () => {
    const settings = await config();
    expect((await openRoutedManager(settings, { kind: 'read' }, { noDaemon: false })).manager).toBeInstanceOf(
      VmManager,
    );
    await listen(settings.daemonSocket, { stateDir: settings.stateDir, subnet: '10.62.0.0/24' });
    const routed = await openRoutedManager(settings, { kind: 'read' }, { noDaemon: false });
    expect(routed.daemonSocket).toBe(settings.daemonSocket);
    expect(routed.manager).not.toBeInstanceOf(VmManager);
    await routed.close();
    const forced = await openRoutedManager(settings, { kind: 'read' }, { noDaemon: true });
    expect(forced.manager).toBeInstanceOf(VmManager);
  });

  it('runs in-process when the socket drops the connection (a daemon dying, or not one)', async () => {
    const settings = await config();
    await listen(settings.daemonSocket);
    const parts = await openRoutedManager(settings, { kind: 'read' }, { noDaemon: false });
    expect(parts.manager).toBeInstanceOf(VmManager);
    expect(parts.daemonSocket).toBeUndefined();
  });

  it('refuses (INVALID_ARGUMENT naming it) a setting given explicitly that the daemon runs otherwise', async () => {
    const settings = await config();
    await listen(settings.daemonSocket, { stateDir: join(dir, 'elsewhere'), subnet: '10.62.0.0/24' });
    const error = await openRoutedManager(settings, { kind: 'read' }, { noDaemon: false }).catch((e) => e);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', details: { field: '--state-dir' } });
    expect(error.message).toBe(
      `--state-dir: ${join(dir, 'state')} differs from what myhvd (pid 4242, ${settings.daemonSocket}) runs with: ` +
        join(dir, 'elsewhere'),
    );
    // A setting left at its default is not compared: the daemon's is the one that counts.
    const plain = await resolveConfig({ flags: { runDir: dir, config: '/dev/null' }, env: {} });
    server!.close();
    await listen(plain.daemonSocket, { stateDir: plain.stateDir, subnet: '10.9.0.0/24' });
    const routed = await openRoutedManager(plain, { kind: 'read' }, { noDaemon: false });
    expect(routed.daemonSocket).toBe(plain.daemonSocket);
    await routed.close();
  });

  it.skipIf(!isRoot)(
    'never talks to a daemon socket owned by another user (it would see every spec)',
    async () => {
      const settings = await config();
      await listen(settings.daemonSocket);
      await chown(settings.daemonSocket, 12345, 12345);
      const parts = await openRoutedManager(settings, { kind: 'read' }, { noDaemon: false });
      expect(parts.manager).toBeInstanceOf(VmManager);
      expect(parts.daemonSocket).toBeUndefined();
    },
  );
});
