import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { waitForListeningSocket } from './wait-for-socket.js';

const made: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true })));
});

const servers: Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

function listenLater(path: string, delayMs: number): void {
  setTimeout(() => {
    const server = createServer();
    servers.push(server);
    server.listen(path);
  }, delayMs);
}

describe('waitForListeningSocket', () => {
  it('resolves soon after the socket starts listening, without the 250 ms fallback poll', async () => {
    const dir = await tempDir('myhv-wait-');
    const path = join(dir, 's.sock');
    listenLater(path, 30);
    const start = performance.now();
    await waitForListeningSocket(path, { signal: AbortSignal.timeout(5_000) });
    const elapsed = performance.now() - start;
    expect(elapsed).toBeGreaterThanOrEqual(25);
    // The fallback poll would first look at 250 ms; anything sooner came from the watch.
    expect(elapsed).toBeLessThan(250);
  });

  it('resolves at once for a socket that already listens', async () => {
    const path = join(await tempDir('myhv-wait-'), 's.sock');
    const server = createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(path, resolve));
    await waitForListeningSocket(path, { signal: AbortSignal.timeout(1_000) });
  });

  it('falls back to polling when the directory cannot be watched', async () => {
    const dir = join(await tempDir('myhv-wait-'), 'later');
    const path = join(dir, 's.sock');
    // fs.watch on a missing directory throws; the directory and the socket appear afterwards.
    setTimeout(() => {
      void mkdir(dir).then(() => listenLater(path, 0));
    }, 30);
    await waitForListeningSocket(path, { signal: AbortSignal.timeout(2_000) });
  });

  it('rejects with the signal reason when aborted', async () => {
    const path = join(await tempDir('myhv-wait-'), 's.sock');
    const controller = new AbortController();
    const pending = waitForListeningSocket(path, { signal: controller.signal });
    const reason = new Error('stop');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
  });
});
