import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectChvError, tempDir } from '../test/helpers.js';
import { ChvClient, waitForApiReady } from './index.js';
import { startSimulator } from './testing/index.js';

describe('waitForApiReady', () => {
  it('sees the socket through the directory watch, long before the safety poll', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    await using client = new ChvClient({ socketPath });
    // A safety poll of 5 s: only the watch can make this fast.
    const ready = waitForApiReady(socketPath, { client, pollIntervalMs: 5_000 }).then(() =>
      performance.now(),
    );
    await new Promise((r) => setTimeout(r, 50));
    const before = performance.now();
    await using _sim = await startSimulator({ socketPath });
    expect((await ready) - before).toBeLessThan(1_000);
  });

  it('falls back to polling when the directory cannot be watched (it does not exist yet)', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'later', 'api.sock');
    await using client = new ChvClient({ socketPath });
    const ready = waitForApiReady(socketPath, { client, pollIntervalMs: 10 });
    await new Promise((r) => setTimeout(r, 30));
    await mkdir(join(dir.path, 'later'));
    await using _sim = await startSimulator({ socketPath });
    expect((await ready).version).toBe('53.0.0');
  });

  it('gives TIMEOUT when nothing appears, ABORTED on the signal, EXITED when the process ends', async () => {
    await using dir = await tempDir();
    const socketPath = join(dir.path, 'api.sock');
    await using client = new ChvClient({ socketPath });
    await expectChvError(waitForApiReady(socketPath, { client, timeoutMs: 50 }), 'TIMEOUT');
    await expectChvError(waitForApiReady(socketPath, { client, signal: AbortSignal.timeout(30) }), 'ABORTED');
    await expectChvError(waitForApiReady(socketPath, { client, exited: Promise.resolve() }), 'EXITED');
  });
});
