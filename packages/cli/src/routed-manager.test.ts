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

async function listen(path: string): Promise<void> {
  server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server!.listen(path, resolve));
}

const isRoot = process.getuid?.() === 0;

describe('openRoutedManager', () => {
  it('runs in-process when no daemon listens, or with --no-daemon', async () => {
    const settings = await config();
    expect((await openRoutedManager(settings, { kind: 'read' }, { noDaemon: false })).manager).toBeInstanceOf(
      VmManager,
    );
    await listen(settings.daemonSocket);
    const routed = await openRoutedManager(settings, { kind: 'read' }, { noDaemon: false });
    expect(routed.daemonSocket).toBe(settings.daemonSocket);
    expect(routed.manager).not.toBeInstanceOf(VmManager);
    await routed.close();
    const forced = await openRoutedManager(settings, { kind: 'read' }, { noDaemon: true });
    expect(forced.manager).toBeInstanceOf(VmManager);
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
